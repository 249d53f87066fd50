"""Evaluation of a pre-trained encoder: linear probe, fine-tuning, k-means clustering.

:func:`evaluate` is the entry point: it runs the protocol ``eval.mode`` names.

Every function here is deterministic for fixed inputs and seed and leaves torch's
global RNG state as it found it; all randomness comes from the ``"probe"`` stream of
:mod:`graphmae2.seeding`, so evaluation never shifts or depends on training's draws.
"""
from ..config import EVAL_MODES
from .cluster import cluster
from .dispatch import can_evaluate, evaluate, probe
from .finetune import finetune
from .linear import linear_probe, probe_curves
from .selection import BestValidation, ProbeResult

__all__ = ["EVAL_MODES", "BestValidation", "ProbeResult", "can_evaluate", "cluster", "evaluate", "finetune",
           "linear_probe", "probe", "probe_curves"]
