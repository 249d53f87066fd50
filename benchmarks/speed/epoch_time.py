"""Pre-training epoch time on a dataset: median of N epochs after warm-up, peak memory,
and the ratio against a plain dense implementation of the same model in the same run.

    python benchmarks/speed/epoch_time.py --config cora.yaml --epochs 20
    python benchmarks/speed/epoch_time.py --config cora.yaml --device cuda --deterministic both
    python benchmarks/speed/epoch_time.py --config cora.yaml --set model.remask_method=random

"Plain dense" = the same GraphMAE2 with dense first-layer input and one decoder pass per
view (no shared projection), i.e. what a direct transcription of the paper computes.
"""
import argparse
import json
import resource
import statistics
import time

import torch

from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.ema import EMATeacher
from graphmae2.masking import draw_masks
from graphmae2.precision import autocast
from graphmae2.seeding import seed_everything
from graphmae2.trainer import build_model, build_optimizer


def time_epochs(cfg, data, device, epochs, warmup, fast):
    model = build_model(cfg, data.num_features, 0).to(device)
    teacher = EMATeacher(model.ema_source())
    opt = build_optimizer(cfg, model)
    graph, x = data.graph.to(device), data.x.to(device)
    model.fast_decode = fast and model.fast_decode
    times = []
    for epoch in range(warmup + epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        mask, remasks = draw_masks(cfg.model, 0, epoch, data.num_nodes)
        model.train()
        with autocast(cfg, device):
            loss = model(graph, x, teacher, mask, remasks, sparse_input=fast and device.type == "cpu")["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        teacher.update_(model.ema_source(), cfg.ema.momentum)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch >= warmup:
            times.append(time.perf_counter() - tic)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="cora.yaml")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides, as for train.py")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--deterministic", choices=["on", "off", "both"], default="on")
    p.add_argument("--skip-dense", action="store_true", help="only time the optimised path")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    data = load_data(cfg.data)
    device = torch.device(args.device)
    rows = []
    for det in ([True, False] if args.deterministic == "both" else [args.deterministic == "on"]):
        seed_everything(0, det)
        for fast in ([True] if args.skip_dense else [True, False]):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t = time_epochs(cfg, data, device, args.epochs, args.warmup, fast)
            rows.append({"path": "graphmae2" if fast else "plain dense", "deterministic": det,
                         "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                         "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None})
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in rows:
        print(f"{r['path']:<12} deterministic={r['deterministic']!s:<5} median {r['median_s']:.3f} s "
              f"(min {r['min_s']:.3f}, max {r['max_s']:.3f})")
    fast = [r for r in rows if r["path"] == "graphmae2"]
    dense = [r for r in rows if r["path"] == "plain dense"]
    for f, d in zip(fast, dense):
        print(f"speed-up over plain dense (deterministic={f['deterministic']}): {d['median_s'] / f['median_s']:.2f}x")
    print(f"peak RSS of this process: {peak_rss_mb:.0f} MB")
    print(json.dumps({"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "rows": rows, "peak_rss_mb": peak_rss_mb}))


if __name__ == "__main__":
    main()
