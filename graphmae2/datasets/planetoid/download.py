"""Fetch raw Planetoid files (PubMed) into a local cache, atomically and verified.

PubMed is too large to ship, so :func:`fetch_planetoid` downloads
``ind.pubmed.{x,y,tx,ty,allx,ally,graph,test.index}`` from :data:`PLANETOID_URL` into
``<root>/planetoid/`` (default root ``~/.cache/graphmae2``). Each file is streamed into
:func:`~graphmae2.atomic.atomic_write` and hashed on the way; it takes its real name only
after it is verified, so an interrupted download never leaves a partial file there.

How verification works, honestly: the digests in :data:`KNOWN_SHA256` are the trust
anchor, but this module was written on a machine without internet access, so the PubMed
digests could not be computed and are ``None``. For a file whose digest is unknown, the
first download is trusted (a warning logs the digest seen) and the digest is recorded
in ``<root>/planetoid/SHA256SUMS``; later loads are verified against that record. This
catches corruption and later tampering, not a bad first download. Pass ``checksums``
(or fill in :data:`KNOWN_SHA256`) to pin digests you have checked independently.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

from ...atomic import atomic_write
from .checksums import read_sha256sums, sha256_file, write_sha256sums
from .raw import planetoid_files

__all__ = ["PLANETOID_URL", "DEFAULT_ROOT", "KNOWN_SHA256", "DownloadError", "fetch_planetoid"]

logger = logging.getLogger(__name__)

PLANETOID_URL = "https://raw.githubusercontent.com/kimiyoung/planetoid/master/data"
"""Base URL of the raw files; read at call time, so it can be pointed at a mirror."""

DEFAULT_ROOT = Path("~/.cache/graphmae2")

KNOWN_SHA256: Dict[str, Optional[str]] = {fname: None for fname in planetoid_files("pubmed")}
"""Pinned digests per file name; ``None`` means unknown here (trust on first use)."""


class DownloadError(OSError):
    """A file could not be fetched; the message says where to place it by hand."""


def _download(url: str, path: Path, timeout: float, expected: Optional[str]) -> str:
    """Stream ``url`` onto ``path`` atomically, hashing on the way; returns the SHA-256.
    A digest other than ``expected`` (when known) raises before ``path`` is written."""
    h = hashlib.sha256()
    try:
        with atomic_write(path) as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
            if expected is not None and h.hexdigest() != expected:
                raise ValueError(_mismatch(path, f"downloaded from {url}", expected, h.hexdigest()))
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"could not download {path.name} from {url}: {exc}. Download it by hand and "
            f"place it at {path} (directory {path.parent}); its SHA-256 is then recorded in "
            f"{path.parent / 'SHA256SUMS'} on first use.") from exc
    return h.hexdigest()


def _mismatch(path: Path, where: str, expected: str, actual: str) -> str:
    return (f"SHA-256 mismatch for {path} ({where}): expected {expected}, got {actual}. Delete {path} to "
            f"download it again, or place a good copy there by hand; if the new digest is right, fix its "
            f"line in {path.parent / 'SHA256SUMS'}.")


def fetch_planetoid(name: str, root: Union[str, Path, None] = None,
                    base_url: Optional[str] = None,
                    checksums: Optional[Mapping[str, Optional[str]]] = None,
                    timeout: float = 60.0) -> Path:
    """Make sure every ``ind.<name>.*`` file is in ``<root>/planetoid`` and verified.

    Args:
        name: Planetoid dataset name, e.g. ``"pubmed"``.
        root: cache root (default: ``~/.cache/graphmae2``).
        base_url: where the files live (default: :data:`PLANETOID_URL` at call time).
        checksums: pinned digests by file name (default: :data:`KNOWN_SHA256`); a
            missing or ``None`` entry falls back to the digest recorded on first download.
        timeout: seconds per network operation.

    Returns:
        The directory holding the files and their ``SHA256SUMS``.
    """
    raw_dir = Path(root if root is not None else DEFAULT_ROOT).expanduser() / "planetoid"
    raw_dir.mkdir(parents=True, exist_ok=True)
    base_url = (base_url if base_url is not None else PLANETOID_URL).rstrip("/")
    pinned = KNOWN_SHA256 if checksums is None else checksums
    sums_path = raw_dir / "SHA256SUMS"
    recorded = read_sha256sums(sums_path) if sums_path.is_file() else {}

    for fname in planetoid_files(name):
        path = raw_dir / fname
        url = f"{base_url}/{fname}"
        expected = pinned.get(fname) or recorded.get(fname)
        if path.is_file():
            actual = sha256_file(path)
            if expected is not None and actual != expected:
                raise ValueError(_mismatch(path, "cached", expected, actual))
        else:
            actual = _download(url, path, timeout, expected)
            logger.info("downloaded %s", url)
        if expected is None:
            logger.warning("no known SHA-256 for %s; trusting this copy (sha256 %s) and "
                           "recording it in %s", fname, actual, sums_path)
        if recorded.get(fname) != actual:
            recorded[fname] = actual
            write_sha256sums(sums_path, recorded)  # per file, so a later failure keeps it
    return raw_dir
