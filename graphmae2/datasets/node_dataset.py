"""``NodeDataset``: one graph with node features and, when known, labels and a split.

It is the single object the rest of graphmae2 receives from the data stage, and it is
checked on construction so that a bad dataset fails here, with the offending count and
index, instead of as a NaN loss or an index error deep inside training. Labels and the
train/val/test masks are optional: an unlabelled graph can still be pre-trained, it just
cannot be evaluated.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from ..graph import Graph

__all__ = ["NodeDataset"]

_SPLITS = ("train_mask", "val_mask", "test_mask")


def _edge_pair(edges: Any, where: str) -> Tuple[Tensor, Tensor]:
    """``(src, dst)`` from a ``[2, E]`` array (PyG's ``edge_index``) or a ``(src, dst)`` pair."""
    if isinstance(edges, (tuple, list)) and len(edges) == 2:
        return torch.as_tensor(edges[0]), torch.as_tensor(edges[1])
    edges = torch.as_tensor(edges)
    if edges.dim() != 2 or edges.shape[0] != 2:
        raise ValueError(f"{where}: edges must be a [2, num_edges] array (PyG's edge_index) or a "
                         f"(src, dst) pair, got shape {tuple(edges.shape)}")
    return edges[0], edges[1]


def _non_finite(x: Tensor, block: int = 1 << 16) -> Tuple[int, Tuple[int, int]]:
    """How many entries of ``x`` are NaN/Inf and the (row, column) of the first, read a
    block of rows at a time (``x`` may be a memory-mapped matrix larger than memory)."""
    count, first = 0, (-1, -1)
    for start in range(0, x.shape[0], block):
        bad = ~torch.isfinite(x[start:start + block])
        if bool(bad.any()):
            if not count:
                row, col = (int(i) for i in bad.nonzero()[0])
                first = (start + row, col)
            count += int(bad.sum())
    return count, first


@dataclass
class NodeDataset:
    """A node dataset, validated when created.

    Args:
        name: dataset name, e.g. ``"cora"``.
        graph: structure; :meth:`from_arrays` (and every loader) gives it both edge
            directions, no duplicates and (by default) one self-loop per node.
        x: ``[N, F]`` float32 node features.
        y: ``[N]`` int64 labels in ``[0, num_classes)``, or ``None`` (unlabelled graph).
        train_mask, val_mask, test_mask: ``[N]`` bool, non-empty and pairwise disjoint;
            given exactly when ``y`` is (default: none).
        num_classes: number of label classes (``None`` without labels).

    Labels come with their split: ``y`` without the three masks is refused, since nothing
    could evaluate against it. An unlabelled dataset (no ``y``, no masks) pre-trains only.
    """

    name: str
    graph: Graph
    x: Tensor
    y: Optional[Tensor] = None
    train_mask: Optional[Tensor] = None
    val_mask: Optional[Tensor] = None
    test_mask: Optional[Tensor] = None
    num_classes: Optional[int] = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    @property
    def has_splits(self) -> bool:
        """Labels and all three of train, validation and test masks: what evaluation needs."""
        return self.y is not None and all(getattr(self, key) is not None for key in _SPLITS)

    @property
    def why_not_evaluated(self) -> Optional[str]:
        """One line on why this dataset cannot be evaluated, or ``None`` when it can."""
        if self.y is None:
            return f"dataset {self.name!r} has no labels"
        given = [key for key in _SPLITS if getattr(self, key) is not None]
        if len(given) < len(_SPLITS):
            has = f"only {', '.join(given)}" if given else "no split masks"
            return f"dataset {self.name!r} has labels but {has}; evaluation needs train_mask, val_mask and test_mask"
        return None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first problem found (count and first index)."""
        n, where = self.num_nodes, f"dataset {self.name!r}"
        if self.x.dim() != 2 or not self.x.is_floating_point():
            raise ValueError(f"{where}: x must be a 2-D float tensor, got {self.x.dtype} "
                             f"of shape {tuple(self.x.shape)}")
        if self.x.shape[0] != n:
            raise ValueError(f"{where}: x has {self.x.shape[0]} feature rows but the graph has "
                             f"{n} nodes; give one row per node (zeros for featureless nodes)")
        count, first = _non_finite(self.x)
        if count:
            raise ValueError(f"{where}: x has {count} NaN/Inf value(s), first at node {first[0]}, "
                             f"feature {first[1]}; clean or impute them before training")
        given = [key for key in _SPLITS if getattr(self, key) is not None]
        if self.y is None:
            if given:
                raise ValueError(f"{where}: {given[0]} given without labels y; splits select "
                                 f"labelled nodes, so pass y too (or no masks to pre-train only)")
            if self.num_classes is not None:
                raise ValueError(f"{where}: num_classes={self.num_classes!r} given without labels y")
            return
        self._validate_labels(n, where)
        # Pre-training needs no labels: a partial split (PyG's KarateClub has train_mask
        # only) is kept and checked; evaluation runs only on a full one (has_splits).
        for key in given:
            mask = getattr(self, key)
            if mask.shape != (n,) or mask.dtype != torch.bool:
                raise ValueError(f"{where}: {key} must be bool of shape ({n},), got {mask.dtype} "
                                 f"of shape {tuple(mask.shape)}")
            if not bool(mask.any()):
                raise ValueError(f"{where}: {key} selects no node; every split needs at least one")
        for i, a in enumerate(given):
            for b in given[i + 1:]:
                both = getattr(self, a) & getattr(self, b)
                if bool(both.any()):
                    raise ValueError(f"{where}: {a} and {b} share {int(both.sum())} node(s), "
                                     f"first {int(both.nonzero()[0, 0])}; splits must be disjoint")

    def _validate_labels(self, n: int, where: str) -> None:
        if self.y.shape != (n,) or self.y.dtype != torch.int64:
            raise ValueError(f"{where}: y must be int64 of shape ({n},), got {self.y.dtype} "
                             f"of shape {tuple(self.y.shape)}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, numbers.Real) \
                or int(self.num_classes) != self.num_classes or self.num_classes < 1:
            raise ValueError(f"{where}: num_classes must be a positive integer, got {self.num_classes!r}")
        bad = (self.y < 0) | (self.y >= self.num_classes)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise ValueError(f"{where}: {int(bad.sum())} label(s) outside [0, {self.num_classes}), "
                             f"first at node {first}: {int(self.y[first])}")

    @classmethod
    def from_arrays(cls, x: Any, edges: Any, *, y: Any = None, train_mask: Any = None,
                    val_mask: Any = None, test_mask: Any = None, num_classes: Optional[int] = None,
                    num_nodes: Optional[int] = None, name: str = "custom",
                    self_loops: bool = True) -> "NodeDataset":
        """Build and validate a dataset from numpy arrays or tensors.

        Args:
            x: ``[N, F]`` node features (cast to float32).
            edges: ``[2, E]`` (PyG's ``edge_index``: row 0 sources, row 1 targets) or a
                ``(src, dst)`` pair of ``[E]`` arrays. Made undirected and deduplicated;
                self-loops are dropped and, when ``self_loops`` is true (the default),
                exactly one per node is added back, as GraphMAE2 trains.
            y: ``[N]`` integer labels (``[N, 1]`` is flattened), or ``None``.
            train_mask, val_mask, test_mask: ``[N]`` bool, all three exactly when ``y``
                is given. They must already be bool: an index array would be misread as a mask.
            num_classes: default ``max(y) + 1``.
            num_nodes: default the rows of ``x``.
            name: used in error messages and run directories.
        """
        where = f"dataset {name!r}"
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            raise ValueError(f"{where}: x must hold floating-point features, got {x.dtype}")
        x = x.float()
        if y is not None:
            y = torch.as_tensor(y)
            if y.dim() == 2 and y.shape[1] == 1:  # OGB and some PyG datasets store [N, 1]
                y = y[:, 0]
            if y.is_floating_point() or y.dtype == torch.bool:
                raise ValueError(f"{where}: y must hold integer class labels, got {y.dtype}")
            y = y.long()
            if num_classes is None:
                num_classes = int(y.max()) + 1 if y.numel() else 0
        if num_nodes is None:
            num_nodes = int(x.shape[0]) if x.dim() >= 1 else 0
        src, dst = _edge_pair(edges, where)
        try:
            graph = Graph.from_edges(src, dst, num_nodes)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc} (the graph has {num_nodes} nodes, one per row of x)") from None
        graph = graph.symmetrize()
        graph = graph.add_self_loops() if self_loops else graph.remove_self_loops()
        masks = {key: None if m is None else torch.as_tensor(m)
                 for key, m in zip(_SPLITS, (train_mask, val_mask, test_mask))}
        return cls(name=name, graph=graph, x=x, y=y, num_classes=None if y is None else int(num_classes),
                   **masks)

    def to_pyg(self):
        """A ``torch_geometric.data.Data`` with ``edge_index``, ``x`` and, when present,
        ``y`` and the masks (imports PyG lazily)."""
        data = self.graph.to_pyg()
        data.x = self.x
        for key in ("y", *_SPLITS):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def to_dgl(self):
        """A ``dgl.DGLGraph`` with DGL's dataset keys: ``ndata["feat"]`` and, when present,
        ``ndata["label"]`` and the masks (imports DGL lazily)."""
        g = self.graph.to_dgl()
        g.ndata["feat"] = self.x
        if self.y is not None:
            g.ndata["label"] = self.y
        for key in _SPLITS:
            if getattr(self, key) is not None:
                g.ndata[key] = getattr(self, key)
        return g

    def __repr__(self) -> str:
        return (f"NodeDataset({self.name!r}, num_nodes={self.num_nodes}, "
                f"num_edges={self.graph.num_edges}, num_features={self.num_features}, "
                f"num_classes={self.num_classes})")
