"""Fine-tuning: train a copy of the pre-trained encoder end to end with a linear head.

The caller's encoder is deep-copied and never modified. Dropout inside the copy draws
from torch's global RNG, so training runs inside :func:`torch.random.fork_rng`, seeded
from the ``(seed, "probe", "dropout")`` stream: the caller's RNG state is the same
after the call as before, and the result does not depend on it.
"""
from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ..graph import Graph
from ..seeding import derive_seed
from .checks import check_optim, check_positive_int, check_splits, correct_count
from .head import make_head
from .selection import BestValidation, ProbeResult

_logger = logging.getLogger(__name__)


def finetune(encoder: nn.Module, graph: Graph, x: Tensor, labels: Tensor, train_mask: Tensor,
             val_mask: Tensor, test_mask: Tensor, *, lr: float, weight_decay: float, max_epoch: int,
             patience: int, seed: int, progress: bool = False) -> ProbeResult:
    """Fine-tune a copy of ``encoder`` plus a linear head on the training nodes.

    Args:
        encoder: module called as ``encoder(graph, x) -> [num_nodes, encoder.out_dim]``;
            deep-copied, so the caller's parameters, buffers and train/eval mode are
            untouched. Every parameter of the copy is trained, frozen or not.
        graph, x: the input graph and ``[num_nodes, in_dim]`` features; training runs on
            ``x``'s device.
        labels: ``[num_nodes]`` integer class indices.
        train_mask, val_mask, test_mask: ``[num_nodes]`` boolean, each non-empty.
        lr, weight_decay: :class:`torch.optim.Adam` with coupled L2 weight decay (not
            AdamW), applied to encoder and head alike.
        max_epoch: most full-batch optimizer steps, at least 1.
        patience: stop once validation accuracy has not improved for this many epochs.
        seed: the head comes from the ``(seed, "probe", "head")`` stream, dropout from
            ``(seed, "probe", "dropout")``.
        progress: show a tqdm bar with the running validation accuracy.

    Returns:
        :class:`ProbeResult` with the test accuracy (eval mode, no dropout) at the
        first epoch of best validation accuracy.

    Raises:
        ValueError: on bad masks or labels, a missing ``encoder.out_dim``, an encoder
            output of the wrong shape, or out-of-range hyperparameters.
        FloatingPointError: if the training loss becomes NaN or Inf (lower ``lr``).
    """
    max_epoch = check_positive_int("max_epoch", max_epoch)
    patience = check_positive_int("patience", patience)
    check_optim(lr, weight_decay)
    out_dim = getattr(encoder, "out_dim", None)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(f"encoder must have a positive int attribute out_dim, got {out_dim!r}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape [num_nodes, in_dim], got {tuple(x.shape)}")
    device = x.device
    num_nodes = x.shape[0]
    labels, train_mask, val_mask, test_mask, num_classes = check_splits(
        torch.as_tensor(labels).to(device), torch.as_tensor(train_mask).to(device),
        torch.as_tensor(val_mask).to(device), torch.as_tensor(test_mask).to(device), num_nodes)
    n_val, n_test = int(val_mask.sum()), int(test_mask.sum())

    model = copy.deepcopy(encoder).to(device)
    model.requires_grad_(True)
    head = make_head(out_dim, num_classes, seed, device=device)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    tracker = BestValidation()
    with _dropout_rng(derive_seed(seed, "probe", "dropout"), device):
        bar = tqdm(range(1, max_epoch + 1), desc="fine-tune", disable=not progress, leave=False)
        for epoch in bar:
            model.train()
            head.train()
            z = model(graph, x)  # (N, out_dim)
            if epoch == 1 and tuple(z.shape) != (num_nodes, out_dim):
                raise ValueError(f"encoder returned shape {tuple(z.shape)}; expected "
                                 f"({num_nodes}, encoder.out_dim={out_dim})")
            loss = F.cross_entropy(head(z[train_mask]), labels[train_mask])
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"fine-tuning loss became {loss.item()} at epoch {epoch} "
                                         f"with lr={lr}; try a lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            model.eval()
            head.eval()
            with torch.no_grad():
                logits = head(model(graph, x))  # (N, C)
                val_acc = correct_count(logits, labels, val_mask).item() / n_val
                test_acc = correct_count(logits, labels, test_mask).item() / n_test
            tracker.update(epoch, val_acc, test_acc)
            if progress:
                bar.set_postfix(loss=f"{loss.item():.4f}", val_acc=f"{val_acc:.4f}")
            if tracker.stale_for(epoch) >= patience:
                _logger.debug("fine-tuning stopped early at epoch %d (best %d)", epoch, tracker.best_epoch)
                break
    result = tracker.result()
    _logger.info("fine-tune: test_acc=%.4f val_acc=%.4f at epoch %d (%d of at most %d run)",
                 result.test_acc, result.val_acc, result.best_epoch, result.epochs_run, max_epoch)
    return result


@contextmanager
def _dropout_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the body on torch's global RNG seeded with ``seed``, then restore the old state.

    Only the CPU generator and, for CUDA, the generator of ``device`` are forked and
    seeded; ``torch.manual_seed`` is avoided because it would also reseed every other
    CUDA device (lazily, if CUDA is not yet initialised), which ``fork_rng`` would not
    restore.
    """
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
