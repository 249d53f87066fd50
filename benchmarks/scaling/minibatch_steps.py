"""Mini-batch training throughput: steps/s and nodes/s of the real training loop
(``graphmae2.trainer.train_seed`` over ``EgoBatches``) on an ogbn-arxiv-sized synthetic
graph, for several ``data.num_workers``.

    python benchmarks/scaling/minibatch_steps.py --steps 20 --workers 0 1

Ego-graphs are computed once and cached under ``--root``; each measured run trains
``--steps`` optimizer steps (one truncated epoch) from scratch, timed from the first batch
request to the last step, so batch assembly is included. ``train seconds`` is the part
spent in forward/backward/optimizer/EMA (what the trainer reports); the rest is waiting
for batches.
"""
from __future__ import annotations

import argparse
import time
from typing import Iterator

import torch

from graphmae2.batches import Batch
from graphmae2.batches.ego import EgoBatches
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.trainer import train_seed


class FirstSteps(EgoBatches):
    """``EgoBatches`` cut to its first ``steps`` batches per epoch; counts nodes seen."""

    def __init__(self, source: EgoBatches, steps: int) -> None:
        self.__dict__.update(source.__dict__)
        self.steps_per_epoch = min(steps, source.steps_per_epoch)
        self.nodes = 0

    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        for i, batch in enumerate(super().batches(seed, epoch)):
            if i == self.steps_per_epoch:
                return
            self.nodes += batch.graph.num_nodes
            yield batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="synthetic-1m.yaml",
                   help="model and batch settings (default: synthetic-1m.yaml)")
    p.add_argument("--nodes", type=int, default=169343)
    p.add_argument("--edges", type=int, default=1166243)
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    p.add_argument("--deterministic", choices=["on", "off"], default="on")
    p.add_argument("--root", default=None, help="ego-graph cache (default: data.root)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    sets = [f"data.synthetic_nodes={args.nodes}", f"data.synthetic_edges={args.edges}",
            f"data.synthetic_features={args.features}", "train.max_epoch=1", "train.monitor_every=0",
            f"train.deterministic={args.deterministic == 'on'}", *args.overrides]
    if args.root:
        sets.append(f"data.root={args.root}")
    cfg = load_config(args.config, sets)
    data = load_data(cfg.data)
    cpu = torch.device("cpu")
    tic = time.perf_counter()
    base = EgoBatches.from_config(cfg, data, cpu)
    print(f"graph: {data.num_nodes} nodes, {data.graph.num_edges} edges (with self-loops); "
          f"ego-graphs ready in {time.perf_counter() - tic:.1f} s; batch_size {cfg.data.batch_size}, "
          f"ego_k {cfg.data.ego_k}, threads {torch.get_num_threads()}, deterministic {args.deterministic}")
    print("| data.num_workers | steps | wall s | train s | steps/s | nodes/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for workers in args.workers:
        cfg.data.num_workers = workers
        source = FirstSteps(base, args.steps)
        tic = time.perf_counter()
        result = train_seed(cfg, source, 0, cpu, progress=False)
        wall = time.perf_counter() - tic
        steps = source.steps_per_epoch
        print(f"| {workers} | {steps} | {wall:.1f} | {result.seconds:.1f} | {steps / wall:.3f} | "
              f"{source.nodes / wall:,.0f} |")


if __name__ == "__main__":
    main()
