"""``synthetic_graph``: a seeded node-classification graph of any size, for scale tests.

The model is a degree-corrected stochastic block model drawn edge by edge, in the
spirit of Chung & Lu (2002, "The average distances in random graphs with given expected
degrees"), with one community per class:

1. labels ``y``: a random permutation of ``0, 1, ..., num_classes - 1, 0, 1, ...``, so
   classes are balanced (sizes differ by at most one) and none is empty;
2. each node gets a weight ``w`` from a Pareto law with tail exponent
   ``power_law_exponent`` (``P(w > t) ~ t^-(gamma - 1)``), so degrees follow a power law;
   weights are capped at ``sqrt(2 * num_edges)`` so that no pair is expected to be
   joined more than about once (the Chung-Lu condition ``w_i w_j <= sum(w)``);
3. each edge picks its first end ``u`` with probability ``w_u / sum(w)``; with probability
   ``homophily`` its other end comes from ``u``'s class, otherwise from one of the other
   classes chosen uniformly, in both cases with probability proportional to ``w``
   within that class. Self-loops and repeats are dropped and more edges drawn until
   exactly ``num_edges`` distinct undirected edges remain (the first ones drawn are
   kept, so the within-class share stays close to ``homophily``);
4. features are binary and sparse: each class owns ``num_features // num_classes``
   preferred dimensions (disjoint when ``num_classes <= num_features``); a node switches
   on about ``feature_density * num_features`` dimensions, half of them drawn from its
   class's preferred set and half uniformly;
5. split: a random permutation, 10% train, 10% validation, 80% test (at least one node
   in each).

Every step draws from its own generator, derived from ``seed`` and the step's name with
:func:`graphmae2.seeding.derive_seed`, so changing the feature settings does not move
the graph, and the same arguments always give the same dataset. Everything is
vectorised: 1M nodes and 10M edges take seconds, not minutes.

>>> ds = synthetic_graph(1000, 5000, num_classes=4, seed=0)
>>> ds.num_nodes, ds.num_features, ds.num_classes
(1000, 128, 4)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from ..seeding import derive_seed
from .node_dataset import NodeDataset

__all__ = ["synthetic_graph", "write_synthetic_graph"]

logger = logging.getLogger(__name__)

_CLASS_FEATURE_SHARE = 0.5  # share of a node's active features drawn from its class's set
_SPLIT = (0.1, 0.1)  # train and validation fractions; the test split takes the rest
_MAX_DRAW_ROUNDS = 20  # top-up rounds before giving up on finding enough distinct edges


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, "synthetic", stream))


def _check(num_nodes: int, num_edges: int, num_classes: int, num_features: int,
           feature_density: float, homophily: float, power_law_exponent: float) -> None:
    if num_nodes < 3:
        raise ValueError(f"num_nodes must be at least 3 (one node per split), got {num_nodes}")
    if not 1 <= num_classes <= num_nodes:
        raise ValueError(f"num_classes must be in [1, num_nodes={num_nodes}], got {num_classes}")
    if num_features < 1:
        raise ValueError(f"num_features must be positive, got {num_features}")
    if not 0.0 <= feature_density <= 1.0:
        raise ValueError(f"feature_density must be in [0, 1], got {feature_density}")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must be in [0, 1], got {homophily}")
    if num_classes == 1 and homophily < 1.0:
        raise ValueError(f"homophily={homophily} needs edges between classes, but num_classes=1; "
                         f"use num_classes >= 2 or homophily=1.0")
    if power_law_exponent <= 2.0:
        raise ValueError(f"power_law_exponent must be > 2 (finite mean degree), got {power_law_exponent}")
    # A quarter of all pairs: beyond that, drawing without repeats stalls.
    limit = num_nodes * (num_nodes - 1) // 8
    if not 0 <= num_edges <= limit:
        raise ValueError(f"num_edges must be in [0, {limit}] for {num_nodes} nodes "
                         f"(a quarter of all node pairs), got {num_edges}")


class _InverseCdf:
    """Sample an index ``i`` with probability ``w[i] / sum(w)`` by inverting the
    cumulative weights, with a guide table (Chen & Asau, 1974): each of ``n`` equal-width
    buckets of ``[0, sum(w))`` records the first index it can map to, so a draw costs a
    few steps instead of ``np.searchsorted``'s ``log2(n)`` cache misses."""

    def __init__(self, w: np.ndarray) -> None:
        self.cum = np.cumsum(w)  # [n]
        self.width = self.cum[-1] / w.size
        self.bounds = np.arange(w.size + 1) * self.width  # [n + 1]
        self.guide = np.searchsorted(self.cum, self.bounds, side="right")  # [n + 1]

    def index(self, q: np.ndarray) -> np.ndarray:
        """``np.searchsorted(cum, q, side="right")`` for ``q`` in ``[0, sum(w)]``."""
        n = self.cum.size
        j = np.clip((q / self.width).astype(np.int64), 0, n)
        j -= self.bounds[j] > q  # undo rounding up in q / width
        pos = self.guide[j]
        todo = np.flatnonzero(pos < n)
        while todo.size:  # a bucket spans a few nodes at most: few passes
            step = self.cum[pos[todo]] <= q[todo]
            todo = todo[step]
            pos[todo] += 1
            todo = todo[pos[todo] < n]
        return pos


