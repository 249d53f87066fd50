"""Read the raw Planetoid files (Cora, CiteSeer, PubMed) into plain numpy arrays.

Format (Yang et al., ICML 2016, files ``ind.<name>.<part>`` in kimiyoung/planetoid):

- ``x``/``y``: features and one-hot labels of the labelled training nodes,
- ``allx``/``ally``: every non-test node (the training nodes first),
- ``tx``/``ty``: the test nodes, row ``k`` belonging to node ``test.index[k]``,
- ``graph``: ``{node: [neighbours]}``; ``test.index``: one test node id per line.

Standard split (Kipf & Welling, ICLR 2017): train = the first ``len(y)`` nodes, val =
the next 500, test = the ``test.index`` nodes. CiteSeer's ``test.index`` skips 15 ids
inside its range (nodes with no paper text); like PyG and DGL we keep them as nodes with
all-zero feature rows, give them label 0 (the argmax of an all-zero label row) and put
them in no split, so they never touch a loss or a metric.

Every file is checked against ``SHA256SUMS`` in the same directory before it is parsed,
and pickles are read only through :mod:`graphmae2.datasets.planetoid.safe_pickle`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from .checksums import read_sha256sums, verify_file
from .safe_pickle import CsrRecord, safe_loads

__all__ = ["PLANETOID_PARTS", "NUM_VAL", "planetoid_files", "read_planetoid_raw"]

logger = logging.getLogger(__name__)

PLANETOID_PARTS: Tuple[str, ...] = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
NUM_VAL = 500  # validation nodes following the training nodes (Kipf & Welling split)


def planetoid_files(name: str) -> Tuple[str, ...]:
    """File names of one dataset, e.g. ``ind.cora.x``."""
    return tuple(f"ind.{name}.{part}" for part in PLANETOID_PARTS)


def _verified_bytes(raw_dir: Path, fname: str, sums: Dict[str, str]) -> bytes:
    path = raw_dir / fname
    how = (f"Replace {path} with the file from kimiyoung/planetoid (folder data/) and "
           f"make sure its line in {raw_dir / 'SHA256SUMS'} is right.")
    if not path.is_file():
        raise FileNotFoundError(f"missing Planetoid file {path}. {how}")
    if fname not in sums:
        raise ValueError(
            f"{raw_dir / 'SHA256SUMS'} has no digest for {fname}; refusing to parse an "
            f"unverified file. Add the line printed by `sha256sum {fname}` once you trust it.")
    verify_file(path, sums[fname], how)
    return path.read_bytes()


def _dense(obj: Any, source: str) -> np.ndarray:
    """A 2-D numeric array from a pickled csr_matrix or ndarray."""
    arr = obj.to_dense() if isinstance(obj, CsrRecord) else obj
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{source}: expected a 2-D numeric matrix, got {type(obj).__name__}"
                         f" {getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}")
    return arr


def _edges(adj: Any, num_nodes: int, source: str) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric, deduplicated edge list without self-loops, sorted by (src, dst)."""
    if not isinstance(adj, dict):
        raise ValueError(f"{source}: expected an adjacency dict, got {type(adj).__name__}")
    src = np.fromiter((int(u) for u, nbrs in adj.items() for _ in nbrs), dtype=np.int64)
    dst = np.fromiter((int(v) for nbrs in adj.values() for v in nbrs), dtype=np.int64)
    bad = (src < 0) | (src >= num_nodes) | (dst < 0) | (dst >= num_nodes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: {int(bad.sum())} edge(s) leave [0, {num_nodes}); "
                         f"first {src[i]} -> {dst[i]}")
    both = np.concatenate([src * num_nodes + dst, dst * num_nodes + src])
    keys = np.unique(both[np.concatenate([src != dst, src != dst])])  # sorted, deduplicated
    return keys // num_nodes, keys % num_nodes


def read_planetoid_raw(name: str, raw_dir: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Parse ``ind.<name>.*`` in ``raw_dir`` into arrays, after verifying their SHA-256.

    Returns:
        ``x`` float32 ``[N, F]``; ``y`` int64 ``[N]``; ``src``/``dst`` int64 ``[E]``
        (both directions, no duplicates, no self-loops); ``train_mask``/``val_mask``/
        ``test_mask`` bool ``[N]``; ``num_classes`` 0-d int64.
    """
    raw_dir = Path(raw_dir)
    sums_path = raw_dir / "SHA256SUMS"
    if not sums_path.is_file():
        raise FileNotFoundError(
            f"{sums_path} not found: it must list the SHA-256 of every ind.{name}.* file "
            f"(format of `sha256sum`) so the files can be verified before parsing.")
    sums = read_sha256sums(sums_path)
    raw = {}
    for part, fname in zip(PLANETOID_PARTS, planetoid_files(name)):
        data = _verified_bytes(raw_dir, fname, sums)
        source = str(raw_dir / fname)
        if part == "test.index":
            raw[part] = np.array([int(t) for t in data.decode("ascii").split()], dtype=np.int64)
        elif part == "graph":
            raw[part] = safe_loads(data, source)
        else:
            raw[part] = _dense(safe_loads(data, source), source)

    allx, ally, tx, ty = raw["allx"], raw["ally"], raw["tx"], raw["ty"]
    test_index = raw["test.index"]
    if tx.shape[0] != test_index.size or ty.shape[0] != test_index.size:
        raise ValueError(f"{name}: tx has {tx.shape[0]} rows and ty {ty.shape[0]}, but "
                         f"test.index lists {test_index.size} nodes")
    if np.unique(test_index).size != test_index.size or test_index.min() < allx.shape[0]:
        raise ValueError(f"{name}: test.index must hold distinct ids >= {allx.shape[0]} (len(allx))")
    num_nodes = max(allx.shape[0] + tx.shape[0], int(test_index.max()) + 1)
    num_train = raw["y"].shape[0]
    num_classes = ally.shape[1]

    x = np.zeros((num_nodes, allx.shape[1]), dtype=np.float32)
    onehot = np.zeros((num_nodes, num_classes), dtype=np.int64)
    x[: allx.shape[0]] = allx
    onehot[: ally.shape[0]] = ally
    x[test_index] = tx  # row k of tx is node test.index[k]
    onehot[test_index] = ty
    missing = num_nodes - allx.shape[0] - test_index.size
    if missing:
        logger.info("%s: %d node id(s) missing from test.index get zero features, "
                    "label 0 and no split", name, missing)

    masks = {key: np.zeros(num_nodes, dtype=bool) for key in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][:num_train] = True
    masks["val_mask"][num_train: num_train + NUM_VAL] = True
    masks["test_mask"][test_index] = True

    src, dst = _edges(raw["graph"], num_nodes, str(raw_dir / f"ind.{name}.graph"))
    return {"x": x, "y": onehot.argmax(axis=1).astype(np.int64), "src": src, "dst": dst,
            **masks, "num_classes": np.array(num_classes, dtype=np.int64)}
