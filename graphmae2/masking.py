"""Which nodes are masked: the encoder's input mask and the decoder's re-masks.

Each function draws only from the ``torch.Generator`` it is given (see
:mod:`graphmae2.seeding`), on the CPU, and returns CPU index tensors. Drawing on the CPU
makes the chosen nodes the same on every device; moving a few thousand indices costs
nothing next to a forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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

