"""``load_dataset``: dataset name in, validated :class:`NodeDataset` out.

Cora and CiteSeer come from the ``.npz`` files shipped in the package (no network, no
scipy); PubMed is downloaded on first use (see :mod:`graphmae2.datasets.download`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Union

import numpy as np

from .download import fetch_planetoid
from .node_dataset import NodeDataset
from .packaged import PACKAGED, load_packaged
from .planetoid import read_planetoid_raw

__all__ = ["KNOWN_DATASETS", "load_dataset"]

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
        key, arrays["x"], arrays["y"], arrays["src"], arrays["dst"], arrays["train_mask"],
        arrays["val_mask"], arrays["test_mask"], num_classes=int(arrays["num_classes"]),
        self_loops=self_loops)
    logger.info("loaded %r", dataset)
    return dataset
