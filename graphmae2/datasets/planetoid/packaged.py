"""The compact ``.npz`` form in which Cora and CiteSeer ship inside the package.

Why a separate format: the raw Planetoid pickles need a restricted unpickler and come
to ~1.5 MB per dataset, while the content is small and simple. Features are binary and
about 1% dense, so they are stored as coordinates (``feature_row``, ``feature_col``,
``feature_value``); edges as ``edge_src``/``edge_dst``; splits as sorted node indices.
No array has dtype ``object``, so files load with ``allow_pickle=False``.

Files are written byte-for-byte reproducibly (fixed zip timestamps), so rebuilding from
the same raw files gives the same ``SHA256SUMS``. Reading needs numpy only.
"""
from __future__ import annotations

import io
import zipfile
from importlib import resources
from pathlib import Path
from typing import Dict, Union

import numpy as np

from .checksums import parse_sha256sums, sha256_bytes

__all__ = ["FORMAT_VERSION", "PACKAGED", "to_packaged", "write_npz", "read_packaged",
           "load_packaged"]

FORMAT_VERSION = 1
PACKAGED = ("cora", "citeseer")  # datasets with an .npz in graphmae2/datasets/planetoid/data
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp; fixed for reproducible bytes
_SPLITS = ("train", "val", "test")


def to_packaged(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Convert :func:`~graphmae2.datasets.planetoid.raw.read_planetoid_raw` output to stored arrays."""
    x = arrays["x"]
    row, col = np.nonzero(x)  # row-major order
    out = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "num_nodes": np.array(x.shape[0], dtype=np.int64),
        "num_features": np.array(x.shape[1], dtype=np.int64),
        "num_classes": np.asarray(arrays["num_classes"], dtype=np.int64),
        "feature_row": row.astype(np.int32),
        "feature_col": col.astype(np.int32),
        "feature_value": x[row, col].astype(np.float32),
        "label": arrays["y"].astype(np.int64),
        "edge_src": arrays["src"].astype(np.int32),
        "edge_dst": arrays["dst"].astype(np.int32),
    }
    for split in _SPLITS:
        out[f"{split}_index"] = np.flatnonzero(arrays[f"{split}_mask"]).astype(np.int64)
    return out


def write_npz(path: Union[str, Path], arrays: Dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` equivalent whose bytes depend only on ``arrays``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def read_packaged(data: bytes, source: str) -> Dict[str, np.ndarray]:
    """Parse stored bytes back into the arrays ``read_planetoid_raw`` returns."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        stored = {key: npz[key] for key in npz.files}
    version = int(stored.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(f"{source}: format_version {version}, this code reads {FORMAT_VERSION}; "
                         f"rebuild with `python scripts/build_packaged.py`")
    n, f = int(stored["num_nodes"]), int(stored["num_features"])
    row, col = stored["feature_row"].astype(np.int64), stored["feature_col"].astype(np.int64)
    if row.size and (row.max() >= n or col.max() >= f or min(row.min(), col.min()) < 0):
        raise ValueError(f"{source}: feature coordinates outside [{n}, {f}]")
    x = np.zeros((n, f), dtype=np.float32)
    x[row, col] = stored["feature_value"]
    out = {"x": x, "y": stored["label"].astype(np.int64),
           "src": stored["edge_src"].astype(np.int64), "dst": stored["edge_dst"].astype(np.int64),
           "num_classes": stored["num_classes"]}
    for split in _SPLITS:
        mask = np.zeros(n, dtype=bool)
        mask[stored[f"{split}_index"]] = True
        out[f"{split}_mask"] = mask
    return out


def load_packaged(name: str) -> Dict[str, np.ndarray]:
    """Read ``data/<name>.npz`` shipped with the package after checking its SHA-256."""
    data_dir = resources.files(__package__) / "data"
    fname = f"{name}.npz"
    source = f"graphmae2/datasets/planetoid/data/{fname}"
    try:
        data = (data_dir / fname).read_bytes()
        sums_text = (data_dir / "SHA256SUMS").read_text()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"packaged dataset file missing ({exc.filename}); the install lacks package data. "
            f"Reinstall graphmae2, or rebuild with `python scripts/build_packaged.py "
            f"--raw-dir <dir with ind.{name}.*>`") from exc
    sums = parse_sha256sums(sums_text, "graphmae2/datasets/planetoid/data/SHA256SUMS")
    actual = sha256_bytes(data)
    if sums.get(fname) != actual:
        raise ValueError(
            f"SHA-256 mismatch for {source}: expected {sums.get(fname)}, got {actual}. The "
            f"packaged file is corrupt; reinstall graphmae2 or rebuild it with "
            f"`python scripts/build_packaged.py --raw-dir <raw dir>`.")
    return read_packaged(data, source)

