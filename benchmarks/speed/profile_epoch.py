"""Where a full-batch pre-training epoch spends its CPU time: ``torch.profiler`` over a few
epochs of ``benchmarks/speed/epoch_time.py``'s loop, operators ranked by self time, and the
share of dense matmuls, sparse products and the rest.

    python benchmarks/speed/profile_epoch.py --config cora.yaml --set train.precision=fp32
    python benchmarks/speed/profile_epoch.py --config cora.yaml --set train.precision=bf16 --top 20

The process first runs ``--warmup`` epochs unprofiled (kernel caches, allocator), then
profiles ``--epochs`` epochs; those include building a fresh model and optimizer once
(a few ``normal_``/``uniform_`` calls, well under 1% here).
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from epoch_time import time_epochs
from torch.profiler import ProfilerActivity, profile

from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.seeding import seed_everything

DENSE = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear")
SPARSE_HINTS = ("sparse", "csr", "_spmm", "sampled_addmm", "index_add", "index_select", "gather",
                "scatter", "segment", "embedding")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="cora.yaml")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    data = load_data(cfg.data)
    seed_everything(0, True)
    cpu = torch.device("cpu")
    print(f"load average before: {os.getloadavg()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"precision {cfg.train.precision}")
    time_epochs(cfg, data, cpu, args.warmup, 0, fast=True)
    tic = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        times = time_epochs(cfg, data, cpu, args.epochs, 0, fast=True)
    wall = time.perf_counter() - tic
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.epochs} epochs, {wall:.2f} s under the profiler (epochs {', '.join(f'{t:.3f}' for t in times)} s)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))
    dense = sum(e.self_cpu_time_total for e in events if e.key in DENSE)
    sparse = sum(e.self_cpu_time_total for e in events
                 if e.key not in DENSE and any(h in e.key.lower() for h in SPARSE_HINTS))
    print(f"share of self CPU time: dense matmuls {dense / total:.0%}, sparse / gather / scatter {sparse / total:.0%}, "
          f"everything else {(total - dense - sparse) / total:.0%}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
