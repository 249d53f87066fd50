"""The classification head shared by the linear probe and fine-tuning."""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import nn

from ..seeding import generator


def make_head(in_dim: int, num_classes: int, seed: int,
              device: Union[str, torch.device] = "cpu") -> nn.Linear:
    """``nn.Linear(in_dim, num_classes)`` initialised from the ``(seed, "probe", "head")`` stream.

    Weight and bias are drawn from ``U(-1/sqrt(in_dim), 1/sqrt(in_dim))`` (the bound
    PyTorch's default uses for the bias). The draw happens on the CPU and is then
    moved, so the initial head is the same on every device, and the module is built
    with :func:`torch.nn.utils.skip_init` so torch's global RNG is never touched.
    """
    head = nn.utils.skip_init(nn.Linear, in_dim, num_classes, device=device)
    g = generator(seed, "probe", "head")
    bound = 1.0 / math.sqrt(in_dim)
    weight = torch.empty(num_classes, in_dim).uniform_(-bound, bound, generator=g)
    bias = torch.empty(num_classes).uniform_(-bound, bound, generator=g)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head
