"""Activation and normalisation factories shared by the layers, and :func:`eval_mode`."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from torch import nn

ACTIVATIONS = ("prelu", "elu", "relu", "gelu", "none")
NORMS = ("none", "layernorm", "batchnorm")


def make_activation(name: Optional[str]) -> nn.Module:
    """``prelu | elu | relu | gelu | none`` -> module (``none`` is the identity)."""
    table = {"prelu": nn.PReLU, "elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU,
             "none": nn.Identity, None: nn.Identity}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return table[name]()


def make_norm(name: Optional[str], dim: int) -> nn.Module:
    """``none | layernorm | batchnorm`` over the last dimension ``dim``."""
    if name in (None, "none"):
        return nn.Identity()
    if name == "layernorm":
        return nn.LayerNorm(dim)
    if name == "batchnorm":
        return nn.BatchNorm1d(dim)
    raise ValueError(f"unknown norm {name!r}; allowed: {', '.join(NORMS)}")


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block, then back in the mode each was in."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