def _draw_edges(rng: np.random.Generator, y: np.ndarray, w: np.ndarray, num_classes: int,
                homophily: float, count: int) -> np.ndarray:
    """``count`` undirected edges as keys ``min * N + max`` (self-loops included)."""
    n = y.size
    by_class = np.argsort(y, kind="stable")  # nodes grouped by class
    cdf = _InverseCdf(w[by_class])
    start = np.searchsorted(y[by_class], np.arange(num_classes + 1))  # [C + 1] class bounds
    lo = np.where(start[:-1] > 0, cdf.cum[np.maximum(start[:-1] - 1, 0)], 0.0)  # [C]
    hi = cdf.cum[np.maximum(start[1:] - 1, 0)]  # [C]

    u = by_class[np.minimum(cdf.index(rng.random(count) * cdf.cum[-1]), n - 1)]
    cls = y[u]
    other = rng.random(count) >= homophily
    if num_classes > 1:
        shift = rng.integers(1, num_classes, size=count)
        cls = np.where(other, (cls + shift) % num_classes, cls)
    pos = cdf.index(lo[cls] + rng.random(count) * (hi[cls] - lo[cls]))
    # Rounding can step one past a class's last node; clamp into the class.
    pos = np.clip(pos, start[cls], start[cls + 1] - 1)
    v = by_class[pos]
    return np.minimum(u, v) * n + np.maximum(u, v)


