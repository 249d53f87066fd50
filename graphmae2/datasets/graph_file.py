"""Your own graph from a file: ``data.dataset: npz`` with ``data.path``.

Two formats, read without running any code from the file:

- ``.npz`` (``np.savez``), loaded with ``allow_pickle=False``. Arrays: ``x`` ``[N, F]``
  features; the edges as ``edge_index`` ``[2, E]`` (PyG's layout) or as ``src`` and
  ``dst`` ``[E]``; optionally ``y`` ``[N]`` integer labels and ``train_mask``,
  ``val_mask``, ``test_mask`` ``[N]`` bool (all three, with ``y``). Any other key is an
  error, so a misspelt mask is not silently ignored.
- ``.pt`` (``torch.save``) of a dict with the same keys, or of a PyG ``Data``. It is read
  with ``weights_only=True``; a ``Data`` needs four PyG classes, which are allowed for
  that one load only (:data:`PYG_GLOBALS`), never unrestricted unpickling.

>>> np.savez("my_graph.npz", x=x, edge_index=edge_index, y=y,  # doctest: +SKIP
...          train_mask=train, val_mask=val, test_mask=test)
"""
from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

from ..interop import import_pyg_data, is_pyg_data
from .convert import as_node_dataset
from .node_dataset import _SPLITS, NodeDataset

__all__ = ["GRAPH_FILE_KEYS", "PYG_GLOBALS", "read_graph_file"]

logger = logging.getLogger(__name__)

#: Every array a graph file may hold.
GRAPH_FILE_KEYS = ("x", "edge_index", "src", "dst", "y", *_SPLITS)

#: The globals a ``torch.save``-d ``torch_geometric.data.Data`` needs: the class, its
#: storage and the two attribute records. Only these are allow-listed.
PYG_GLOBALS = ("torch_geometric.data.data.Data", "torch_geometric.data.storage.GlobalStorage",
               "torch_geometric.data.data.DataEdgeAttr", "torch_geometric.data.data.DataTensorAttr")


def _from_arrays(arrays: Dict[str, Any], path: Path) -> NodeDataset:
    """Check the keys of a file's arrays, then build the dataset."""
    where = f"data.path={path}"
    unknown = sorted(set(arrays) - set(GRAPH_FILE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(GRAPH_FILE_KEYS)}")
    if "x" not in arrays:
        raise ValueError(f"{where}: no 'x' (node features [N, F]); keys found: {', '.join(sorted(arrays)) or 'none'}")
    has_pair = "src" in arrays or "dst" in arrays
    if "edge_index" in arrays and has_pair:
        raise ValueError(f"{where}: give the edges once, as edge_index [2, E] or as src and dst, not both")
    if has_pair and not ("src" in arrays and "dst" in arrays):
        raise ValueError(f"{where}: {'src' if 'src' in arrays else 'dst'} without "
                         f"{'dst' if 'src' in arrays else 'src'}; give both, or edge_index [2, E]")
    if not has_pair and "edge_index" not in arrays:
        raise ValueError(f"{where}: no edges; add edge_index [2, E] or src and dst [E]")
    edges = (arrays["src"], arrays["dst"]) if has_pair else arrays["edge_index"]
    return NodeDataset.from_arrays(arrays["x"], edges, name=path.stem,
                                   **{k: arrays.get(k) for k in ("y", *_SPLITS)})


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle
        raise ValueError(f"data.path={path}: {exc}; store plain numeric arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"data.path={path}: not a readable .npz file ({exc})") from None


def _read_pt(path: Path) -> Any:
    """``torch.load(weights_only=True)``, allowing PyG's ``Data`` classes only when the
    file needs them and nothing else."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"data.path={path}: not a readable torch.save file "
                         f"({str(exc).splitlines()[0]})") from None
    if not hasattr(torch.serialization, "safe_globals"):
        raise ValueError(f"data.path={path}: reading a torch_geometric Data needs torch >= 2.5 "
                         f"(have {torch.__version__}); save a dict of tensors instead")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ValueError(f"data.path={path}: not a readable torch.save file "
                         f"({str(exc).splitlines()[0]})") from None
    refused = sorted(set(needed) - set(PYG_GLOBALS))
    if refused:
        raise ValueError(f"data.path={path}: refused to load {', '.join(refused)} (unpickling it could "
                         f"run code); a .pt graph must hold a dict of tensors or a torch_geometric Data")
    data_class = import_pyg_data()  # a clear error when PyG is missing
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    with torch.serialization.safe_globals([data_class, GlobalStorage, DataEdgeAttr, DataTensorAttr]):
        return torch.load(path, map_location="cpu", weights_only=True)


def read_graph_file(path: Union[str, Path]) -> NodeDataset:
    """The :class:`NodeDataset` stored in a ``.npz`` or ``.pt`` file (see the module
    docstring for the keys), named after the file, features unscaled."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data.path={path}: no such file")
    if path.suffix == ".npz":
        data = _from_arrays(_read_npz(path), path)
    elif path.suffix == ".pt":
        stored = _read_pt(path)
        if is_pyg_data(stored):
            data = as_node_dataset(stored, name=path.stem)
        elif isinstance(stored, dict):
            data = _from_arrays(stored, path)
        else:
            raise ValueError(f"data.path={path}: holds a {type(stored).__name__}; expected a dict "
                             f"of tensors or a torch_geometric Data")
    else:
        raise ValueError(f"data.path={path}: unknown file type {path.suffix!r}; allowed: .npz, .pt")
    logger.info("read %r from %s", data, path)
    return data
