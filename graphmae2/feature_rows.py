"""Input feature matrices that know their structure, for the projection ``dropout(x) @ W``.

* :class:`SparseRows`: features held as a sparse CSR matrix (and its transpose), plus an
  optional learnable token blended into some rows: the first layer's projection of ~1 %
  dense bag-of-words features as an exact sparse product.
* :class:`KeptRows`: a matrix known to be zero outside some rows (the decoder input under
  fixed re-masking), held as those rows only.

:func:`project` is the one entry point the layers call; for a plain tensor it is
``dropout(x) @ weight``. :func:`replace_rows` builds a re-masked copy of a dense matrix.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .dropout import dropout, training_dropout
from .graph import take_csr_rows
from .ops import csr_transpose, float32_island


class _SparseLinear(torch.autograd.Function):
    """``x @ weight`` for a sparse CSR ``x``; the weight gradient is ``x^T @ grad``,
    computed from an explicit CSR transpose (row-parallel, fixed order)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, x_t: Tensor) -> Tensor:
        ctx.x_t = x_t
        return x @ weight

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.x_t @ grad, None, None


class SparseRows:
    """Input features held as a sparse CSR matrix (and its transpose), plus optionally a
    learnable ``token`` row blended into the rows flagged in ``token_rows``.

    Citation-graph features are ~1% dense, so the first layer's projection as a sparse
    product is exact and an order of magnitude cheaper than the dense one.
    """

    def __init__(self, crow: Tensor, col: Tensor, values: Tensor, shape: Tuple[int, int],
                 token_rows: Optional[Tensor] = None, token: Optional[Tensor] = None) -> None:
        self.crow, self.col, self.values = crow, col, values
        self.shape = tuple(shape)
        self.crow_t, self.col_t, self.order = csr_transpose(self.crow, self.col, self.shape[1])
        self.token_rows = token_rows
        self.token = token

    @classmethod
    def from_dense(cls, dense: Tensor, token_rows: Optional[Tensor] = None,
                   token: Optional[Tensor] = None) -> "SparseRows":
        """The non-zeros of ``dense`` (and the optional token rows)."""
        csr = dense.to_sparse_csr()
        return cls(csr.crow_indices(), csr.col_indices(), csr.values(), tuple(dense.shape), token_rows, token)

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    def dense_rows(self, index: Tensor) -> Tensor:
        """Rows ``index`` as a dense ``[len(index), F]`` tensor (the token is not blended in)."""
        crow, pos = take_csr_rows(self.crow, index.to(self.crow.device))
        rows = torch.repeat_interleave(torch.arange(index.numel(), device=crow.device), crow.diff())
        out = self.values.new_zeros(index.numel(), self.shape[1])
        out[rows, self.col[pos]] = self.values[pos]
        return out

    def take_rows(self, index: Tensor, token_rows: Optional[Tensor] = None,
                  token: Optional[Tensor] = None) -> "SparseRows":
        """Row ``i`` of the result is row ``index[i]`` of this matrix, or empty where
        ``index[i] < 0``: the masked input built from the cached features in a few index
        operations instead of a dense copy and a fresh CSR conversion every step."""
        crow, pos = take_csr_rows(self.crow, index.to(self.crow.device))
        return SparseRows(crow, self.col[pos], self.values[pos], (index.numel(), self.shape[1]), token_rows, token)

    def project(self, weight: Tensor, p: float, training: bool) -> Tensor:
        """``dropout(x) @ weight``, the same in distribution as the dense product: dropout
        acts on the stored non-zeros (the zeros stay zero either way) and, with its own
        draw per row, on each token row."""
        out = self._project_values(weight, p, training)
        if self.token is None:
            return out
        if not (training and p > 0):
            return out + self.token_rows * (self.token @ weight).to(out.dtype)
        rows = self.token_rows.view(-1).nonzero().view(-1)
        tokens = training_dropout(self.token.expand(rows.numel(), -1), p) @ weight  # bfloat16 under autocast
        return out.index_add(0, rows, tokens.to(out.dtype))

    @float32_island
    def _project_values(self, weight: Tensor, p: float, training: bool) -> Tensor:
        """``dropout(values) @ weight`` as a sparse product (no bfloat16 sparse kernels)."""
        values = dropout(self.values, p, training)
        x = torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)
        x_t = torch.sparse_csr_tensor(self.crow_t, self.col_t, values[self.order],
                                      self.shape[::-1], check_invariants=False)
        return _SparseLinear.apply(weight, x, x_t)


class KeptRows:
    """An ``[num_rows, D]`` matrix that is zero outside ``rows``, held as those rows only.

    With fixed re-masking the decoder input is zero at every encoder-masked node, so its
    projection only needs the kept rows: half the multiply-adds, the same result.
    """

    def __init__(self, values: Tensor, rows: Tensor, num_rows: int) -> None:
        self.values = values
        self.rows = rows.to(values.device)
        self.num_rows = int(num_rows)

    def project(self, weight: Tensor, p: float, training: bool) -> Tensor:
        """``dropout(x) @ weight``, zero outside ``rows``."""
        values = dropout(self.values, p, training)
        z = values @ weight
        return z.new_zeros(self.num_rows, z.shape[1]).index_copy(0, self.rows, z)

    def dense(self) -> Tensor:
        """The full ``[num_rows, D]`` matrix."""
        out = self.values.new_zeros(self.num_rows, self.values.shape[1])
        return out.index_copy(0, self.rows, self.values)


#: Features with fewer non-zeros than this fraction take the sparse first projection on the CPU.
SPARSE_DENSITY = 0.1


def mostly_zero(x: Any, max_rows: int = 65536) -> bool:
    """Whether ``x`` ``[N, F]`` (tensor, array or memory map) is under
    :data:`SPARSE_DENSITY` non-zero, judged on at most ``max_rows`` evenly spaced rows
    (a memory-mapped matrix is not read whole)."""
    n = int(x.shape[0])
    rows = np.linspace(0, n - 1, num=min(n, max_rows)).astype(np.int64) if n > max_rows else slice(None)
    sample = x[torch.from_numpy(rows)] if isinstance(x, Tensor) and n > max_rows else x[rows]
    if not isinstance(sample, Tensor):
        sample = torch.from_numpy(np.array(sample))  # a copy: a memory map is read-only
    return sample.numel() > 0 and float((sample != 0).float().mean()) < SPARSE_DENSITY


def replace_rows(x: Tensor, nodes: Tensor, row: Tensor) -> Tensor:
    """Copy of ``x [N, D]`` with rows ``nodes`` set to ``row [1, D]``.

    Written as a blend rather than an indexed write so ``row`` (a learnable token)
    receives gradients; untouched rows are bitwise unchanged.
    """
    is_row = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
    is_row[nodes.to(x.device)] = 1.0
    return x * (1.0 - is_row) + is_row * row


def rows_of(x: Union[Tensor, "SparseRows"], index: Tensor) -> Tensor:
    """``x[index]`` as a dense tensor, for a dense tensor or :class:`SparseRows`."""
    return x.dense_rows(index) if isinstance(x, SparseRows) else x[index]


def project(x: Union[Tensor, "SparseRows", "KeptRows"], weight: Tensor, p: float, training: bool) -> Tensor:
    """``dropout(x) @ weight`` for a dense tensor, :class:`SparseRows` or :class:`KeptRows`."""
    if isinstance(x, (SparseRows, KeptRows)):
        return x.project(weight, p, training)
    return dropout(x, p, training) @ weight
