"""Ego-graphs by local clustering: approximate personalised PageRank, then top-k.

For a seed ``s`` the personalised PageRank vector solves

.. math::
    \\pi_s = \\alpha\\, e_s + (1 - \\alpha)\\, \\pi_s D^{-1} A,

the stationary law of a walk that restarts at ``s`` with probability ``alpha``. The push
method (Andersen, Chung & Lang, FOCS 2006, "Local graph partitioning using PageRank
vectors") keeps an estimate ``p`` and a residual ``r`` (initially ``e_s``) with the
invariant ``pi_s = p + sum_u r(u) pi_u``; pushing a node ``u`` moves ``alpha r(u)`` into
``p(u)`` and spreads ``(1 - alpha) r(u)`` evenly over ``u``'s neighbours. It stops when
``r(u) <= eps * deg(u)`` everywhere, after touching ``O(1 / (alpha eps))`` edges whatever
the graph's size. We score node ``v`` by ``p(v) + alpha r(v)``, a lower bound as tight
as ``p`` or tighter (``pi_v(v) >= alpha``) that also ranks nodes reached but never pushed.
On an undirected graph it satisfies

.. math::
    0 \\le \\pi_s(v) - p(v) - \\alpha\\, r(v) \\le \\epsilon\\, \\deg(v) \\quad \\text{for every node } v.

The seed's ego-graph is the seed followed by the ``k - 1`` other nodes of highest score
(ties broken by the smaller node id), fewer if fewer nodes were reached. With
``rank="degree"`` the score is first weighted by ``min(1, 1 / deg(v))``, the
degree-normalised score by which GraphMAE2's reference code (``datasets/localclustering.py``)
orders its ego-graphs: it favours low-degree nodes close to the seed over hubs, which
plain PPR ranks high because a walk reaches them from everywhere. (The reference orders
by that product but *selects* its ``k`` nodes by the unnormalised estimate, the rule of
the default ``rank="score"``, on its own push: lazy ACL, at most 1000 pushes, estimate
``p`` only; ``benchmarks/scaling/ego_rank_overlap.py`` measures how far the sets lie apart.)

Deviations from the paper, and why:

* Non-lazy push (``r(u)`` drops to 0) instead of ACL's lazy walk (which keeps
  ``r(u) / 2``): it targets the ordinary PPR above, as PPRGo (Bojchevski et al., KDD
  2020) does, with fewer pushes; the lazy form serves ACL's conductance guarantee, not
  ranking.
* Synchronous rounds: every node over its threshold pushes at once, for a batch of
  seeds at once, as numpy array operations. Each push still moves exactly the mass ACL's
  rule moves, so the invariant and the bound hold; only the order of pushes differs.
* The seed always pushes first, even when ``deg(s) >= 1 / eps`` would stop ACL at once,
  so a hub's ego-graph still holds its neighbours.
* Scores ``p + alpha r`` instead of ``p`` (above): with ``eps = 1e-4`` only about a
  hundred nodes per seed are ever pushed, too few to fill ``k = 256``.

Walks follow edges backwards, from a node to the sources of its incoming edges (the
rows of our destination-sorted CSR), so an ego-graph holds the nodes whose messages
can reach the seed; on the undirected graphs :mod:`graphmae2.datasets` returns this is
the usual PPR. A node with no incoming edge keeps ``alpha r`` and drops the rest, as
the linear system above does with a zero row of ``D^{-1} A``.

Each seed's sums run in an order fixed by node ids and the CSR alone, never by the
other seeds of its batch, so its ego-graph is bitwise the same whatever the batch size
or worker count.
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write
from ..graph import Graph

__all__ = ["CACHE_VERSION", "DEFAULT_BATCH_SIZE", "RANKS", "EgoGraphs", "approximate_ppr", "cache_key", "ego_graphs",
           "node_dtype"]

logger = logging.getLogger(__name__)

#: Bump when the output of :func:`ego_graphs` changes for the same inputs, so caches
#: written by an older version are not reused.
CACHE_VERSION = 1

#: How ego-graph members are ranked: ``score`` by ``p + alpha r``; ``degree`` by that
#: times ``min(1, 1 / deg)`` (the reference's degree normalisation, module docstring).
RANKS = ("score", "degree")

# Seeds pushed together. Larger batches amortise numpy's per-call overhead, but the
# scratch arrays are [B, nodes touched by the batch], i.e. grow as B^2; on a 1M-node
# graph 4 to 8 was fastest (benchmarks/scaling/ego_graphs.py) and 16 or more slower.
DEFAULT_BATCH_SIZE = 8
_TASK_BATCHES = 16  # batches per task sent to a worker: fewer messages, same order


@dataclass(frozen=True, eq=False)
class EgoGraphs:
    """Ego-graphs of many seeds, stored like a CSR.

    Args:
        indptr: ``[num_seeds + 1]`` int64 offsets into ``nodes``.
        nodes: ``[total]`` node ids, int32 (:func:`node_dtype`: int64 from 2^31 nodes on,
            half the memory below: 1.3 GB for 10M ego-graphs of 32 nodes); ego-graph ``i``
            is ``nodes[indptr[i]:indptr[i + 1]]`` and its first entry is seed ``i``.
    """

    indptr: np.ndarray
    nodes: np.ndarray

    def __len__(self) -> int:
        return int(self.indptr.size) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.nodes[self.indptr[i]:self.indptr[i + 1]]

    @property
    def seeds(self) -> np.ndarray:
        """``[num_seeds]`` the seed of every ego-graph."""
        return self.nodes[self.indptr[:-1]]

    def sizes(self) -> np.ndarray:
        """``[num_seeds]`` number of nodes in every ego-graph."""
        return np.diff(self.indptr)

    def __repr__(self) -> str:
        return f"EgoGraphs(num_seeds={len(self)}, total_nodes={self.nodes.size})"


def node_dtype(num_nodes: int) -> type:
    """The narrowest integer type :class:`EgoGraphs` stores node ids of a graph in."""
    return np.int32 if num_nodes < 2**31 else np.int64


# ------------------------------------------------------------------------ the push
class _Csr:
    """The graph as numpy arrays plus each node's push threshold ``eps * deg``."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, eps: float) -> None:
        self.indptr = indptr
        self.indices = indices
        self.num_nodes = indptr.size - 1
        self.deg = np.diff(indptr)  # [N]
        self.inv_deg = 1.0 / np.maximum(self.deg, 1)  # [N]; degree 0 pushes to no one
        self.thr = eps * self.deg  # [N]


