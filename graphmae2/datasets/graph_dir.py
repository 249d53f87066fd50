"""A graph too large for one file in memory: a folder of ``.npy`` arrays, features memory-mapped.

``data.dataset: npz`` with ``data.path`` a folder reads this layout (papers100M-sized
graphs are shipped this way: the features alone are 56 GB as float32)::

    indptr.npy    [N + 1] int64   destination-sorted CSR offsets (as graphmae2.graph.Graph stores it)
    indices.npy   [E] int32/int64 sources of the in-edges of each node, ascending within a node
    x.npy         [N, F] float32  features, memory-mapped: only the rows a batch reads are loaded
    y.npy         [N] int         labels (optional; with all three masks)
    train_mask.npy, val_mask.npy, test_mask.npy   [N] bool (optional)

The CSR is used as stored: write it undirected, deduplicated and with one self-loop per
node, as :meth:`NodeDataset.from_arrays` builds graphs (:func:`write_graph_dir` does).
The structure is checked when read (offsets, index range); the features when the
dataset is validated, a block of rows at a time.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from tqdm import tqdm

from ..graph import Graph
from .node_dataset import _SPLITS, NodeDataset

__all__ = ["GRAPH_DIR_FILES", "read_graph_dir", "write_graph_dir"]

logger = logging.getLogger(__name__)

#: Every file a graph folder may hold (``.npy`` each).
GRAPH_DIR_FILES = ("indptr", "indices", "x", "y", *_SPLITS)

#: ``rows(start, stop)``: float32 feature rows ``start:stop``, for features written a block at a time.
RowBlocks = Callable[[int, int], np.ndarray]


def _load(path: Path, name: str, mmap: bool = False) -> Optional[np.ndarray]:
    file = path / f"{name}.npy"
    if not file.is_file():
        return None
    try:
        return np.load(file, mmap_mode="c" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"data.path={path}: {name}.npy is not a readable .npy file ({exc})") from None


def _check_csr(path: Path, indptr: np.ndarray, indices: np.ndarray, num_nodes: int) -> None:
    where = f"data.path={path}"
    if indptr.ndim != 1 or indptr.dtype.kind not in "iu" or indptr.size != num_nodes + 1:
        raise ValueError(f"{where}: indptr.npy must be 1-D integer of size num_nodes + 1 = {num_nodes + 1} "
                         f"(one row of x.npy per node), got {indptr.dtype} of shape {indptr.shape}")
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise ValueError(f"{where}: indices.npy must be 1-D integer, got {indices.dtype} of shape {indices.shape}")
    if indptr[0] != 0 or indptr[-1] != indices.size or bool((np.diff(indptr) < 0).any()):
        raise ValueError(f"{where}: indptr.npy must start at 0, never decrease and end at the {indices.size} "
                         f"entries of indices.npy (starts {indptr[0]}, ends {indptr[-1]})")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= num_nodes):
        raise ValueError(f"{where}: indices.npy holds node ids outside [0, {num_nodes}) "
                         f"(min {int(indices.min())}, max {int(indices.max())})")


def read_graph_dir(path: Union[str, Path]) -> NodeDataset:
    """The :class:`NodeDataset` stored in a graph folder (module docstring), named after
    the folder; ``x`` is a tensor over the memory-mapped ``x.npy`` (copy-on-write: the
    file is never modified), the CSR is read into memory."""
    path = Path(path).expanduser()
    unknown = sorted(p.name for p in path.iterdir() if p.suffix != ".npy" or p.stem not in GRAPH_DIR_FILES)
    if unknown:
        raise ValueError(f"data.path={path}: unknown file(s) {', '.join(unknown)}; a graph folder holds "
                         f"{', '.join(f + '.npy' for f in GRAPH_DIR_FILES)}")
    missing = [f"{name}.npy" for name in ("indptr", "indices", "x") if not (path / f"{name}.npy").is_file()]
    if missing:
        raise ValueError(f"data.path={path}: no {', '.join(missing)}; a graph folder needs indptr.npy, "
                         f"indices.npy and x.npy")
    x = _load(path, "x", mmap=True)
    if x.ndim != 2 or x.dtype != np.float32:
        raise ValueError(f"data.path={path}: x.npy must be float32 [num_nodes, num_features], "
                         f"got {x.dtype} of shape {x.shape}")
    indptr, indices = _load(path, "indptr"), _load(path, "indices")
    _check_csr(path, indptr, indices, x.shape[0])
    graph = Graph(torch.from_numpy(indptr.astype(np.int64, copy=False)),
                  torch.from_numpy(indices.astype(np.int64, copy=False)), x.shape[0])
    labels = {name: _load(path, name) for name in ("y", *_SPLITS)}
    y = labels.pop("y")
    if y is not None and (y.ndim != 1 or y.dtype.kind not in "iu"):
        raise ValueError(f"data.path={path}: y.npy must hold integer class labels [num_nodes], "
                         f"got {y.dtype} of shape {y.shape}")
    data = NodeDataset(name=path.name, graph=graph, x=torch.from_numpy(x),
                       y=None if y is None else torch.from_numpy(y.astype(np.int64, copy=False)),
                       num_classes=None if y is None else int(y.max()) + 1,
                       **{k: None if v is None else torch.from_numpy(v) for k, v in labels.items()})
    logger.info("read %r from %s (features memory-mapped)", data, path)
    return data


def write_graph_dir(path: Union[str, Path], graph: Graph, x: Union[np.ndarray, torch.Tensor, RowBlocks],
                    num_features: Optional[int] = None, y: Optional[np.ndarray] = None,
                    train_mask: Optional[np.ndarray] = None, val_mask: Optional[np.ndarray] = None,
                    test_mask: Optional[np.ndarray] = None, block: int = 1 << 16) -> Path:
    """Write a graph folder (module docstring) and return its path.

    ``x`` is an ``[N, F]`` array or tensor, or a function ``rows(start, stop)`` giving the
    float32 feature rows ``start:stop`` (with ``num_features``): features are written
    ``block`` rows at a time and never need to fit in memory. The folder is written
    beside ``path`` and renamed into place when complete, so a reader never sees half of
    one. Indices are stored as int32 when the graph allows it.
    """
    path = Path(path).expanduser()
    if path.exists():
        raise FileExistsError(f"{path} exists; remove it or choose another path")
    n = graph.num_nodes
    if callable(x):
        if num_features is None:
            raise ValueError("write_graph_dir: give num_features with a function of feature rows")
        rows = x
    else:
        num_features = int(x.shape[1])

        def rows(start: int, stop: int) -> np.ndarray:
            return np.asarray(x[start:stop], dtype=np.float32)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "indptr.npy", graph.indptr.cpu().numpy().astype(np.int64))
    np.save(partial / "indices.npy", graph.indices.cpu().numpy().astype(np.int32 if n < 2**31 else np.int64))
    out = np.lib.format.open_memmap(partial / "x.npy", mode="w+", dtype=np.float32, shape=(n, num_features))
    for start in tqdm(range(0, n, block), desc="features", unit="block", disable=n <= 4 * block):
        out[start:start + block] = rows(start, min(start + block, n))
    out.flush()
    del out
    for name, value in (("y", y), ("train_mask", train_mask), ("val_mask", val_mask), ("test_mask", test_mask)):
        if value is not None:
            np.save(partial / f"{name}.npy", np.asarray(value))
    os.replace(partial, path)
    logger.info("wrote a graph of %d nodes, %d edges and %d features to %s", n, graph.num_edges, num_features, path)
    return path
