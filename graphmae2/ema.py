"""The EMA ("momentum") teacher: an in-place exponential moving average of the student.

Once per optimizer step, each floating-point parameter and buffer ``t`` of the
teacher becomes ``m * t + (1 - m) * s`` for the matching student tensor ``s``; integer
buffers (BatchNorm's step counter) are copied. ``m = 0`` makes the teacher a copy of
the student, ``m = 1`` freezes it. Updates are in place, so the teacher's tensors stay
the same objects for the whole run, and they never require or hold gradients.

When (``ema.timing``): ``after_step`` reads ``s`` as ``optimizer.step()`` just left it
(as timm's ``ModelEmaV3.update``), so at ``m = 0`` the teacher is the student of the next
forward; ``before_step`` reads the weights this step's forward used, before the optimizer
moves them, as the official GraphMAE2 code's ``ema_update()`` inside ``forward`` does, so
at ``m = 0`` the targets of step ``k`` come from the student of step ``k - 1``.

The teacher's policy lives here too: :meth:`EMATeacher.step` is the one call the
trainer makes per optimizer step; it takes the momentum from the schedule of the global
step and applies the delay.
:meth:`EMATeacher.targets` is the one way latent targets are computed, by the model's
loss and by the collapse monitor alike; what the loss then does with them
(``model.latent_target``) is :meth:`graphmae2.model.GraphMAE2.latent_pair`, shared by both.

The delay (``ema.delay_epochs``, ``ema.delay_mode``). Before the delay ends the teacher
either

* ``copy`` (default): becomes a copy of the student after every step, so the EMA starts
  from the student it has to track; or
* ``freeze``: stays at its initial weights, as the GraphMAE2 reference's
  ``delayed_ema_epoch`` does, so the first epochs predict a random network's projection.

``copy`` is the default because it is what graphmae2 has always done (every existing
config and checkpoint repeats bitwise), and because a teacher frozen at its random
initialisation has nothing to teach: its projector's bias dominates its output (the
collapse the monitor reports), and the EMA must then average that away once the delay
ends. ``freeze`` is offered to reproduce the reference.
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

        Before ``ema.delay_epochs`` the teacher is made a copy of the student
        (``ema.delay_mode: copy``) or left as it is (``freeze``); from then on it moves as
        ``t <- m t + (1 - m) s``.
        """
        if self.cfg is None:
            raise ValueError("EMATeacher.step needs the ema config: EMATeacher(student, cfg.ema)")
        m = self.momentum(step, total_steps)
        if epoch < self.cfg.delay_epochs:
            if self.cfg.delay_mode == "copy":
                self.copy_(student)
            elif self.cfg.delay_mode != "freeze":
                raise ValueError(f"ema.delay_mode={self.cfg.delay_mode!r} is not allowed; "
                                 f"allowed: copy, freeze")
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
