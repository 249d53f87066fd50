"""Checks on the inputs every probe shares: labels, split masks, hyperparameters.

The probes validate once, up front, so that a wrong mask or a zero epoch count fails
with a message naming the value rather than as a silent chance-level score.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


def check_labels(labels: Tensor, num_nodes: int) -> Tensor:
    """``labels`` as a 1-D int64 tensor of length ``num_nodes``."""
    labels = torch.as_tensor(labels)
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.numel() != num_nodes:
        raise ValueError(f"labels must have shape [{num_nodes}] (one per node), got {tuple(labels.shape)}")
    return labels.long()


def check_splits(labels: Tensor, train_mask: Tensor, val_mask: Tensor, test_mask: Tensor,
                 num_nodes: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Validate labels and the three boolean masks over ``num_nodes`` nodes.

    Returns ``(labels, train_mask, val_mask, test_mask, num_classes)`` with labels as
    int64 and ``num_classes = labels.max() + 1``. Every mask must pass :func:`check_mask`.
    """
    labels = check_labels(labels, num_nodes)
    masks = [check_mask(name, mask, labels) for name, mask in
             (("train_mask", train_mask), ("val_mask", val_mask), ("test_mask", test_mask))]
    return labels, masks[0], masks[1], masks[2], int(labels.max()) + 1


def check_mask(name: str, mask: Tensor, labels: Tensor) -> Tensor:
    """``mask`` on ``labels``' device, if it is a non-empty boolean tensor with one entry per
    node whose nodes all have a non-negative label (unlabelled nodes, marked ``-1``, may sit
    outside it); otherwise a one-line ``ValueError`` naming ``name``."""
    num_nodes = labels.numel()
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a boolean tensor, got dtype {mask.dtype}; "
                         f"convert node indices with a zeros(num_nodes, dtype=bool) mask")
    if mask.dim() != 1 or mask.numel() != num_nodes:
        raise ValueError(f"{name} must have shape [{num_nodes}] (one entry per node), "
                         f"got {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError(f"{name} selects no nodes; every split needs at least one node")
    mask = mask.to(labels.device)
    if bool((labels[mask] < 0).any()):
        raise ValueError(f"{name} includes nodes with a negative (missing) label")
    return mask


def check_positive_int(name: str, value: int) -> int:
    """``value`` as an ``int`` if it is an integer of at least 1."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_optim(lr: float, weight_decay: float) -> None:
    """The learning rate must be positive and the weight decay non-negative."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")


def check_embeddings(embeddings: Tensor, num_nodes: int) -> Tensor:
    """A finite 2-D float tensor with one row per node."""
    if embeddings.dim() != 2 or embeddings.shape[0] != num_nodes:
        raise ValueError(f"embeddings must have shape [{num_nodes}, dim], got {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got dtype {embeddings.dtype}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("embeddings contain NaN or Inf; check the encoder for a diverged run")
    return embeddings


def correct_count(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Number of nodes in ``mask`` whose arg-max class equals the label (a 0-d tensor).

    Returned as a tensor so a loop over epochs need not synchronise with the device.
    """
    return (logits[mask].argmax(dim=1) == labels[mask]).sum()
