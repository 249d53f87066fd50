"""Batch sources: where the training loop's steps come from.

:func:`graphmae2.trainer.train_seed` is the only training loop. What differs between full
batch and mini-batch training is the *batch source* it is handed (as a DataLoader is
handed to DINO's ``train_one_epoch``): an object that yields, for each optimizer step,
a :class:`Batch` with everything the step needs (graph, features, masks, re-masks,
latent nodes, global step), and that knows the few things only it can know: how many
steps an epoch has, how ranks combine, which nodes the monitor and the embeddings read.

* :class:`FullBatch` (:mod:`.base`): the whole graph, one step per epoch.
* :class:`EgoBatches` (:mod:`.ego`): batches of PPR ego-graphs, sharded over
  ``torchrun`` ranks and averaged by DDP.

:func:`build_source` picks one from ``data.mode``.
"""
from __future__ import annotations

import torch

from ..config import Config
from ..datasets import NodeDataset
from .base import Batch, BatchSource, FullBatch, dist_rank_world
from .ego import EgoBatches

__all__ = ["Batch", "BatchSource", "EgoBatches", "FullBatch", "build_source", "dist_rank_world"]


def build_source(cfg: Config, data: NodeDataset, device: torch.device) -> BatchSource:
    """The batch source ``data.mode`` names, over ``data`` (from
    :func:`~graphmae2.datasets.load_data`): :class:`FullBatch` or, for ``minibatch``,
    :class:`~graphmae2.batches.ego.EgoBatches` (ego-graphs computed or read from their
    cache, features memory-mapped when ``data.features`` is set)."""
    if cfg.data.mode == "minibatch":
        return EgoBatches.from_config(cfg, data, device)
    return FullBatch(cfg, data, device)
