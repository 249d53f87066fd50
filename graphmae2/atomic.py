"""Atomic file writes: a temporary file in the target's folder, then one rename.

Readers never see half a file, and a crash mid-write leaves the previous version intact.
Every file the package writes that a later run reads (checkpoints, ego-graph caches,
checksum lists, downloads, the run-level checkpoint) goes through :func:`atomic_write`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", fsync: bool = False,
                 permissions: int = 0o644) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed
    (and with ``fsync``, synced with its folder) and renamed onto ``path``; on an error it
    is removed and ``path`` is untouched. ``permissions`` replaces mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_copy(src: PathLike, dst: PathLike) -> None:
    """Copy ``src`` onto ``dst`` atomically."""
    with open(src, "rb") as fin, atomic_write(dst) as fout:
        shutil.copyfileobj(fin, fout)