class _Workspace:
    """One worker's scratch space, reused across batches and left clean after each.

    The nodes a batch touches get compact slots ``0, 1, ...`` in first-touch order;
    residual and estimate live in ``[slots, B]`` arrays (flat index ``slot * B + b``), so
    a batch reads and writes a few MB however large the graph. Slots only say where a
    value is stored; every sum runs in an order set by node ids, never by slots.
    """

    def __init__(self, num_nodes: int) -> None:
        self.slot = np.full(num_nodes, -1, dtype=np.int64)  # [N] node -> slot, -1 if untouched
        self.used = 0  # slots handed out in this batch
        self.width = 1  # B of the current batch
        self._alloc(0)

    def _alloc(self, capacity: int) -> None:
        self.node = np.zeros(capacity, dtype=np.int64)  # [cap] slot -> node
        self.thr = np.zeros(capacity)  # [cap] eps * deg of the slot's node
        self.r = np.zeros(capacity * self.width)  # [cap * B] residual
        self.p = np.zeros(capacity * self.width)  # [cap * B] estimate

    def start(self, width: int) -> None:
        if width != self.width:
            self.width = width
            self._alloc(self.node.size)

    def add(self, nodes: np.ndarray, thr: np.ndarray) -> None:
        """Give slots to ``nodes`` (distinct, none slotted yet)."""
        stop = self.used + nodes.size
        if stop > self.node.size:
            old = (self.node, self.thr, self.r, self.p)
            self._alloc(max(2 * self.node.size, stop, 1024))
            for new, prev, size in zip((self.node, self.thr, self.r, self.p), old,
                                       (self.used, self.used) + (self.used * self.width,) * 2):
                new[:size] = prev[:size]
        self.slot[nodes] = np.arange(self.used, stop)
        self.node[self.used:stop] = nodes
        self.thr[self.used:stop] = thr
        self.used = stop

    def clear(self) -> None:
        self.slot[self.node[:self.used]] = -1
        self.r[:self.used * self.width] = 0.0
        self.p[:self.used * self.width] = 0.0
        self.used = 0


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2's hash-based ``unique`` is slower on these sizes."""
    a = np.sort(a)
    keep = np.ones(a.size, dtype=bool)
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _push(csr: _Csr, seeds: np.ndarray, alpha: float, ws: _Workspace) -> None:
    """Push from every seed of the batch until no residual exceeds ``eps * deg``; the
    residual and estimate are left in ``ws``."""
    n, width = csr.num_nodes, seeds.size
    ws.start(width)
    fresh = _sorted_unique(seeds)
    ws.add(fresh, csr.thr[fresh])
    row = np.arange(width, dtype=np.int64)  # [F] batch row of each frontier entry
    node = seeds.astype(np.int64)  # [F] sorted by (row, node), as every frontier is
    at = ws.slot[node] * width + row  # [F] where each entry is stored
    ws.r[at] = 1.0
    while at.size:  # the seeds push first whatever their threshold
        mass = ws.r[at]  # [F]
        ws.r[at] = 0.0
        ws.p[at] += alpha * mass
        share = (1.0 - alpha) * mass * csr.inv_deg[node]  # [F] sent along each edge
        deg = csr.deg[node]  # [F]
        # Expand every frontier entry into its edges, in CSR order: edge j of entry f
        # is CSR position indptr[node[f]] + j.
        owner = np.repeat(np.arange(at.size), deg)  # [M] frontier entry of each edge
        first = np.cumsum(deg) - deg  # [F] first edge of each entry in the expansion
        src = csr.indices[np.arange(owner.size) + (csr.indptr[node] - first)[owner]]  # [M]
        slot = ws.slot[src]  # [M]
        unseen = slot < 0
        if unseen.any():
            fresh = _sorted_unique(src[unseen])
            ws.add(fresh, csr.thr[fresh])
            slot[unseen] = ws.slot[src[unseen]]
        erow = row[owner]  # [M]
        target = slot * width + erow  # [M]
        # Sequential, and each row's targets come in (frontier node, CSR) order, so a
        # seed's sums repeat bitwise in any batch.
        np.add.at(ws.r, target, share[owner])
        over = ws.r[target] > ws.thr[slot]
        key = _sorted_unique(erow[over] * n + src[over])  # next frontier, sorted by (row, node)
        row, node = np.divmod(key, n)
        at = ws.slot[node] * width + row


