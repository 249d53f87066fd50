"""Side by side in one process: a GraphMAE2 pre-training step built from DGL's own
``GATConv`` (what the DGL reference implementation runs per epoch) against graphmae2's,
same hyperparameters, same torch. Run it in the pinned DGL environment (``make test-dgl``
builds it):

    PYTHONPATH=. ~/.cache/graphmae2/dgl-venv/bin/python benchmarks/speed/dgl_epoch_time.py --config cora.yaml

The DGL step follows the paper and the reference's choices: 2-layer GAT encoder,
1-layer GAT decoder on every node with the masked rows zeroed (fixed re-masking) or, for
``model.remask_method: random``, one decoder pass per view over a clone with a fresh
random set of rows replaced by the decoder token, an EMA
teacher encoder + projector on the unmasked graph (in training mode with
``ema.teacher_dropout``), the latent loss on the kept nodes or on all of them
(``model.latent_nodes``), Adam, EMA update.
It is written here from the paper, not copied. Prints medians, the ratio, and peak RSS
of each path measured in its own child process.
"""
import argparse
import copy
import json
import multiprocessing as mp
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


def sce(pred, target, alpha):
    pred, target = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    return (1 - (pred * target).sum(-1)).pow(alpha).mean()


class DGLGAT(nn.Module):
    """GAT from ``dgl.nn.GATConv``: hidden layers concatenate heads, the last concatenates
    (encoder) or averages (decoder)."""

    def __init__(self, in_dim, out_per_head, heads, num_layers, drop, attn_drop, last_act):
        super().__init__()
        from dgl.nn import GATConv

        self.layers = nn.ModuleList()
        for i in range(num_layers):
            act = nn.PReLU() if i < num_layers - 1 or last_act else None
            d_in = in_dim if i == 0 else out_per_head * heads
            self.layers.append(GATConv(d_in, out_per_head, heads, drop, attn_drop, 0.2, activation=act))

    def forward(self, g, x):
        for layer in self.layers:
            x = layer(g, x).flatten(1)
        return x


def dgl_worker(cfg_name, overrides, epochs, warmup, queue):
    import dgl

    from graphmae2.config import load_config
    from graphmae2.datasets import load_data

    torch.manual_seed(0)
    cfg = load_config(cfg_name, overrides)
    m = cfg.model
    data = load_data(cfg.data)
    src, dst = data.graph.edges()
    g = dgl.graph((src, dst), num_nodes=data.num_nodes)
    x = data.x
    per_head = m.num_hidden // m.num_heads
    encoder = DGLGAT(x.shape[1], per_head, m.num_heads, m.num_layers, m.in_drop, m.attn_drop, last_act=True)
    decoder = DGLGAT(m.num_hidden, x.shape[1], m.num_out_heads, 1, m.in_drop, m.attn_drop, last_act=False)
    e2d = nn.Linear(m.num_hidden, m.num_hidden, bias=False)
    projector = nn.Sequential(nn.Linear(m.num_hidden, m.projector_hidden), nn.PReLU(),
                              nn.Linear(m.projector_hidden, m.num_hidden))
    predictor = nn.Sequential(nn.PReLU(), nn.Linear(m.num_hidden, m.num_hidden))
    token = nn.Parameter(torch.zeros(1, x.shape[1]))
    dec_token = nn.Parameter(torch.zeros(1, m.num_hidden))
    student = nn.ModuleList([encoder, decoder, e2d, projector, predictor])
    teacher = copy.deepcopy(nn.ModuleList([encoder, projector])).requires_grad_(False)
    opt = torch.optim.Adam(list(student.parameters()) + [token, dec_token], lr=cfg.train.lr,
                           weight_decay=cfg.train.weight_decay)
    n = data.num_nodes
    times = []
    for epoch in range(warmup + epochs):
        tic = time.perf_counter()
        perm = torch.randperm(n)
        mask, keep = perm[: int(m.mask_rate * n)], perm[int(m.mask_rate * n):]
        x_in = x.clone()
        x_in[mask] = 0.0
        x_in[mask] += token
        enc = encoder(g, x_in)
        rows = slice(None) if m.latent_nodes == "all" else keep
        teacher.train(cfg.ema.teacher_dropout)
        with torch.no_grad():
            target = teacher[1](teacher[0](g, x)[rows])
        latent = sce(predictor(projector(enc[rows])), target, 1.0)
        rep = e2d(enc)
        if m.remask_method == "fixed":
            rep[mask] = 0.0
            rec = sce(decoder(g, rep)[mask], x[mask], m.alpha_l)
        else:  # one decoder pass per view, each hiding a fresh random set behind the token
            rec = 0.0
            for _ in range(m.num_remask):
                hidden = torch.randperm(n)[: int(m.remask_rate * n)]
                view = rep.clone()
                view[hidden] = 0.0
                view[hidden] += dec_token
                rec = rec + sce(decoder(g, view)[mask], x[mask], m.alpha_l)
        loss = rec + m.lam * latent
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), nn.ModuleList([encoder, projector]).parameters()):
                t.mul_(cfg.ema.momentum).add_(s, alpha=1 - cfg.ema.momentum)
        if epoch >= warmup:
            times.append(time.perf_counter() - tic)
    queue.put(("DGL GATConv", times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def graphmae2_worker(cfg_name, overrides, epochs, warmup, queue):
    from epoch_time import time_epochs  # the same timed loop as benchmarks/speed/epoch_time.py

    from graphmae2.config import load_config
    from graphmae2.datasets import load_data
    from graphmae2.seeding import seed_everything

    cfg = load_config(cfg_name, overrides)
    seed_everything(0, True)
    times = time_epochs(cfg, load_data(cfg.data), torch.device("cpu"), epochs, warmup, fast=True)
    name = f"graphmae2 ({cfg.train.precision})"
    queue.put((name, times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="cora.yaml")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                   help="graphmae2's train.precision, one row each (default: both)")
    args = p.parse_args()
    ctx = mp.get_context("spawn")  # a fresh process per path: peak RSS is its own
    jobs = [(dgl_worker, args.overrides)]
    jobs += [(graphmae2_worker, args.overrides + [f"train.precision={p}"]) for p in args.precision]
    rows = []
    for fn, overrides in jobs:
        queue = ctx.Queue()
        proc = ctx.Process(target=fn, args=(args.config, overrides, args.epochs, args.warmup, queue))
        proc.start()
        name, times, rss = queue.get()
        proc.join()
        rows.append({"path": name, "median_s": statistics.median(times), "min_s": min(times),
                     "max_s": max(times), "peak_rss_mb": rss})
    base = rows[0]["median_s"]
    for r in rows:
        print(f"{r['path']:<20} median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f})  "
              f"peak RSS {r['peak_rss_mb']:.0f} MB  speed-up over DGL {base / r['median_s']:.2f}x")
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
