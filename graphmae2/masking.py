"""Which nodes are masked: the encoder's input mask and the decoder's re-masks.

:func:`draw_masks` (one graph) and :func:`draw_ego_masks` (a batch of ego-graphs) are
the only places a training step's masks are drawn, from the named streams of
:mod:`graphmae2.seeding`.

Each function draws only from the ``torch.Generator`` it is given (see
:mod:`graphmae2.seeding`), on the CPU, and returns CPU index tensors. Drawing on the CPU
makes the chosen nodes the same on every device; moving a few thousand indices costs
nothing next to a forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Sequence, Tuple

import torch
from torch import Tensor

from .seeding import derive_seed, generator

if TYPE_CHECKING:
    from .config import ModelConfig


@dataclass(frozen=True)
class EncoderMask:
    """Node sets of one encoder masking draw (all 1-D int64, CPU).

    ``mask_nodes`` = ``token_nodes`` ∪ ``noise_nodes`` (disjoint); ``keep_nodes`` are the
    rest. ``noise_nodes[i]`` receives the features of ``noise_sources[i]``.
    """

    mask_nodes: Tensor
    keep_nodes: Tensor
    token_nodes: Tensor
    noise_nodes: Tensor
    noise_sources: Tensor


def encoder_mask(num_nodes: int, mask_rate: float, replace_rate: float,
                 generator: torch.Generator) -> EncoderMask:
    """Mask ``int(mask_rate * num_nodes)`` random nodes; of those, ``int(replace_rate *
    num_masked)`` get a random node's features instead of the [MASK] token (BERT-style
    noise, so the encoder cannot rely on the token marking every masked node)."""
    perm = torch.randperm(num_nodes, generator=generator)
    num_mask = int(mask_rate * num_nodes)
    mask_nodes, keep_nodes = perm[:num_mask], perm[num_mask:]
    num_noise = int(replace_rate * num_mask)
    order = torch.randperm(num_mask, generator=generator)
    token_nodes = mask_nodes[order[:num_mask - num_noise]]
    noise_nodes = mask_nodes[order[num_mask - num_noise:]]
    noise_sources = torch.randperm(num_nodes, generator=generator)[:num_noise]
    return EncoderMask(mask_nodes, keep_nodes, token_nodes, noise_nodes, noise_sources)


def input_rows(num_nodes: int, mask: EncoderMask) -> Tensor:
    """Where each row of the encoder input comes from: ``index[i]`` is the node whose
    features row ``i`` gets (itself, or a noise source), ``-1`` for token rows."""
    index = torch.arange(num_nodes)
    index[mask.noise_nodes] = mask.noise_sources
    index[mask.token_nodes] = -1
    return index


def masked_input(x: Tensor, mask: EncoderMask) -> Tensor:
    """Copy of ``x`` with noise nodes given their sources' features and token nodes
    zeroed (the caller adds the learnable token to those rows)."""
    index = input_rows(x.shape[0], mask).to(x.device)
    out = x.index_select(0, index.clamp(min=0))
    out[index < 0] = 0.0
    return out


def token_rows(num_nodes: int, mask: EncoderMask, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[N, 1]`` indicator of the nodes that get the [MASK] token."""
    out = torch.zeros(num_nodes, 1, dtype=dtype, device=device)
    out[mask.token_nodes.to(device)] = 1.0
    return out


def remask_nodes(num_nodes: int, remask_rate: float, generator: torch.Generator) -> Tensor:
    """``int(remask_rate * num_nodes)`` random nodes to hide from one decoding view."""
    return torch.randperm(num_nodes, generator=generator)[:int(remask_rate * num_nodes)]



def draw_masks(cfg: "ModelConfig", seed: int, step: int, num_nodes: int) -> Tuple[EncoderMask, List[Tensor]]:
    """Encoder mask and re-mask views of global step ``step``, each from its own stream.

    View ``v`` of step ``s`` is keyed by ``(seed, "remask", s, v)``, so changing
    ``num_remask`` adds or drops views without moving the others or the encoder mask.
    ``remask_method: fixed`` has no views (the decoder re-masks the encoder's nodes).
    """
    mask = encoder_mask(num_nodes, cfg.mask_rate, cfg.replace_rate, generator(seed, "mask", step))
    remasks = []
    if cfg.remask_method == "random":
        remasks = [remask_nodes(num_nodes, cfg.remask_rate, generator(seed, "remask", step, v))
                   for v in range(cfg.num_remask)]
    return mask, remasks


def draw_ego_masks(cfg: "ModelConfig", seed: int, step: int, sizes: Sequence[int],
                   ego_ids: Sequence[int]) -> Tuple[EncoderMask, List[Tensor]]:
    """Masks of a batch of ego-graphs (``sizes[i]`` nodes each, laid out one after the
    other), drawn ego by ego from streams keyed by ``(seed, ego id, step)``: an ego-graph
    is masked the same way whichever rank holds it, so N processes compute what one
    process computes on the same global batch."""
    masks, views, offset = [], [[] for _ in range(cfg.num_remask)], 0
    for size, ego in zip(sizes, ego_ids):
        mask, remasks = draw_masks(cfg, derive_seed(seed, "ego", ego), step, size)
        masks.append((mask, offset))
        for v, nodes in enumerate(remasks):
            views[v].append(nodes + offset)
        offset += size

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(m, name) + off for m, off in masks])

    mask = EncoderMask(cat("mask_nodes"), cat("keep_nodes"), cat("token_nodes"), cat("noise_nodes"),
                       cat("noise_sources"))
    remasks = [torch.cat(v) for v in views] if cfg.remask_method == "random" else []
    return mask, remasks
