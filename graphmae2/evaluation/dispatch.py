"""The one evaluation entry point: ``eval.mode`` applied to a pre-trained encoder.

Both data modes and sweeps call :func:`evaluate`. The linear probe and k-means read the
frozen embeddings of every node (computed by the batch source: the full graph at once,
or ego-graph by ego-graph); fine-tuning trains a copy of the encoder on the full graph.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from ..config import EVAL_MODES, EvalConfig
from .cluster import cluster
from .finetune import finetune
from .linear import linear_probe

_logger = logging.getLogger(__name__)


def can_evaluate(data: Any) -> bool:
    """Whether ``data`` has labels and a train/val/test split to evaluate against."""
    return bool(getattr(data, "has_splits", False))


def evaluate(cfg: EvalConfig, data: Any, seed: int, embeddings: Tensor,
             encoder: Optional[nn.Module] = None, device: Optional[torch.device] = None) -> Dict[str, Any]:
    """Scores of ``eval.mode`` on ``data`` (a :class:`~graphmae2.datasets.NodeDataset`).

    Args:
        cfg: the ``eval`` config section.
        data: labels, split and (for fine-tuning) graph and features.
        seed: the run's seed; evaluation draws only from its ``"probe"`` stream.
        embeddings: ``[N, hidden]`` frozen encoder output for every node (linear, cluster).
        encoder: the pre-trained encoder (fine-tuning copies it; needed for ``finetune``).
        device: where fine-tuning runs.

    Returns:
        ``linear``/``finetune``: ``test_acc``, ``val_acc``, ...; ``cluster``: ``nmi``,
        ``ari``; an empty dict, with a log line, for data without labels or split.
    """
    if not can_evaluate(data):
        _logger.info("the dataset has no labels or no train/val/test split: eval.mode=%s skipped", cfg.mode)
        return {}
    if cfg.mode == "finetune":
        if encoder is None:
            raise ValueError("eval.mode=finetune needs the pre-trained encoder")
        dev = device or torch.device("cpu")
        return finetune(encoder, data.graph.to(dev), data.x.to(dev), data.y.to(dev), data.train_mask,
                        data.val_mask, data.test_mask, lr=cfg.finetune_lr, weight_decay=cfg.finetune_weight_decay,
                        max_epoch=cfg.finetune_max_epoch, patience=cfg.finetune_patience, seed=seed).as_dict()
    if cfg.mode == "cluster":
        return cluster(embeddings, data.y, data.num_classes, seed=seed, n_init=cfg.cluster_n_init)
    if cfg.mode == "linear":
        return probe(cfg, embeddings, data, seed)
    raise ValueError(f"eval.mode={cfg.mode!r}: allowed: {', '.join(EVAL_MODES)}")


def probe(cfg: EvalConfig, embeddings: Tensor, data: Any, seed: int) -> Dict[str, Any]:
    """Linear probe with ``eval.weight_decay``, or, when ``eval.weight_decay_grid`` is set,
    the grid value with the best validation accuracy (the first on ties): the test split
    never influences the choice. The weight decay used is reported as ``probe_weight_decay``."""
    best = None
    for wd in cfg.weight_decay_grid or [cfg.weight_decay]:
        result = linear_probe(embeddings, data.y, data.train_mask, data.val_mask, data.test_mask, lr=cfg.lr,
                              weight_decay=wd, max_epoch=cfg.max_epoch, seed=seed, ties=cfg.ties).as_dict()
        result["probe_weight_decay"] = wd
        if best is None or result["val_acc"] > best["val_acc"]:
            best = result
    return best
