"""Checkpoints: written atomically, read with ``weights_only=True``, errors in one line.

A checkpoint is a plain dict of tensors, numbers, strings and lists (no pickled
classes), so ``torch.load(..., weights_only=True)`` can read it and a planted file
cannot run code. It holds everything a bitwise-exact resume needs: model, teacher,
optimizer, LR scheduler, the epoch to run next, the RNG state and the loss history.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import torch

from .atomic import atomic_write

FORMAT = "graphmae2-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "config", "in_dim", "seed", "epoch", "model", "teacher")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(state: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Write ``state`` to ``path`` atomically: temp file in the same directory, flush,
    fsync, rename. A crash mid-write leaves the previous checkpoint intact."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_write(path, fsync=True) as fh:
        torch.save(state, fh)


def load_checkpoint(path: Union[str, os.PathLike], map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` (one line, naming the file) for a missing,
    truncated, corrupted or foreign file, or one from another format version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable graphmae2 checkpoint (truncated or corrupted?): "
                              f"{first[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a graphmae2 checkpoint (no '{FORMAT}' format tag)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')!r}, "
                              f"this graphmae2 reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state