def _reached(ws: _Workspace, alpha: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, slot, score)`` of every (seed, node) pair with a positive score, grouped by
    row; ``score = p + alpha * r``.

    ``pi - (p + alpha r)`` is still in ``[0, eps * deg]`` (because ``pi_v(v) >= alpha``),
    and it gives a score to nodes that were reached but never pushed.
    """
    used = ws.used * ws.width
    score = (ws.p[:used] + alpha * ws.r[:used]).reshape(ws.used, ws.width).T.ravel()  # [B * slots]
    hit = np.flatnonzero(score > 0)  # ~10x faster than np.nonzero on the floats
    row, slot = np.divmod(hit, ws.used)
    return row, slot, score[hit]


def _ppr_batch(csr: _Csr, seeds: np.ndarray, alpha: float, ws: _Workspace
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts [B], nodes, scores)``: reached nodes per seed, ascending node id."""
    _push(csr, seeds, alpha, ws)
    row, slot, score = _reached(ws, alpha)
    node = ws.node[slot]
    ws.clear()
    order = np.argsort(row * csr.num_nodes + node)
    return np.bincount(row, minlength=seeds.size), node[order], score[order]


def _top_k_batch(csr: _Csr, seeds: np.ndarray, k: int, alpha: float, ws: _Workspace,
                 rank: str = "score") -> Tuple[np.ndarray, np.ndarray]:
    """``(counts [B], nodes)``: each seed, then its top ``k - 1`` other nodes by score
    (``rank="degree"``: by score times ``min(1, 1 / deg)``)."""
    _push(csr, seeds, alpha, ws)
    row, slot, score = _reached(ws, alpha)
    node = ws.node[slot]
    if rank == "degree":
        score *= csr.inv_deg[node]  # inv_deg = 1 / max(deg, 1) = min(1, 1 / deg) on integer degrees
    score[slot == ws.slot[seeds][row]] = np.inf  # the seed sorts first
    ws.clear()
    ends = np.cumsum(np.bincount(row, minlength=seeds.size)).tolist()
    counts, nodes = np.zeros(seeds.size, dtype=np.int64), []
    for b, (lo, hi) in enumerate(zip([0] + ends[:-1], ends)):  # B is small; each step is
        v, u = score[lo:hi], node[lo:hi]  # vectorised over the seed's nodes
        if v.size > k:
            # Keep everything tied with the k-th largest, so ties still go by node id;
            # argpartition first, because sorting every reached node costs more.
            kth = v[np.argpartition(v, v.size - k)[v.size - k]]
            top = v >= kth
            v, u = v[top], u[top]
        order = np.lexsort((u, -v))[:k]  # score descending, then node id
        counts[b] = order.size
        nodes.append(u[order])
    return counts, np.concatenate(nodes)


