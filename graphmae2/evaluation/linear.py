"""Linear probe: logistic regression on frozen node embeddings.

The standard GraphMAE2 evaluation: a single linear layer is trained full batch with
Adam and cross-entropy on the training nodes; after every epoch the validation and
test accuracies are measured, and the test accuracy at the best validation epoch is
reported (see :mod:`graphmae2.evaluation.selection`).
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .checks import check_embeddings, check_labels, check_mask, check_optim, check_positive_int, correct_count
from .head import make_head
from .selection import BestValidation, ProbeResult

_logger = logging.getLogger(__name__)


def linear_probe(embeddings: Tensor, labels: Tensor, train_mask: Tensor, val_mask: Tensor,
                 test_mask: Tensor, *, lr: float, weight_decay: float, max_epoch: int, seed: int,
                 ties: str = "first", device: Optional[Union[str, torch.device]] = None,
                 progress: bool = False) -> ProbeResult:
    """Train logistic regression on ``embeddings`` and score it on the test split.

    Args:
        embeddings: ``[num_nodes, dim]`` float; detached and used as given (no
            standardisation), cast to float32.
        labels: ``[num_nodes]`` integer class indices.
        train_mask, val_mask, test_mask: ``[num_nodes]`` boolean, each non-empty.
        lr, weight_decay: Adam settings (weight decay is the coupled L2 term of
            :class:`torch.optim.Adam`).
        max_epoch: full-batch optimizer steps, at least 1.
        seed: the head is initialised from the ``(seed, "probe", "head")`` stream.
        ties: report the ``first`` or the ``last`` of the epochs that share the best
            validation accuracy (the GraphMAE2 reference takes the last).
        device: where to train (default: the embeddings' device).
        progress: show a tqdm bar with the running validation accuracy.

    Returns:
        :class:`ProbeResult` with the test accuracy at the (first or last, ``ties``)
        epoch of best validation accuracy. Nothing here draws from torch's global RNG.

    Raises:
        ValueError: on mis-shaped or empty masks, bad labels, non-finite embeddings or
            out-of-range hyperparameters.
        FloatingPointError: if the training loss became NaN or Inf (lower ``lr``).
    """
    tracker = BestValidation(ties)  # rejects a bad ``ties`` before any work
    curves = probe_curves(embeddings, labels, train_mask, {"val_mask": val_mask, "test_mask": test_mask}, lr=lr,
                          weight_decay=weight_decay, max_epoch=max_epoch, seed=seed, device=device,
                          progress=progress)
    pairs = zip(curves["val_mask"].tolist(), curves["test_mask"].tolist())
    for epoch, (val_acc, test_acc) in enumerate(pairs, start=1):
        tracker.update(epoch, val_acc, test_acc)
    result = tracker.result()
    _logger.info("linear probe: test_acc=%.4f val_acc=%.4f at epoch %d/%d", result.test_acc,
                 result.val_acc, result.best_epoch, max_epoch)
    return result


def probe_curves(embeddings: Tensor, labels: Tensor, train_mask: Tensor, masks: Dict[str, Tensor], *,
                 lr: float, weight_decay: float, max_epoch: int, seed: int,
                 device: Optional[Union[str, torch.device]] = None,
                 progress: bool = False) -> Dict[str, Tensor]:
    """Train the probe's logistic regression and return, per named mask, its accuracy after
    every epoch: ``{name: float64 [max_epoch]}``, entry ``e`` after ``e + 1`` optimizer steps.

    :func:`linear_probe` selects an epoch from the validation curve; other selections (an
    epoch chosen on one part of the validation nodes and scored on the other,
    ``benchmarks/accuracy/probe_selection.py``) read the same curves. Arguments as in
    :func:`linear_probe`; each of ``masks`` is checked like the validation mask.
    """
    max_epoch = check_positive_int("max_epoch", max_epoch)
    check_optim(lr, weight_decay)
    num_nodes = embeddings.shape[0] if embeddings.dim() >= 1 else 0
    check_embeddings(embeddings, num_nodes)
    device = torch.device(device) if device is not None else embeddings.device
    x = embeddings.detach().to(device=device, dtype=torch.float32)
    labels = check_labels(torch.as_tensor(labels).to(device), num_nodes)
    train_mask = check_mask("train_mask", train_mask, labels)
    if not masks:
        raise ValueError("masks: give at least one named mask to score, e.g. {'val_mask': ..., 'test_mask': ...}")
    names = list(masks)
    scored = [check_mask(name, masks[name], labels) for name in names]
    num_classes = int(labels.max()) + 1
    sizes = torch.tensor([int(m.sum()) for m in scored], dtype=torch.float64)

    head = make_head(x.shape[1], num_classes, seed, device=device)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    # Per-epoch correct counts stay on the device; one transfer at the end, not one per epoch.
    correct = torch.zeros(max_epoch, len(scored), dtype=torch.long, device=device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    x_train, y_train = x[train_mask], labels[train_mask]  # gathered once, not per epoch
    bar = tqdm(range(max_epoch), desc="linear probe", disable=not progress, leave=False)
    for epoch in bar:
        loss = F.cross_entropy(head(x_train), y_train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        finite &= torch.isfinite(loss.detach())
        with torch.no_grad():
            logits = head(x)  # (N, C)
            for i, mask in enumerate(scored):
                correct[epoch, i] = correct_count(logits, labels, mask)
        if progress:
            first = f"{names[0].removesuffix('_mask')}_acc"
            bar.set_postfix({"loss": f"{loss.item():.4f}", first: f"{correct[epoch, 0].item() / sizes[0]:.4f}"})
    if not bool(finite):
        raise FloatingPointError(f"linear probe loss became NaN or Inf with lr={lr}; try a lower lr")
    acc = correct.cpu().double() / sizes
    return {name: acc[:, i] for i, name in enumerate(names)}
