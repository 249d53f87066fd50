"""``NodeDataset``: one graph with node features, labels and a train/val/test split.

It is the single object the rest of graphmae2 receives from the data stage, and it is
checked on construction so that a bad dataset fails here, with the offending count and
index, instead of as a NaN loss or an index error deep inside training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from ..graph import Graph

__all__ = ["NodeDataset"]

_SPLITS = ("train_mask", "val_mask", "test_mask")


@dataclass
class NodeDataset:
    """A node-classification dataset, validated when created.

    Args:
        name: dataset name, e.g. ``"cora"``.
        graph: structure; :func:`~graphmae2.datasets.load_dataset` gives it both edge
            directions, no duplicates and (by default) one self-loop per node.
        x: ``[N, F]`` float32 node features.
        y: ``[N]`` int64 labels in ``[0, num_classes)``.
        train_mask, val_mask, test_mask: ``[N]`` bool, non-empty and pairwise disjoint.
        num_classes: number of label classes.
    """

    name: str
    graph: Graph
    x: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    num_classes: int

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first problem found (count and first index)."""
        n, where = self.num_nodes, f"dataset {self.name!r}"
        if self.x.dim() != 2 or not self.x.is_floating_point():
            raise ValueError(f"{where}: x must be a 2-D float tensor, got {self.x.dtype} "
                             f"of shape {tuple(self.x.shape)}")
        if self.x.shape[0] != n:
            raise ValueError(f"{where}: x has {self.x.shape[0]} feature rows but the graph has "
                             f"{n} nodes; give one row per node (zeros for featureless nodes)")
        bad = ~torch.isfinite(self.x)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{where}: x has {int(bad.sum())} NaN/Inf value(s), first at "
                             f"node {row}, feature {col}; clean or impute them before training")
        if self.y.shape != (n,) or self.y.dtype != torch.int64:
            raise ValueError(f"{where}: y must be int64 of shape ({n},), got {self.y.dtype} "
                             f"of shape {tuple(self.y.shape)}")
        if isinstance(self.num_classes, bool) or int(self.num_classes) != self.num_classes \
                or self.num_classes < 1:
            raise ValueError(f"{where}: num_classes must be a positive integer, got {self.num_classes!r}")
        bad = (self.y < 0) | (self.y >= self.num_classes)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise ValueError(f"{where}: {int(bad.sum())} label(s) outside [0, {self.num_classes}), "
                             f"first at node {first}: {int(self.y[first])}")
        for key in _SPLITS:
            mask = getattr(self, key)
            if mask.shape != (n,) or mask.dtype != torch.bool:
                raise ValueError(f"{where}: {key} must be bool of shape ({n},), got {mask.dtype} "
                                 f"of shape {tuple(mask.shape)}")
            if not bool(mask.any()):
                raise ValueError(f"{where}: {key} selects no node; every split needs at least one")
        for i, a in enumerate(_SPLITS):
            for b in _SPLITS[i + 1:]:
                both = getattr(self, a) & getattr(self, b)
                if bool(both.any()):
                    raise ValueError(f"{where}: {a} and {b} share {int(both.sum())} node(s), "
                                     f"first {int(both.nonzero()[0, 0])}; splits must be disjoint")

    @classmethod
    def from_arrays(cls, name: str, x: Any, y: Any, src: Any, dst: Any, train_mask: Any,
                    val_mask: Any, test_mask: Any, num_classes: Optional[int] = None,
                    num_nodes: Optional[int] = None, self_loops: bool = True) -> "NodeDataset":
        """Build and validate a dataset from numpy arrays or tensors.

        Edges ``src[i] -> dst[i]`` are made undirected and deduplicated, self-loops are
        dropped and, when ``self_loops`` is true, exactly one per node is added back.
        ``num_classes`` defaults to ``max(y) + 1`` and ``num_nodes`` to the rows of ``x``.
        Masks must already be bool: an index array would be misread as a mask.
        """
        x = torch.as_tensor(x).float()
        y = torch.as_tensor(y)
        if y.is_floating_point():
            raise ValueError(f"dataset {name!r}: y must hold integer labels, got {y.dtype}")
        y = y.long()
        if num_nodes is None:
            num_nodes = int(x.shape[0]) if x.dim() >= 1 else 0
        graph = Graph.from_edges(torch.as_tensor(src), torch.as_tensor(dst), num_nodes)
        graph = graph.symmetrize()
        graph = graph.add_self_loops() if self_loops else graph.remove_self_loops()
        if num_classes is None:
            num_classes = int(y.max()) + 1 if y.numel() else 0
        return cls(name=name, graph=graph, x=x, y=y,
                   train_mask=torch.as_tensor(train_mask), val_mask=torch.as_tensor(val_mask),
                   test_mask=torch.as_tensor(test_mask),
                   num_classes=int(num_classes))

    def __repr__(self) -> str:
        return (f"NodeDataset({self.name!r}, num_nodes={self.num_nodes}, "
                f"num_edges={self.graph.num_edges}, num_features={self.num_features}, "
                f"num_classes={self.num_classes})")
