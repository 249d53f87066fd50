"""The data stage's entry points: a name or a ``data`` config in, a :class:`NodeDataset` out.

``load_dataset`` knows the Planetoid graphs: Cora and CiteSeer come from the ``.npz``
files shipped in the package (no network, no scipy); PubMed is downloaded on first use
(see :mod:`graphmae2.datasets.planetoid.download`). ``load_data`` takes the whole ``data`` config
and is what training, sweeps, embedding export and benchmarks call: Planetoid, the
synthetic graph, OGB raw files, your own graph file (``data.dataset: npz``) or an object
handed to it (a PyG ``Data``, a DGL graph, ...), with ``data.feature_norm`` applied
(``scale=False`` leaves the features as stored, for code that scales later: a loaded
encoder scales its input itself).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Union

import numpy as np

from .convert import as_node_dataset
from .features import RowNormalized, normalize_features
from .node_dataset import NodeDataset
from .planetoid import PACKAGED, fetch_planetoid, load_packaged, read_planetoid_raw

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["KNOWN_DATASETS", "feature_matrix", "load_data", "load_dataset"]

logger = logging.getLogger(__name__)

KNOWN_DATASETS = ("cora", "citeseer", "pubmed")


def _arrays(name: str, root: Union[str, Path, None]) -> Dict[str, np.ndarray]:
    if name in PACKAGED:
        return load_packaged(name)
    return read_planetoid_raw(name, fetch_planetoid(name, root))


def load_dataset(name: str, root: Union[str, Path, None] = None,
                 self_loops: bool = True) -> NodeDataset:
    """Load a Planetoid citation graph with its standard split.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (case-insensitive).
        root: cache directory for downloaded datasets (default ``~/.cache/graphmae2``);
            Cora and CiteSeer ship with the package and do not use it.
        self_loops: add exactly one self-loop per node (default: True), as GAT-style
            encoders expect; the graph is undirected and deduplicated either way.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: "
                         f"{', '.join(KNOWN_DATASETS)} (names are case-insensitive)")
    arrays = _arrays(key, root)
    dataset = NodeDataset.from_arrays(
        arrays["x"], (arrays["src"], arrays["dst"]), y=arrays["y"], train_mask=arrays["train_mask"],
        val_mask=arrays["val_mask"], test_mask=arrays["test_mask"],
        num_classes=int(arrays["num_classes"]), name=key, self_loops=self_loops)
    logger.info("loaded %r", dataset)
    return dataset


def _read_data(cfg: "DataConfig") -> NodeDataset:
    """The dataset ``data.dataset`` names, features as stored (unscaled).

    ``data.dataset`` is a Planetoid name (shipped or downloaded), ``synthetic`` (sized by
    ``data.synthetic_*``), ``ogbn-*`` (raw OGB files under ``data.root``) or ``npz``
    (your graph in ``data.path``: a file, :mod:`graphmae2.datasets.graph_file`, or a
    folder of ``.npy`` arrays with memory-mapped features, :mod:`graphmae2.datasets.graph_dir`); ``custom``
    (a graph passed from Python) cannot be loaded by name.
    """
    if cfg.dataset != "npz" and cfg.path is not None:
        raise ValueError(f"data.path={cfg.path} is read only with data.dataset=npz, "
                         f"not data.dataset={cfg.dataset}; set data.dataset=npz or drop data.path")
    if cfg.dataset == "custom":
        raise ValueError("data.dataset=custom records a graph handed to graphmae2.pretrain from Python; "
                         "there is nothing to load by name: pass the graph again, or save it and use "
                         "data.dataset=npz with data.path")
    if cfg.dataset == "npz":
        if cfg.path is None:
            raise ValueError("data.dataset=npz: set data.path to your .npz or .pt graph file, or a folder of .npy "
                             "arrays (graphmae2.datasets.graph_dir)")
        if Path(cfg.path).expanduser().is_dir():
            from .graph_dir import read_graph_dir

            return read_graph_dir(cfg.path)
        from .graph_file import read_graph_file

        return read_graph_file(cfg.path)
    if cfg.dataset == "synthetic":
        from .synthetic import synthetic_graph

        return synthetic_graph(cfg.synthetic_nodes, cfg.synthetic_edges, num_features=cfg.synthetic_features)
    if cfg.dataset.startswith("ogbn-"):
        from .ogb import load_ogb_raw

        if cfg.root is None:
            raise ValueError(f"data.dataset={cfg.dataset}: set data.root to the directory holding the "
                             f"downloaded OGB files")
        return load_ogb_raw(cfg.dataset, cfg.root)
    return load_dataset(cfg.dataset, root=cfg.root)


def load_data(cfg: "DataConfig", source: Any = None, scale: bool = True) -> NodeDataset:
    """The training dataset: ``source`` when given, else the one ``data.dataset`` names,
    with its features scaled by ``data.feature_norm`` (exactly once: pass unscaled data;
    ``scale=False``: as stored).

    ``source`` is a :class:`NodeDataset` or anything
    :func:`~graphmae2.datasets.as_node_dataset` converts: a PyG ``Data``, a DGL graph
    with ``ndata["feat"]``, or a ``(graph, x)`` pair.
    """
    data = _read_data(cfg) if source is None else as_node_dataset(source)
    return dataclasses.replace(data, x=normalize_features(data.x, cfg.feature_norm)) if scale else data


def feature_matrix(cfg: "DataConfig", data: NodeDataset) -> Any:
    """The feature rows mini-batches read: ``data.features`` memory-mapped (rows scaled
    when read, for ``data.feature_norm: row``) when set, else ``data.x`` (already scaled
    by :func:`load_data`)."""
    if cfg.features is None:
        return data.x
    feats = np.load(cfg.features, mmap_mode="r")
    if feats.ndim != 2 or feats.shape[0] != data.num_nodes:
        raise ValueError(f"data.features={cfg.features}: shape {feats.shape}, expected "
                         f"({data.num_nodes}, num_features)")
    return RowNormalized(feats) if cfg.feature_norm == "row" else feats
