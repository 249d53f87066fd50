"""Graphs held in memory as PyTorch Geometric or DGL objects, turned into a :class:`NodeDataset`.

:func:`as_node_dataset` is what :func:`~graphmae2.datasets.load_data` and
:func:`graphmae2.pretrain` call on a ``source`` they are handed. Every conversion goes
through :meth:`NodeDataset.from_arrays`, so the graph is made exactly as the packaged
datasets are (undirected, deduplicated, one self-loop per node) and the same one-line
errors apply. A PyG graph and a DGL graph of Cora therefore give the packaged Cora's
graph bitwise, and so the same pre-training. Neither library is imported here.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import Tensor

from ..graph import Graph
from ..interop import is_dgl_graph, is_pyg_data
from .node_dataset import _SPLITS, NodeDataset

__all__ = ["DGL_FEATURE_KEYS", "DGL_LABEL_KEYS", "as_node_dataset"]

#: ``ndata`` keys read from a DGL graph, in order of preference (DGL's datasets use the first).
DGL_FEATURE_KEYS = ("feat", "x")
DGL_LABEL_KEYS = ("label", "y")

_ACCEPTED = ("a NodeDataset, a torch_geometric.data.Data, a dgl.DGLGraph with ndata['feat'], "
             "or a (graph, x) pair with graph a graphmae2.Graph, Data or DGLGraph")


def _from_pyg(data: Any) -> Dict[str, Any]:
    graph = Graph.from_pyg(data)  # checks the type and edge_index
    out = {"edges": graph.edges(), "num_nodes": graph.num_nodes, "x": data.x}
    for key in ("y", *_SPLITS):
        if key in data:
            out[key] = data[key]
    return out


def _from_dgl(g: Any) -> Dict[str, Any]:
    if len(g.ntypes) != 1 or len(g.canonical_etypes) != 1:
        raise TypeError(f"heterogeneous DGL graph (node types {g.ntypes}); convert it with "
                        f"dgl.to_homogeneous(g) first")
    src, dst = g.edges()
    out = {"edges": (src.cpu(), dst.cpu()), "num_nodes": g.num_nodes(),
           "x": next((g.ndata[k] for k in DGL_FEATURE_KEYS if k in g.ndata), None),
           "y": next((g.ndata[k] for k in DGL_LABEL_KEYS if k in g.ndata), None)}
    for key in _SPLITS:
        if key in g.ndata:
            out[key] = g.ndata[key]
    return out


def _fields(source: Any) -> Dict[str, Any]:
    """Edges, node count, features and (when the object has them) labels and masks."""
    if isinstance(source, Graph):
        return {"edges": source.edges(), "num_nodes": source.num_nodes, "x": None}
    if is_pyg_data(source):
        return _from_pyg(source)
    if is_dgl_graph(source):
        return _from_dgl(source)
    raise TypeError(f"cannot pre-train on a {type(source).__name__}; expected {_ACCEPTED}")


def as_node_dataset(source: Any, name: Optional[str] = None, self_loops: bool = True) -> NodeDataset:
    """A :class:`NodeDataset` from ``source``; a ``NodeDataset`` is returned as it is.

    Args:
        source: a ``torch_geometric.data.Data`` (``edge_index``, ``x``, optional ``y``,
            ``train_mask``/``val_mask``/``test_mask``), a ``dgl.DGLGraph`` (``ndata``
            ``feat`` or ``x``; optional ``label`` or ``y`` and the masks), or a
            ``(graph, x)`` pair whose ``x`` replaces the graph's features (``graph``
            a :class:`~graphmae2.Graph`, ``Data`` or ``DGLGraph``; labels and masks
            still come from it when it has them).
        name: dataset name for messages and run directories (default: ``"pyg"``,
            ``"dgl"`` or ``"custom"``).
        self_loops: one self-loop per node (default: True), as training expects.
    """
    if isinstance(source, NodeDataset):
        return source
    x: Optional[Tensor] = None
    if isinstance(source, tuple):
        if len(source) != 2:
            raise TypeError(f"a tuple source must be (graph, x), got {len(source)} items")
        source, x = source
    fields = _fields(source)
    if x is not None:
        fields["x"] = x
    default = "pyg" if is_pyg_data(source) else "dgl" if is_dgl_graph(source) else "custom"
    name = name or default
    if fields["x"] is None:
        where = {"pyg": "data.x", "dgl": f"g.ndata[{DGL_FEATURE_KEYS[0]!r}]"}.get(default, "x")
        raise ValueError(f"dataset {name!r}: no node features; set {where} or pass (graph, x)")
    return NodeDataset.from_arrays(name=name, self_loops=self_loops, **fields)
