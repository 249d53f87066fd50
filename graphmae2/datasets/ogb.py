"""Read an OGB node-property dataset from the raw files a user downloaded, without ``ogb``.

Layout (as the ``ogb`` package's ``NodePropPredDataset`` leaves it under its ``root``;
the zip from ``http://snap.stanford.edu/ogb/data/nodeproppred/<short>.zip`` unpacks to
``<short>/`` with the same content)::

    <root>/ogbn_arxiv/                  (or <root>/arxiv/, the folder as unzipped)
        raw/edge.csv.gz                 one edge per line: "src,dst" (no header)
        raw/node-feat.csv.gz            one node per line: F comma-separated floats
        raw/node-label.csv.gz           one integer label per line
        raw/num-node-list.csv.gz        optional: the number of nodes
        split/time/train.csv.gz         one node id per line; also valid.csv.gz, test.csv.gz

Every ``.csv.gz`` is gzip-compressed text without a header. ogbn-products has the same
files with split scheme ``sales_ranking``. Edges are read as given and symmetrised (and
deduplicated) by :meth:`NodeDataset.from_arrays`: ogbn-arxiv is a directed citation
graph, which GraphMAE2, like most work on it, treats as undirected.

>>> ds = load_ogb_raw("ogbn-arxiv", "~/data/ogb")  # doctest: +SKIP
>>> ds.num_nodes, ds.num_features, ds.num_classes  # doctest: +SKIP
(169343, 128, 40)
"""
from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from .node_dataset import NodeDataset

__all__ = ["OGB_DATASETS", "OGB_URL", "load_ogb_raw"]

logger = logging.getLogger(__name__)

OGB_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/{short}.zip"

#: Supported names -> (short name of the zip and its folder, split scheme).
OGB_DATASETS: Dict[str, Tuple[str, str]] = {
    "ogbn-arxiv": ("arxiv", "time"),
    "ogbn-products": ("products", "sales_ranking"),
}


class _Files:
    """Paths of one dataset, and the download hint every missing-file error repeats."""

    def __init__(self, name: str, root: Path) -> None:
        short, self.scheme = OGB_DATASETS[name]
        folder = name.replace("-", "_")
        self.dir = root / folder
        if not self.dir.is_dir() and (root / short).is_dir():
            self.dir = root / short  # unzipped but not renamed
        self.hint = (f"Download {OGB_URL.format(short=short)} and unzip it into {root} (it "
                     f"unpacks to {short}/; renaming that to {folder}/ is optional), or run "
                     f"ogb's NodePropPredDataset(name={name!r}, root={str(root)!r}) once.")

    def path(self, relative: str) -> Path:
        path = self.dir / relative
        if not path.is_file():
            raise FileNotFoundError(f"missing OGB file {path}. {self.hint}")
        return path


def _read_csv(path: Path, dtype: type) -> np.ndarray:
    """A headerless gzip CSV as a 2-D array."""
    try:
        with gzip.open(path, "rt") as f:
            return np.loadtxt(f, delimiter=",", dtype=dtype, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"cannot parse {path} as gzip CSV of {np.dtype(dtype).name} ({err}); "
                         f"the file may be truncated: download it again") from err


def _column(path: Path, dtype: type) -> np.ndarray:
    arr = _read_csv(path, dtype)
    if arr.shape[1] != 1:
        raise ValueError(f"{path}: expected one value per line, got {arr.shape[1]} columns")
    return arr[:, 0]


def _node_ids(path: Path, num_nodes: int) -> np.ndarray:
    ids = _column(path, np.int64)
    bad = (ids < 0) | (ids >= num_nodes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: {int(bad.sum())} node id(s) outside [0, {num_nodes}); "
                         f"first on line {i + 1}: {ids[i]}")
    return ids


def load_ogb_raw(name: str, root: Union[str, Path], self_loops: bool = True) -> NodeDataset:
    """Load ``ogbn-arxiv`` or ``ogbn-products`` from OGB's raw files (see module docstring).

    Args:
        name: ``"ogbn-arxiv"`` or ``"ogbn-products"``.
        root: folder holding ``ogbn_arxiv/`` (or the unzipped ``arxiv/``), as ``ogb`` uses.
        self_loops: add exactly one self-loop per node (default: True), as
            :func:`~graphmae2.datasets.load_dataset` does.

    Returns:
        A symmetrised, deduplicated :class:`NodeDataset` with OGB's official split.

    Raises:
        FileNotFoundError: naming the missing file and how to download the dataset.
    """
    if name not in OGB_DATASETS:
        raise ValueError(f"unknown OGB dataset {name!r}; supported: {', '.join(OGB_DATASETS)}")
    files = _Files(name, Path(root).expanduser())

    edges = _read_csv(files.path("raw/edge.csv.gz"), np.int64)  # [E, 2]
    x = _read_csv(files.path("raw/node-feat.csv.gz"), np.float32)  # [N, F]
    y = _column(files.path("raw/node-label.csv.gz"), np.float64)  # [N]
    num_nodes = x.shape[0]
    count_file = files.dir / "raw/num-node-list.csv.gz"
    if count_file.is_file():
        num_nodes = int(_column(count_file, np.int64)[0])
    if x.shape[0] != num_nodes or y.size != num_nodes:
        raise ValueError(f"{files.dir / 'raw'}: node-feat has {x.shape[0]} rows and node-label "
                         f"{y.size}, but the graph has {num_nodes} nodes; re-download the dataset")
    if edges.shape[1] != 2:
        raise ValueError(f"{files.dir / 'raw/edge.csv.gz'}: expected 2 columns (src,dst), "
                         f"got {edges.shape[1]}")
    bad = ~np.isfinite(y) | (y != np.round(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{files.dir / 'raw/node-label.csv.gz'}: {int(bad.sum())} label(s) are "
                         f"not integers (first on line {i + 1}: {y[i]}); only datasets with a "
                         f"label on every node are supported")

    masks = []
    for part in ("train", "valid", "test"):
        mask = np.zeros(num_nodes, dtype=bool)
        mask[_node_ids(files.path(f"split/{files.scheme}/{part}.csv.gz"), num_nodes)] = True
        masks.append(mask)

    dataset = NodeDataset.from_arrays(x, (edges[:, 0], edges[:, 1]), y=y.astype(np.int64),
                                      train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                                      num_nodes=num_nodes, name=name, self_loops=self_loops)
    logger.info("loaded %r from %s", dataset, files.dir)
    return dataset
