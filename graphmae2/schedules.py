"""The one cosine schedule, for the learning rate and the EMA momentum.

Both are pure functions of the global optimizer step, so a resumed run gets the same
value for the same step (as DINO's ``cosine_scheduler``, without precomputing a table).
"""
from __future__ import annotations

import math


def cosine(t: float, total: float, start: float, end: float) -> float:
    r"""Half a cosine from ``start`` at ``t = 0`` to ``end`` at ``t = total``:
    :math:`\mathrm{end} + (\mathrm{start} - \mathrm{end})\,(1 + \cos(\pi t / T)) / 2`."""
    return end + (start - end) * (1.0 + math.cos(math.pi * t / total)) / 2


def lr_factor(step: int, steps_per_epoch: int, max_epoch: int, schedule: str) -> float:
    """Multiplier of the base LR at global ``step``: 1 (``none``), or a cosine from 1 at
    step 0 down to 0 at the end of ``max_epoch`` epochs (``cosine``)."""
    if schedule == "cosine":
        return cosine(step / steps_per_epoch, max_epoch, 1.0, 0.0)
    if schedule == "none":
        return 1.0
    raise ValueError(f"train.scheduler={schedule!r}: allowed: none, cosine")


def momentum_at(step: int, total_steps: int, base: float, end: float = 1.0,
                schedule: str = "constant") -> float:
    """EMA momentum for global optimizer step ``step`` (0-based) of ``total_steps``.

    ``constant`` returns ``base``; ``cosine`` rises from ``base`` at step 0 to ``end``
    at the last step, as in BYOL and DINO.
    """
    if schedule == "constant":
        return base
    if schedule == "cosine":
        if total_steps <= 1:
            return end
        return cosine(min(max(step / (total_steps - 1), 0.0), 1.0), 1.0, base, end)
    raise ValueError(f"unknown momentum schedule {schedule!r}; allowed: constant, cosine")
