"""Model selection for the probes: test accuracy at the epoch of best validation accuracy.

Both the linear probe and fine-tuning report the test accuracy of the epoch whose
validation accuracy is highest, so the test split never influences which number is
reported. Epochs that tie the best validation accuracy are resolved by ``ties``: the
first one (the default), or the last one, as the GraphMAE2 reference's probe does (it
keeps the latest model whose accuracy is ``>=`` the best).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Union


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one probe run.

    Attributes:
        test_acc: test accuracy at ``best_epoch``.
        val_acc: validation accuracy at ``best_epoch`` (the best seen).
        best_epoch: 1-based epoch (number of optimizer steps taken) of the best
            validation accuracy; the first or last such epoch on ties (``ties``).
        epochs_run: epochs actually trained; less than ``max_epoch`` when fine-tuning
            stopped early.
    """

    test_acc: float
    val_acc: float
    best_epoch: int
    epochs_run: int

    def as_dict(self) -> Dict[str, Union[float, int]]:
        """Plain ``dict`` for JSON and logs."""
        return asdict(self)


class BestValidation:
    """Tracks the best validation accuracy seen and the test accuracy at that epoch.

    Feed epochs in increasing order through :meth:`update`. With ``ties="first"`` a later
    epoch replaces the best only if its validation accuracy is strictly higher; with
    ``ties="last"`` an equal one replaces it too.
    """

    def __init__(self, ties: str = "first") -> None:
        if ties not in ("first", "last"):
            raise ValueError(f"ties must be 'first' or 'last', got {ties!r}")
        self.ties = ties
        self.best_epoch = 0
        self.val_acc = float("-inf")
        self.test_acc = float("nan")
        self.epochs_run = 0

    def update(self, epoch: int, val_acc: float, test_acc: float) -> bool:
        """Record ``epoch``; returns whether it is the new best."""
        if epoch <= self.epochs_run:
            raise ValueError(f"epochs must increase: got epoch {epoch} after {self.epochs_run}")
        self.epochs_run = epoch
        if val_acc > self.val_acc or (self.ties == "last" and val_acc == self.val_acc):
            self.best_epoch, self.val_acc, self.test_acc = epoch, float(val_acc), float(test_acc)
            return True
        return False

    def stale_for(self, epoch: int) -> int:
        """Epochs since the best one, as of ``epoch``."""
        return epoch - self.best_epoch

    def result(self) -> ProbeResult:
        """The selected epoch as a :class:`ProbeResult`."""
        if self.epochs_run == 0:
            raise ValueError("no epoch was recorded; max_epoch must be at least 1")
        return ProbeResult(test_acc=self.test_acc, val_acc=self.val_acc,
                           best_epoch=self.best_epoch, epochs_run=self.epochs_run)