# --------------------------------------------------------------- batching, workers
def _batches(num_seeds: int, batch_size: int) -> Iterator[Tuple[int, int]]:
    for start in range(0, num_seeds, batch_size):
        yield start, min(start + batch_size, num_seeds)


_WORKER: dict = {}  # per-process state set by _init_worker (inherited on fork)


def _init_worker(indptr: np.ndarray, indices: np.ndarray, seeds: np.ndarray, k: int,
                 alpha: float, eps: float, rank: str) -> None:
    csr = _Csr(indptr, indices, eps)
    _WORKER.update(csr=csr, seeds=seeds, k=k, alpha=alpha, rank=rank, ws=_Workspace(csr.num_nodes))


def _run_batch(bounds: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    w = _WORKER
    return _top_k_batch(w["csr"], w["seeds"][bounds[0]:bounds[1]], w["k"], w["alpha"], w["ws"], w["rank"])


def _compute(indptr: np.ndarray, indices: np.ndarray, seeds: np.ndarray, k: int, alpha: float,
             eps: float, workers: int, batch_size: int, progress: bool, rank: str) -> EgoGraphs:
    bounds = list(_batches(seeds.size, batch_size))
    init_args = (indptr, indices, seeds, k, alpha, eps, rank)
    pool = None
    if workers == 1 or len(bounds) <= 1:
        _init_worker(*init_args)
        results = map(_run_batch, bounds)
    else:
        # fork shares the CSR with the workers copy-on-write; elsewhere the arrays are
        # pickled once per worker.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=init_args)
        results = pool.imap(_run_batch, bounds, chunksize=_TASK_BATCHES)  # in order
    sizes = np.zeros(seeds.size + 1, dtype=np.int64)
    # Sized for k nodes per seed; np.empty leaves untouched pages unallocated, so
    # smaller ego-graphs cost no memory for the unused tail.
    nodes = np.empty(seeds.size * k, dtype=node_dtype(indptr.size - 1))
    done = 0
    try:
        with tqdm(total=len(bounds), desc="ego-graphs", unit="batch", disable=not progress) as bar:
            for (start, stop), (counts, batch_nodes) in zip(bounds, results):
                sizes[start + 1:stop + 1] = counts
                nodes[done:done + batch_nodes.size] = batch_nodes
                done += batch_nodes.size
                bar.update(1)
    finally:
        if pool is None:
            _WORKER.clear()
        else:
            pool.terminate()
            pool.join()
    return EgoGraphs(np.cumsum(sizes), nodes[:done])


# ---------------------------------------------------------------------- public API
def _graph_arrays(graph: Graph) -> Tuple[np.ndarray, np.ndarray]:
    return (graph.indptr.cpu().numpy().astype(np.int64, copy=False),
            graph.indices.cpu().numpy().astype(np.int64, copy=False))


def _check_args(graph: Graph, seeds, alpha: float, eps: float) -> np.ndarray:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha (teleport probability) must be in (0, 1), got {alpha}")
    if not eps > 0.0:
        raise ValueError(f"eps (push tolerance) must be positive, got {eps}; 1e-4 is typical")
    n = graph.num_nodes
    if seeds is None:
        return np.arange(n, dtype=np.int64)
    seeds = np.asarray(seeds.cpu() if hasattr(seeds, "cpu") else seeds)
    if seeds.ndim != 1 or seeds.dtype.kind not in "iu":
        raise ValueError(f"seeds must be a 1-D integer array, got {seeds.dtype} of shape {seeds.shape}")
    bad = (seeds < 0) | (seeds >= n)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"seeds has {int(bad.sum())} id(s) outside [0, {n}); first at position "
                         f"{i}: {int(seeds[i])}")
    return seeds.astype(np.int64)


