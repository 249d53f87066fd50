"""SHA-256 digests of data files and the ``SHA256SUMS`` lists that record them.

Every file the loaders parse is hashed first and compared with a recorded digest, so a
truncated download or a swapped file fails with a message instead of being parsed.
The list format is the one ``sha256sum`` writes: ``<hex digest>  <file name>`` per line.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Mapping, Union

from ...atomic import atomic_write

__all__ = ["sha256_bytes", "sha256_file", "parse_sha256sums", "read_sha256sums",
           "write_sha256sums", "verify_file"]

PathLike = Union[str, "os.PathLike[str]"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sha256sums(path: PathLike) -> Dict[str, str]:
    """Parse a ``SHA256SUMS`` file into ``{file name: hex digest}``."""
    return parse_sha256sums(Path(path).read_text(), str(path))


def parse_sha256sums(text: str, source: str) -> Dict[str, str]:
    """Parse ``SHA256SUMS`` text; ``source`` names it in errors."""
    sums: Dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name.strip().lstrip("*")  # '*' marks binary mode in sha256sum output
        if not sep or len(digest) != 64 or not name:
            raise ValueError(f"{source}:{lineno}: expected '<64 hex digits>  <file name>', got {line!r}")
        sums[name] = digest.lower()
    return sums


def write_sha256sums(path: PathLike, sums: Mapping[str, str]) -> None:
    """Write ``sums`` sorted by file name, atomically."""
    path = Path(path)
    text = "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))
    with atomic_write(path, "w") as f:
        f.write(text)


def verify_file(path: PathLike, expected: str, how_to_fix: str) -> None:
    """Raise ``ValueError`` naming the file and both digests unless ``path`` hashes to ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ValueError(
            f"SHA-256 mismatch for {path}: expected {expected}, got {actual}. {how_to_fix}")
