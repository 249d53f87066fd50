"""PyTorch Geometric and DGL at the edges: recognising their objects without importing
them, and importing them with an error that says how to install them. The conversions
themselves are :class:`~graphmae2.graph.Graph`'s ``from_pyg`` / ``to_pyg`` /
``from_dgl`` / ``to_dgl`` and :func:`~graphmae2.datasets.as_node_dataset`."""
from __future__ import annotations

from typing import Any


def is_pyg_data(obj: Any) -> bool:
    """Whether ``obj`` is a PyTorch Geometric data object (checked without importing PyG)."""
    return type(obj).__module__.startswith("torch_geometric.")


def is_dgl_graph(obj: Any) -> bool:
    """Whether ``obj`` is a ``dgl.DGLGraph`` (checked without importing DGL)."""
    return type(obj).__module__.split(".")[0] == "dgl"


def import_pyg_data() -> type:
    """``torch_geometric.data.Data``, or an ImportError saying how to install PyG."""
    try:
        from torch_geometric.data import Data
    except ImportError:
        raise ImportError("this needs PyTorch Geometric, which graphmae2 does not install by "
                          "default: pip install 'graphmae2[pyg]' (or torch-geometric)") from None
    return Data
