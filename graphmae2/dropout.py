"""Dropout drawn from an explicit random stream, never from the caller's global RNG.

The training loop opens :func:`dropout_stream` with the step's generator (keyed
``(seed, "dropout", *batch.dropout_key)``, :mod:`graphmae2.seeding`); every dropout of
that step's forward pass draws from it, in call order. Outside a stream (a user's own
forward in training mode) dropout draws from torch's default generator, as
``nn.Dropout`` does.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

import torch
from torch import Tensor

_STREAM: contextvars.ContextVar[Optional[torch.Generator]] = contextvars.ContextVar("dropout_stream", default=None)


@contextlib.contextmanager
def dropout_stream(generator: torch.Generator) -> Iterator[torch.Generator]:
    """Make ``generator`` the source of every :func:`training_dropout` draw inside the
    block (it must live on the device of the tensors dropped)."""
    token = _STREAM.set(generator)
    try:
        yield generator
    finally:
        _STREAM.reset(token)


def training_dropout(x: Tensor, p: float) -> Tensor:
    """Training-mode dropout: zero each entry with probability ``p``, scale the rest by
    ``1 / (1 - p)``.

    Same distribution as :func:`torch.nn.functional.dropout`, drawn with ``torch.rand``
    (vectorised) instead of ``bernoulli_``, which is ~3x slower on the CPU. The uniforms
    are float32 whatever ``x``'s dtype: bfloat16 uniforms take ~1,800 distinct values, so
    ``u >= p`` would keep a fraction other than ``1 - p`` (0.7981 at p = 0.2) while the
    rescale assumes ``1 - p``. For float32 ``x`` the draw is ``rand_like(x)``'s, bitwise.
    """
    if p <= 0:
        return x
    if p >= 1:
        return torch.zeros_like(x)
    uniform = torch.rand(x.shape, dtype=torch.float32, device=x.device, generator=_STREAM.get())
    return x * (uniform >= p).to(x.dtype) * (1.0 / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """:func:`training_dropout` when ``training``, else ``x``."""
    return training_dropout(x, p) if training else x
