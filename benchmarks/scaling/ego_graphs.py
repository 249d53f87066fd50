"""Ego-graphs of every node of a large synthetic graph: time, peak memory, seeds per second.

    python benchmarks/scaling/ego_graphs.py --workers 2                      # 1M nodes, 10M edges
    python benchmarks/scaling/ego_graphs.py --nodes 100000 --edges 1000000 --seeds 20000
    python benchmarks/scaling/ego_graphs.py --nodes 169343 --edges 1166243 --k 64 --seeds 4096 --assemble 8

``--assemble N`` also times the assembly of N training batches (``--batch-egos`` ego-graphs
each, as ``data.batch_size``) from the ego-graphs computed: the induced subgraphs' disjoint
union and the feature rows, what the mini-batch trainer's DataLoader does per step.

Peak memory is ``ru_maxrss`` of this process (graph generation included) and of the
largest worker process; workers share the graph with the parent copy-on-write, so the
two overlap and their sum is an upper bound. ``--seeds`` times a prefix of the nodes
and extrapolates to all of them.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np

from graphmae2.batches.ego import EgoCollate
from graphmae2.datasets.synthetic import synthetic_graph
from graphmae2.sampling import DEFAULT_BATCH_SIZE, RANKS, ego_graphs


def _peak_mib(who: int) -> float:
    kib = resource.getrusage(who).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (1 << 20) if sys.platform == "darwin" else kib / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--edges", type=int, default=10_000_000, help="distinct undirected edges")
    p.add_argument("--features", type=int, default=128,
                   help="feature dimensions; only generation time and memory depend on it")
    p.add_argument("--k", type=int, default=256, help="ego-graph size, seed included")
    p.add_argument("--alpha", type=float, default=0.15)
    p.add_argument("--eps", type=float, default=1e-4,
                   help="push tolerance: work per seed grows like 1 / eps")
    p.add_argument("--rank", choices=RANKS, default="score",
                   help="score, or degree (score * min(1, 1/deg), the reference's normalisation)")
    p.add_argument("--workers", type=int, default=1, help="processes; use the number of free cores")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="seeds pushed together: bigger amortises numpy overhead, "
                        "but scratch memory grows with its square")
    p.add_argument("--seeds", type=int, default=None,
                   help="time only the first SEEDS nodes and extrapolate (default: all)")
    p.add_argument("--seed", type=int, default=0, help="graph generator seed")
    p.add_argument("--assemble", type=int, default=0, metavar="N",
                   help="also time the assembly of N training batches from the ego-graphs")
    p.add_argument("--batch-egos", type=int, default=512, help="ego-graphs per training batch")
    args = p.parse_args()

    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    tic = time.perf_counter()
    data = synthetic_graph(args.nodes, args.edges, num_features=args.features, seed=args.seed)
    gen_s = time.perf_counter() - tic
    print(f"generated {data} in {gen_s:.1f} s")

    seeds = np.arange(args.nodes if args.seeds is None else min(args.seeds, args.nodes))
    tic = time.perf_counter()
    ego = ego_graphs(data.graph, seeds=seeds, k=args.k, alpha=args.alpha, eps=args.eps,
                     workers=args.workers, batch_size=args.batch_size, rank=args.rank)
    ego_s = time.perf_counter() - tic
    rate = seeds.size / ego_s

    sizes = ego.sizes()
    print(f"ego-graphs: {seeds.size} seeds, k={args.k}, alpha={args.alpha}, eps={args.eps}, rank={args.rank}, "
          f"workers={args.workers}, batch={args.batch_size}")
    print(f"  time {ego_s:.1f} s, {rate:.0f} seeds/s"
          + ("" if seeds.size == args.nodes else
             f", all {args.nodes} nodes extrapolated: {args.nodes / rate:.0f} s"))
    print(f"  sizes: mean {sizes.mean():.1f}, min {sizes.min()}, full (= k) {np.mean(sizes == args.k):.1%}")
    print(f"  output {(ego.nodes.nbytes + ego.indptr.nbytes) / (1 << 20):.0f} MiB")
    print(f"peak memory: main {_peak_mib(resource.RUSAGE_SELF):.0f} MiB, "
          f"largest worker {_peak_mib(resource.RUSAGE_CHILDREN):.0f} MiB")
    if args.assemble:
        collate = EgoCollate(ego, data.graph, data.x)
        times, edges = [], []
        for start in range(0, min(len(ego), args.assemble * args.batch_egos), args.batch_egos):
            tic = time.perf_counter()
            batch = collate(list(range(start, min(start + args.batch_egos, len(ego)))))
            times.append(time.perf_counter() - tic)
            edges.append(batch.graph.indices.numel())
        print(f"batch assembly: {len(times)} batches of {args.batch_egos} ego-graphs, median "
              f"{1000 * float(np.median(times)):.1f} ms per batch, "
              f"{np.mean(edges):.0f} edges per batch (self-loops included)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