def _features(rng: np.random.Generator, y: np.ndarray, num_classes: int, num_features: int,
              density: float) -> np.ndarray:
    n = y.size
    per_class = max(1, num_features // num_classes)
    dims = rng.permutation(num_features)
    block = np.arange(num_classes)[:, None] * per_class + np.arange(per_class)  # [C, P]
    preferred = dims[block % num_features]  # [C, P] wraps around when C > F
    counts = rng.binomial(num_features, density, size=n)  # [N] active dimensions per node
    rows = np.repeat(np.arange(n), counts)  # [nnz]
    from_class = rng.random(rows.size) < _CLASS_FEATURE_SHARE
    cols = np.where(from_class, preferred[y[rows], rng.integers(0, per_class, size=rows.size)],
                    rng.integers(0, num_features, size=rows.size))
    x = np.zeros((n, num_features), dtype=np.float32)
    x[rows, cols] = 1.0
    return x


def _labels_and_edges(n: int, num_edges: int, num_classes: int, homophily: float,
                      power_law_exponent: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Steps 1 to 3 of the module docstring: ``y [N]`` and ``num_edges`` distinct
    undirected edges as keys ``min * N + max``, in draw order."""
    y = _rng(seed, "labels").permutation(np.arange(n) % num_classes)  # [N]

    rng = _rng(seed, "degrees")
    w = rng.pareto(power_law_exponent - 1.0, size=n) + 1.0  # [N] Pareto with x_min = 1
    w *= 2.0 * num_edges / max(w.sum(), 1e-12)  # mean weight = mean degree
    np.minimum(w, np.sqrt(2.0 * max(num_edges, 1)), out=w)

    rng = _rng(seed, "edges")
    keys = np.empty(0, dtype=np.int64)
    for _ in range(_MAX_DRAW_ROUNDS):
        missing = num_edges - keys.size
        if missing <= 0:
            break
        draw = _draw_edges(rng, y, w, num_classes, homophily, int(missing * 1.1) + 16)
        draw = draw[draw // n != draw % n]  # no self-loops
        keys = np.concatenate([keys, draw])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]  # distinct, in draw order
    else:
        if keys.size < num_edges:
            raise ValueError(f"found only {keys.size} distinct edges of the {num_edges} requested "
                             f"after {_MAX_DRAW_ROUNDS} rounds; lower num_edges or homophily, or "
                             f"raise num_nodes")
    return y, keys[:num_edges]


def _split(n: int, seed: int, train: float, val: float, test: Optional[float] = None) -> List[np.ndarray]:
    """Train, validation and test masks over a random permutation (at least one node
    each); ``test=None``: every node not in the first two."""
    perm = _rng(seed, "split").permutation(n)
    n_train = max(1, int(round(train * n)))
    n_val = max(1, int(round(val * n)))
    n_test = n - n_train - n_val if test is None else max(1, int(round(test * n)))
    masks = []
    for part in (perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:n_train + n_val + n_test]):
        mask = np.zeros(n, dtype=bool)
        mask[part] = True
        masks.append(mask)
    return masks


def synthetic_graph(num_nodes: int, num_edges: int, num_classes: int = 10, num_features: int = 128,
                    feature_density: float = 0.05, homophily: float = 0.8,
                    power_law_exponent: float = 2.5, seed: int = 0,
                    self_loops: bool = True) -> NodeDataset:
    """A seeded community graph with power-law degrees and class-correlated features.

    Args:
        num_nodes: number of nodes (at least 3).
        num_edges: distinct undirected edges, self-loops excluded; the graph stores both
            directions, so ``graph.num_edges == 2 * num_edges`` (plus ``num_nodes``
            self-loops when ``self_loops``).
        num_classes: classes, one community each (default: 10).
        num_features: feature dimensions (default: 128).
        feature_density: expected share of dimensions switched on per node (default: 0.05).
        homophily: probability that an edge joins two nodes of the same class (default: 0.8).
        power_law_exponent: tail exponent ``gamma`` of the degree law, > 2 (default: 2.5).
        seed: seeds every random step (default: 0).
        self_loops: add one self-loop per node, as :func:`~graphmae2.datasets.load_dataset`
            does (default: True).

    Returns:
        A :class:`NodeDataset` named ``"synthetic"`` with a 10/10/80 random split.
    """
    _check(num_nodes, num_edges, num_classes, num_features, feature_density, homophily,
           power_law_exponent)
    n = num_nodes
    y, keys = _labels_and_edges(n, num_edges, num_classes, homophily, power_law_exponent, seed)
    x = _features(_rng(seed, "features"), y, num_classes, num_features, feature_density)
    masks = _split(n, seed, *_SPLIT)
    dataset = NodeDataset.from_arrays(x, (keys // n, keys % n), y=y, train_mask=masks[0],
                                      val_mask=masks[1], test_mask=masks[2], num_classes=num_classes,
                                      num_nodes=n, name="synthetic", self_loops=self_loops)
    logger.info("generated %r", dataset)
    return dataset


_LARGE_SPLIT = (0.01, 0.01, 0.01)  # labelled shares: papers100M labels 1.4 % of its nodes
_BLOCK = 1 << 16  # feature rows drawn (and written) together, each block from its own stream


def write_synthetic_graph(path: Union[str, Path], num_nodes: int, num_edges: int, num_classes: int = 10,
                          num_features: int = 128, feature_signal: float = 0.1, homophily: float = 0.8,
                          power_law_exponent: float = 2.5, seed: int = 0) -> Path:
    """Write a synthetic graph too large for memory as a graph folder
    (:mod:`graphmae2.datasets.graph_dir`), read back with ``data.dataset: npz`` and
    ``data.path`` the folder, features memory-mapped.

    The structure and labels are steps 1 to 3 of the module docstring. The features are
    dense float32, as papers100M's are: node ``v`` gets ``mu[y_v] + noise``, with class
    means ``mu [C, F] ~ N(0, feature_signal^2)`` and standard normal noise, so that a
    linear probe on the raw features is far from perfect and the neighbourhood (80 %
    same-class at the default homophily) carries the rest. They are drawn and written
    :data:`_BLOCK` rows at a time, block ``b`` from the ``("dense-features", b)`` stream,
    so memory holds the edges, never the features. The split labels 1 % of the nodes
    each for training, validation and test (papers100M labels 1.4 %); the rest are
    unlabelled for evaluation, though ``y`` covers every node.

    Returns the folder; an existing one is an error (remove it to write it again).
    """
    from ..graph import Graph
    from .graph_dir import write_graph_dir

    _check(num_nodes, num_edges, num_classes, num_features, 0.0, homophily, power_law_exponent)
    n = num_nodes
    y, keys = _labels_and_edges(n, num_edges, num_classes, homophily, power_law_exponent, seed)
    u, v = keys // n, keys % n
    del keys
    loops = np.arange(n, dtype=np.int64)
    # Distinct pairs without self-loops: both directions and one loop per node have no repeats.
    graph = Graph.from_edges(torch.from_numpy(np.concatenate([u, v, loops])),
                             torch.from_numpy(np.concatenate([v, u, loops])), n, coalesce=False)
    del u, v
    means = _rng(seed, "class-means").normal(0.0, feature_signal, size=(num_classes, num_features))

    def rows(start: int, stop: int) -> np.ndarray:
        noise = _rng(seed, f"dense-features-{start // _BLOCK}").standard_normal((stop - start, num_features))
        return (means[y[start:stop]] + noise).astype(np.float32)

    train, val, test = _split(n, seed, *_LARGE_SPLIT)
    return write_graph_dir(path, graph, rows, num_features=num_features, y=y, train_mask=train,
                           val_mask=val, test_mask=test, block=_BLOCK)
