"""The EMA ("momentum") teacher: an in-place exponential moving average of the student.

After every optimizer step, each floating-point parameter and buffer ``t`` of the
teacher becomes ``m * t + (1 - m) * s`` for the matching student tensor ``s``; integer
buffers (BatchNorm's step counter) are copied. ``m = 0`` makes the teacher a copy of
the student, ``m = 1`` freezes it. Updates are in place, so the teacher's tensors stay
the same objects for the whole run, and they never require or hold gradients.

The teacher's policy lives here too: :meth:`EMATeacher.step` is the one call the
trainer makes after ``optimizer.step()`` (as timm's ``ModelEmaV3.update(model, step)``);
it takes the momentum from the schedule of the global step and applies the delay.
:meth:`EMATeacher.targets` is the one way latent targets are computed, by the model's
loss and by the collapse monitor alike.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .schedules import momentum_at

if TYPE_CHECKING:
    from .config import EMAConfig
    from .graph import Graph


class EMATeacher:
    """Holds ``module``, a frozen deep copy of the student, and updates it in place.

    Args:
        student: the module to track (its parameters and buffers, matched by name);
            :meth:`targets` needs ``.encoder`` and ``.projector`` in it.
        cfg: the ``ema`` config section (momentum, schedule, delay); only
            :meth:`step` reads it.
    """

    def __init__(self, student: nn.Module, cfg: Optional["EMAConfig"] = None) -> None:
        self.module = copy.deepcopy(student).eval()
        self.module.requires_grad_(False)
        self.cfg = cfg

    def momentum(self, step: int, total_steps: int) -> float:
        """The schedule's momentum at global optimizer step ``step`` of ``total_steps``."""
        c = self.cfg
        return momentum_at(step, total_steps, c.momentum, c.momentum_end, c.schedule)

    @torch.no_grad()
    def step(self, student: nn.Module, step: int, total_steps: int, epoch: int) -> float:
        """The update after optimizer step ``step`` (of ``total_steps``, in ``epoch``);
        returns the momentum of the schedule.

        Before ``ema.delay_epochs`` the teacher is made a copy of the student; from then
        on it moves as ``t <- m t + (1 - m) s``.
        """
        if self.cfg is None:
            raise ValueError("EMATeacher.step needs the ema config: EMATeacher(student, cfg.ema)")
        m = self.momentum(step, total_steps)
        if epoch < self.cfg.delay_epochs:
            self.copy_(student)
        else:
            self.update_(student, m)
        return m

    @torch.no_grad()
    def targets(self, graph: "Graph", x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Latent targets ``projector(encoder(graph, x))`` at ``rows`` (default: every
        node), ``[len(rows), hidden]``, in whatever mode the teacher is in."""
        return self.module.projector(self.module.encoder(graph, x, rows=rows))

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
