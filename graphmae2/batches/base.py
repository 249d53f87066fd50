"""What every batch source is: the :class:`Batch` of one optimizer step and the
:class:`BatchSource` interface; :class:`FullBatch`, the whole graph per step."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import Config
from ..datasets import NodeDataset
from ..feature_rows import SparseRows, mostly_zero
from ..graph import Graph
from ..masking import EncoderMask, draw_masks


@dataclass
class Batch:
    """One optimizer step's input.

    ``latent_nodes`` are the rows where the latent loss is taken (``None``: the model's
    ``model.latent_nodes`` rule); ``dropout_key`` keys the step's dropout stream,
    ``(seed, "dropout", *dropout_key)``.
    """

    graph: Graph
    x: Union[Tensor, SparseRows]
    mask: EncoderMask
    remasks: List[Tensor]
    latent_nodes: Optional[Tensor]
    sparse_input: bool
    step: int
    dropout_key: Tuple[int, ...]


def dist_rank_world() -> Tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed group, ``(0, 1)`` outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BatchSource(ABC):
    """What the training loop asks of a source. The concrete methods are a single
    process's answers; :class:`~graphmae2.batches.ego.EgoBatches` overrides them for DDP."""

    #: Input feature width.
    in_dim: int
    #: Optimizer steps per epoch (the same on every rank).
    steps_per_epoch: int
    rank: int = 0
    world: int = 1

    @abstractmethod
    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        """The steps of ``epoch``, in order, masks drawn from ``seed``'s streams."""

    @abstractmethod
    def first_mask(self, seed: int) -> Tensor:
        """Encoder-masked nodes of global step 0 (this rank's), for the manifest: computed
        from the streams, so a resumed run reports the same value."""

    @abstractmethod
    def monitor_batch(self) -> Tuple[Graph, Tensor, Optional[Tensor]]:
        """``(graph, x, rows)`` the collapse monitor reads (``rows=None``: every node)."""

    @abstractmethod
    def embeddings(self, model: nn.Module, spill: Optional[Path] = None, progress: bool = False,
                   resume: bool = False) -> Tensor:
        """Frozen encoder output for every node of the dataset, in node order, on the CPU.

        ``spill``: a ``.npy`` path a source may write them to rather than hold them in
        memory, returning a tensor over the memory map (mini-batch sources do: a graph's
        embeddings need not fit in memory; the full graph's are computed at once anyway);
        ``resume``: continue such a file's pass where an earlier process left it.
        """

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loop calls for the forward pass (the model itself here)."""
        return model

    def all_finite(self, loss: Tensor) -> bool:
        """Whether the step's loss is finite (on every rank, for sources with several)."""
        return bool(torch.isfinite(loss))

    def reduce(self, values: Dict[str, Tensor]) -> Dict[str, float]:
        """The global batch's scalars (the mean over ranks), the same on every rank."""
        return {k: v.item() for k, v in values.items()}

    def barrier(self) -> None:  # noqa: B027 - a no-op default that sources with ranks override
        """Wait for every rank (after a checkpoint); nothing to wait for here."""

    def manifest_fields(self, teacher_digest: Dict[str, Any]) -> Dict[str, Any]:
        """Source-specific manifest entries (collective: call on every rank)."""
        return {}


class FullBatch(BatchSource):
    """The whole graph as one batch: one optimizer step per epoch, global step = epoch.

    Masks of epoch ``e`` come from ``(seed, "mask", e)`` and ``(seed, "remask", e, v)``;
    dropout from ``(seed, "dropout", e)``. On the CPU, mostly-zero features take the
    sparse first-layer projection (exact, far cheaper for bag-of-words features).
    """

    steps_per_epoch = 1

    def __init__(self, cfg: Config, data: NodeDataset, device: torch.device) -> None:
        self.model_cfg = cfg.model
        self.graph, self.x = data.graph.to(device), data.x.to(device)
        self.num_nodes, self.in_dim = data.num_nodes, data.num_features
        self.rank, _ = dist_rank_world()  # under torchrun every rank trains the same graph; rank 0 writes
        self.sparse_input = device.type == "cpu" and mostly_zero(self.x)

    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        mask, remasks = draw_masks(self.model_cfg, seed, epoch, self.num_nodes)
        yield Batch(self.graph, self.x, mask, remasks, None, self.sparse_input, epoch, (epoch,))

    def first_mask(self, seed: int) -> Tensor:
        return draw_masks(self.model_cfg, seed, 0, self.num_nodes)[0].mask_nodes

    def monitor_batch(self) -> Tuple[Graph, Tensor, Optional[Tensor]]:
        return self.graph, self.x, None

    def embeddings(self, model: nn.Module, spill: Optional[Path] = None, progress: bool = False,
                   resume: bool = False) -> Tensor:
        return model.encode(self.graph, self.x).cpu()
