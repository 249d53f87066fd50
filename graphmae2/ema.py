"""The EMA ("momentum") teacher: an in-place exponential moving average of the student.

After every optimizer step, each floating-point parameter and buffer ``t`` of the
teacher becomes ``m * t + (1 - m) * s`` for the matching student tensor ``s``; integer
buffers (BatchNorm's step counter) are copied. ``m = 0`` makes the teacher a copy of
the student, ``m = 1`` freezes it. Updates are in place, so the teacher's tensors stay
the same objects for the whole run, and they never require or hold gradients.
"""
from __future__ import annotations

import copy
import math
from typing import List, Tuple

import torch
from torch import Tensor, nn


def momentum_at(step: int, total_steps: int, base: float, end: float = 1.0,
                schedule: str = "constant") -> float:
    """Momentum for global optimizer step ``step`` (0-based) of ``total_steps``.

    ``constant`` returns ``base``; ``cosine`` rises from ``base`` at step 0 to ``end``
    at the last step along half a cosine, as in BYOL and DINO. Pure, so a resumed run
    gets the same value for the same step.
    """
    if schedule == "constant":
        return base
    if schedule == "cosine":
        if total_steps <= 1:
            return end
        progress = min(max(step / (total_steps - 1), 0.0), 1.0)
        return end - (end - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
    raise ValueError(f"unknown momentum schedule {schedule!r}; allowed: constant, cosine")


class EMATeacher:
    """Holds ``module``, a frozen deep copy of the student, and updates it in place.

    Args:
        student: the module to track (its parameters and buffers, matched by name).
    """

    def __init__(self, student: nn.Module) -> None:
        self.module = copy.deepcopy(student).eval()
        self.module.requires_grad_(False)

    def _pairs(self, student: nn.Module) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        t_state = self.module.state_dict(keep_vars=True)
        s_state = student.state_dict(keep_vars=True)
        if t_state.keys() != s_state.keys():
            missing = sorted(set(s_state) ^ set(t_state))
            raise ValueError(f"EMA teacher and student differ in tensors: {missing[:5]}")
        t_float, s_float, t_other, s_other = [], [], [], []
        for name, t in t_state.items():
            s = s_state[name].detach()
            if t.is_floating_point():
                t_float.append(t.data)
                s_float.append(s)
            else:
                t_other.append(t.data)
                s_other.append(s)
        return t_float, s_float, t_other, s_other

    @torch.no_grad()
    def update_(self, student: nn.Module, momentum: float) -> None:
        """``t <- m * t + (1 - m) * s`` for every floating tensor; integers copied.

        Computed as two rounded products and one rounded sum (no fused multiply-add),
        so the result equals the closed form evaluated in the same dtype, bitwise.
        """
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
        t_float, s_float, t_other, s_other = self._pairs(student)
        if t_float:
            scaled = torch._foreach_mul(s_float, 1.0 - momentum)
            torch._foreach_mul_(t_float, momentum)
            torch._foreach_add_(t_float, scaled)
        for t, s in zip(t_other, s_other):
            t.copy_(s)

    @torch.no_grad()
    def copy_(self, student: nn.Module) -> None:
        """Make the teacher an exact copy of the student (used before ``delay_epochs``)."""
        t_float, s_float, t_other, s_other = self._pairs(student)
        for t, s in zip(t_float + t_other, s_float + s_other):
            t.copy_(s)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
