"""Rebuild the packaged Cora and CiteSeer files from the raw Planetoid files.

Run from the repository root::

    python scripts/build_packaged.py --raw-dir ../shared/datasets/planetoid

It verifies the raw files, writes ``graphmae2/datasets/planetoid/data/{cora,citeseer}.npz`` and the
``SHA256SUMS`` that :func:`graphmae2.datasets.load_dataset` checks them against. The
output is byte-for-byte reproducible, so an unchanged rerun leaves git clean.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from graphmae2.datasets.planetoid.checksums import sha256_file, write_sha256sums
from graphmae2.datasets.planetoid.packaged import PACKAGED, to_packaged, write_npz
from graphmae2.datasets.planetoid.raw import read_planetoid_raw

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "graphmae2" / "datasets" / "planetoid" / "data"


def build(raw_dir: Path, out_dir: Path = DEFAULT_OUT_DIR) -> dict:
    """Write one ``.npz`` per packaged dataset plus ``SHA256SUMS``; return the digests."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name in PACKAGED:
        path = out_dir / f"{name}.npz"
        write_npz(path, to_packaged(read_planetoid_raw(name, raw_dir)))
        sums[path.name] = sha256_file(path)
        logger.info("wrote %s (%d bytes, sha256 %s)", path, path.stat().st_size, sums[path.name])
    write_sha256sums(out_dir / "SHA256SUMS", sums)
    return sums


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True,
                        help="directory holding ind.<name>.* and their SHA256SUMS")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="where to write the .npz files (default: the package's data/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # script entry point only
    build(args.raw_dir, args.out_dir)


if __name__ == "__main__":
    main()
