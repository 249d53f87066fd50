"""How far apart are the ego-graphs of our PPR ranking, the degree-normalised ranking,
and the GraphMAE2 reference's procedure, and what does each cost?

    python benchmarks/scaling/ego_rank_overlap.py                                   # Cora, every node
    python benchmarks/scaling/ego_rank_overlap.py --dataset synthetic --nodes 100000 --edges 1000000 --seeds 500

Sets compared per seed (the seed itself left out), by Jaccard overlap |A & B| / |A | B|:

- ``ours``: ``ego_graphs`` as graphmae2 runs it, ``rank="score"``, eps ``--eps`` (1e-4);
- ``ours-degree``: the same push, ranked by score * min(1, 1/deg) (``rank="degree"``);
- ``*-rho``: the same two at the reference's tolerance, eps = rho = ``--rho`` (1e-6);
- ``reference``: an emulation, written here from the algorithm the reference calls
  (``localgraphclustering.approximate_PageRank``, method ``acl``, as in the reference's
  ``datasets/localclustering.py``): Andersen-Chung-Lang's *lazy* push from the seed
  (``x += alpha r``, ``r -= (1 - alpha) r / 2``, each neighbour ``+= (1 - alpha) r / (2 deg)``),
  first-in first-out, a node queued when its residual first reaches rho * deg, at most
  ``--max-pushes`` (1000, the reference's ``num_iter``) pushes; the reference keeps the
  ``k`` pushed nodes of highest ``x`` and only then *orders* them by x * min(1, 1/deg),
  so the order changes but not the set. Not the reference's own code: its
  ``localgraphclustering`` package and OGB-only loader are not run here.

All at k = ``--k`` (256, the reference's ``ego_size``), alpha 0.15. Prints mean (and 10th
percentile) Jaccard for every pair, mean ego-graph size and the time each method took.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import deque
from typing import Dict, List

import numpy as np

from graphmae2.sampling import ego_graphs


def reference_like_ego(indptr: np.ndarray, indices: np.ndarray, seed: int, k: int, alpha: float,
                       rho: float, max_pushes: int) -> List[int]:
    """The ``k`` nodes of highest lazy-ACL estimate after at most ``max_pushes`` FIFO pushes
    (module docstring), seed first."""
    deg = indptr[1:] - indptr[:-1]
    x: Dict[int, float] = {seed: 0.0}
    r: Dict[int, float] = {seed: 1.0}
    queue = deque([seed] if 1.0 >= rho * deg[seed] else [])
    pushes = 0
    while queue and pushes < max_pushes:
        j = queue.popleft()
        rj, dj = r[j], deg[j]
        x[j] = x.get(j, 0.0) + alpha * rj
        share = (1 - alpha) / 2 * rj / dj
        r[j] = (1 - alpha) / 2 * rj
        if r[j] >= rho * dj:
            queue.append(j)
        for u in indices[indptr[j]:indptr[j + 1]].tolist():
            old = r.get(u, 0.0)
            r[u] = old + share
            if r[u] > rho * deg[u] and old <= rho * deg[u]:
                queue.append(u)
        pushes += 1
    ranked = sorted(x.items(), key=lambda kv: -kv[1])[:k]
    nodes = [v for v, _ in ranked]
    return [seed] + [v for v in nodes if v != seed]


def jaccard(a: List[np.ndarray], b: List[np.ndarray]) -> np.ndarray:
    """``[S]`` Jaccard overlap of the non-seed members of each pair of ego-graphs."""
    out = np.empty(len(a))
    for i, (u, v) in enumerate(zip(a, b)):
        su, sv = set(u[1:].tolist()), set(v[1:].tolist())
        out[i] = len(su & sv) / max(len(su | sv), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cora", help="cora, citeseer, or synthetic")
    p.add_argument("--nodes", type=int, default=100_000, help="synthetic graph size")
    p.add_argument("--edges", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, default=None, help="the first SEEDS nodes (default: all)")
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--alpha", type=float, default=0.15)
    p.add_argument("--eps", type=float, default=1e-4, help="our tolerance")
    p.add_argument("--rho", type=float, default=1e-6, help="the reference's tolerance")
    p.add_argument("--max-pushes", type=int, default=1000, help="the reference's num_iter")
    p.add_argument("--skip-rho", action="store_true", help="leave out our push at eps = rho (slow on big graphs)")
    args = p.parse_args()

    print(f"load average before: {os.getloadavg()}")
    if args.dataset == "synthetic":
        from graphmae2.datasets.synthetic import synthetic_graph

        graph = synthetic_graph(args.nodes, args.edges, num_features=8).graph
    else:
        from graphmae2 import load_dataset

        graph = load_dataset(args.dataset).graph
    n = graph.num_nodes
    seeds = np.arange(n if args.seeds is None else min(args.seeds, n))
    indptr, indices = graph.indptr.numpy(), graph.indices.numpy()
    print(f"{args.dataset}: {n} nodes, {indices.size} CSR entries (self-loops included), {seeds.size} seeds, "
          f"k={args.k}, alpha={args.alpha}")

    sets: Dict[str, List[np.ndarray]] = {}
    cost: Dict[str, float] = {}
    runs = [("ours", args.eps, "score"), ("ours-degree", args.eps, "degree")]
    if not args.skip_rho:
        runs += [("ours-rho", args.rho, "score"), ("ours-degree-rho", args.rho, "degree")]
    for name, eps, rank in runs:
        tic = time.perf_counter()
        ego = ego_graphs(graph, seeds=seeds, k=args.k, alpha=args.alpha, eps=eps, rank=rank, progress=False)
        cost[name] = time.perf_counter() - tic
        sets[name] = [ego[i] for i in range(len(ego))]
    tic = time.perf_counter()
    sets["reference"] = [np.asarray(reference_like_ego(indptr, indices, int(s), args.k, args.alpha, args.rho,
                                                       args.max_pushes)) for s in seeds]
    cost["reference"] = time.perf_counter() - tic

    for name in sets:
        sizes = np.array([e.size for e in sets[name]])
        extra = " (pure Python, not comparable)" if name == "reference" else ""
        print(f"{name:<16} time {cost[name]:7.2f} s{extra}, mean size {sizes.mean():6.1f}, "
              f"full (= k) {np.mean(sizes == args.k):6.1%}")
    names = list(sets)
    print("\nmean Jaccard overlap of the ego sets (seed excluded), 10th percentile in brackets:")
    print(" " * 16 + "".join(f"{b:>18}" for b in names[1:]))
    for i, a in enumerate(names[:-1]):
        cells = []
        for j, b in enumerate(names[1:], start=1):
            if j <= i:
                cells.append(" " * 18)
                continue
            jac = jaccard(sets[a], sets[b])
            cells.append(f"{jac.mean():>9.3f} ({np.quantile(jac, 0.1):.3f})")
        print(f"{a:<16}" + "".join(cells))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
