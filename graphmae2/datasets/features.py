"""Input feature scaling, ``data.feature_norm``.

``row`` divides every node's features by their L1 norm, the preprocessing of Kipf &
Welling's GCN code that DGL's Planetoid datasets (and so the DGL GraphMAE/GraphMAE2
results) apply to Cora, CiteSeer and PubMed. It is idempotent, so applying it to data
that is already normalised changes nothing.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import torch
from torch import Tensor

FEATURE_NORMS = ("none", "row")


def normalize_features(x: Tensor, how: str) -> Tensor:
    """``x`` scaled as ``how`` says (``none | row``); all-zero rows stay zero."""
    if how == "none":
        return x
    if how == "row":
        norm = x.abs().sum(1, keepdim=True)
        return x / torch.where(norm > 0, norm, torch.ones_like(norm))
    raise ValueError(f"data.feature_norm={how!r}: allowed: {', '.join(FEATURE_NORMS)}")


class RowNormalized:
    """Row-normalised view of a (memory-mapped) ``[N, F]`` array: rows are scaled when
    read, so the matrix never has to fit in RAM."""

    def __init__(self, array: Any) -> None:
        self.array = array

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.asarray(self.array[index], dtype=np.float32)
        norm = np.abs(rows).sum(-1, keepdims=True)
        return rows / np.where(norm > 0, norm, 1.0).astype(np.float32)