def approximate_ppr(graph: Graph, seeds=None, alpha: float = 0.15,
                    eps: float = 1e-4) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Push-method personalised PageRank scores ``p + alpha r`` of each seed (module docstring).

    Args:
        graph: the graph; walks go from a node to the sources of its incoming edges.
        seeds: ``[S]`` seed node ids (default: every node).
        alpha: teleport (restart) probability (default: 0.15).
        eps: push tolerance; pushing stops when ``r(v) <= eps * deg(v)`` (default: 1e-4).

    Returns:
        ``(indptr [S + 1], nodes, scores)``: seed ``i``'s reached nodes, ascending, are
        ``nodes[indptr[i]:indptr[i + 1]]`` with scores ``scores[...]`` (float64); on an
        undirected graph ``0 <= pi_i(v) - score <= eps * deg(v)``. Nodes never reached
        score 0 and are left out.
    """
    seeds = _check_args(graph, seeds, alpha, eps)
    indptr, indices = _graph_arrays(graph)
    csr = _Csr(indptr, indices, eps)
    ws = _Workspace(csr.num_nodes)
    counts, nodes, scores = [], [], []
    for start, stop in _batches(seeds.size, DEFAULT_BATCH_SIZE):
        c, v, s = _ppr_batch(csr, seeds[start:stop], alpha, ws)
        counts.append(c)
        nodes.append(v)
        scores.append(s)
    out = np.zeros(seeds.size + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=out[1:])
        return out, np.concatenate(nodes), np.concatenate(scores)
    return out, np.zeros(0, dtype=np.int64), np.zeros(0)


def cache_key(graph: Graph, seeds: np.ndarray, k: int, alpha: float, eps: float,
              rank: str = "score") -> str:
    """SHA-256 naming the cache file of one :func:`ego_graphs` call."""
    h = hashlib.sha256()
    h.update(graph.digest().encode())
    h.update(hashlib.sha256(np.ascontiguousarray(seeds, dtype=np.int64).tobytes()).digest())
    h.update(f"k={k};alpha={alpha!r};eps={eps!r};version={CACHE_VERSION}".encode())
    if rank != "score":  # keeps the keys of caches written before ranks existed
        h.update(f";rank={rank}".encode())
    return h.hexdigest()


def _load(path: Path, seeds: np.ndarray, num_nodes: int) -> Optional[EgoGraphs]:
    num_seeds = seeds.size
    try:
        with np.load(path, allow_pickle=False) as f:  # caches written as int64 are narrowed
            ego = EgoGraphs(f["indptr"], f["nodes"].astype(node_dtype(num_nodes), copy=False))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        logger.warning("ignoring unreadable ego-graph cache %s (%s); recomputing", path, err)
        return None
    if len(ego) != num_seeds or ego.indptr[-1] != ego.nodes.size \
            or (num_seeds and not np.array_equal(ego.seeds, seeds)):
        logger.warning("ignoring ego-graph cache %s: it does not match the request; recomputing", path)
        return None
    return ego


def _save(path: Path, ego: EgoGraphs) -> None:
    """Write atomically: readers never see half a file."""
    with atomic_write(path) as f:
        np.savez(f, indptr=ego.indptr, nodes=ego.nodes)


def ego_graphs(graph: Graph, seeds=None, k: int = 256, alpha: float = 0.15,
               eps: float = 1e-4, workers: int = 1, cache_dir: Union[str, Path, None] = None,
               batch_size: Optional[int] = None, progress: bool = True,
               rank: str = "score") -> EgoGraphs:
    """Ego-graph of every seed: the seed, then its top ``k - 1`` nodes by approximate PPR.

    Args:
        graph: the graph (usually undirected, as datasets give it).
        seeds: ``[S]`` seed node ids (default: every node, in order).
        k: largest ego-graph size, seed included (default: 256); an ego-graph is smaller
            when fewer nodes were pushed.
        alpha: teleport probability (default: 0.15).
        eps: push tolerance, see :func:`approximate_ppr` (default: 1e-4).
        workers: processes; each takes contiguous batches of seeds (default: 1, in-process).
        cache_dir: when given, results are stored in ``<cache_dir>/ego-<key>.npz`` and
            reused; the key hashes the graph, the seeds, ``k``, ``alpha``, ``eps`` and
            :data:`CACHE_VERSION` (default: None, no cache).
        batch_size: seeds pushed together (default: :data:`DEFAULT_BATCH_SIZE`); it
            never changes the result, only speed and scratch memory (about
            ``16 * batch_size^2 / (alpha * eps)`` bytes per worker at most).
        progress: show a tqdm bar over batches (default: True).
        rank: ``"score"`` ranks the other nodes by ``p + alpha r``; ``"degree"`` by that
            times ``min(1, 1 / deg(v))``, the reference's degree normalisation (module
            docstring) (default: ``"score"``).

    Returns:
        :class:`EgoGraphs`, bitwise the same for any ``workers`` and ``batch_size``.
    """
    seeds = _check_args(graph, seeds, alpha, eps)
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {', '.join(map(repr, RANKS))}, got {rank!r}; "
                         f"'degree' ranks by score * min(1, 1/deg) as the GraphMAE2 reference orders them")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k (ego-graph size) must be a positive integer, got {k!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}; use 1 for in-process")
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    elif isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    path = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"ego-{cache_key(graph, seeds, int(k), alpha, eps, rank)}.npz"
        if path.is_file():
            ego = _load(path, seeds, graph.num_nodes)
            if ego is not None:
                logger.info("loaded %r from %s", ego, path)
                return ego
    indptr, indices = _graph_arrays(graph)
    ego = _compute(indptr, indices, seeds, int(k), alpha, eps, int(workers), int(batch_size), progress, rank)
    if path is not None:
        _save(path, ego)
        logger.info("cached %r in %s", ego, path)
    return ego
