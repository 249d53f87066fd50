"""Mini-batch pre-training on ego-graphs, and inference for every node in bounded memory.

Each training example is the ego-graph of a seed node (its top-k nodes by approximate
personalised PageRank, :mod:`graphmae2.sampling`). A batch is the disjoint union of its
ego-graphs' induced subgraphs; masking and re-masking act inside the batch, the latent
targets sit at the ego centres, and the EMA teacher is updated after every optimizer
step. Features may be a memory-mapped ``.npy``: only a batch's rows are read.

Under ``torchrun`` every rank takes a disjoint shard of each global batch and DDP
averages the gradients, so all ranks hold identical parameters, hence identical
teachers. Only rank 0 writes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .checkpoint import save_checkpoint
from .config import Config
from .ema import EMATeacher
from .schedules import momentum_at
from .graph import Graph
from .manifest import environment, state_digests, tensor_digest, write_manifest
from .masking import EncoderMask
from .sampling import EgoGraphs
from .seeding import derive_seed, loader_generator, seed_everything, seed_worker
from .trainer import (NonFiniteLossError, PretrainResult, autocast, build_model, build_optimizer,
                      check_precision, draw_masks, lr_factor, restore)

_logger = logging.getLogger(__name__)


@dataclass
class EgoBatch:
    """A disjoint union of ego-graphs: ``graph`` (with self-loops), ``x`` rows,
    ``centres`` (position of each ego's seed in the batch), ``sizes`` (nodes per ego)
    and ``ego_ids`` (index of each ego-graph in the :class:`EgoGraphs`)."""

    graph: Graph
    x: Tensor
    centres: Tensor
    sizes: List[int]
    ego_ids: List[int]


def induced_union(indptr: np.ndarray, indices: np.ndarray, egos: Sequence[np.ndarray],
                  scratch: Optional[np.ndarray] = None) -> Graph:
    """Disjoint union of the subgraphs induced by each node set in ``egos``.

    Ego by ego, its (distinct) nodes get their batch ids in a lookup table over the whole
    graph; an edge ``u -> v`` into the ego is kept where ``u`` has an id there. The table
    is cleared after each ego, so egos may share nodes. ``scratch`` is that table, an
    int32 array of -1 per graph node, left as it was found: pass one to reuse it across
    batches (a graph of 100M nodes makes it 400 MB); without it, one is allocated per call.
    The cost is the scan over the egos' neighbour lists: about 3.6M entries per batch of
    512 PPR ego-graphs of 64 nodes on a 169k-node graph (docs/scaling.md).
    """
    batch_id = np.full(indptr.size - 1, -1, dtype=np.int32) if scratch is None else scratch
    src, dst, offset = [], [], 0
    for ego in egos:
        ego = np.asarray(ego, dtype=np.int64)
        ids = np.arange(offset, offset + ego.size, dtype=np.int64)
        batch_id[ego] = ids
        first, deg = indptr[ego], indptr[ego + 1] - indptr[ego]
        ends = np.cumsum(deg)
        nbr = batch_id[indices[np.arange(deg.sum()) + np.repeat(first - (ends - deg), deg)]]
        hit = nbr >= 0
        src.append(nbr[hit].astype(np.int64))
        dst.append(np.repeat(ids, deg)[hit])
        batch_id[ego] = -1
        offset += ego.size
    return Graph.from_edges(torch.from_numpy(np.concatenate(src)), torch.from_numpy(np.concatenate(dst)),
                            offset).add_self_loops()


class EgoGraphDataset(Dataset):
    """Item ``i`` is just ``i``; :class:`EgoCollate` turns a list of them into a batch."""

    def __init__(self, num_egos: int) -> None:
        self.num_egos = num_egos

    def __len__(self) -> int:
        return self.num_egos

    def __getitem__(self, i: int) -> int:
        return i


class EgoCollate:
    """Builds an :class:`EgoBatch` from a global batch of ego-graph ids, keeping this
    rank's shard (ids ``rank, rank + world, ...`` of the batch). Picklable for workers."""

    def __init__(self, egos: EgoGraphs, graph: Graph, features: Any, rank: int = 0,
                 world: int = 1) -> None:
        self.egos = egos
        self.indptr = graph.indptr.cpu().numpy()
        self.indices = graph.indices.cpu().numpy()
        self.features = features  # torch tensor, numpy array or np.memmap
        self.rank, self.world = rank, world
        self.scratch: Optional[np.ndarray] = None  # induced_union's table, made in the process that uses it

    def __call__(self, ids: List[int]) -> EgoBatch:
        ids = list(ids)[self.rank::self.world]
        egos = [self.egos[i] for i in ids]
        nodes = np.concatenate(egos).astype(np.int64)
        sizes = [len(e) for e in egos]
        centres = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        if isinstance(self.features, Tensor):
            x = self.features[torch.from_numpy(nodes)]
        else:
            x = torch.from_numpy(np.ascontiguousarray(self.features[nodes], dtype=np.float32))
        if self.scratch is None:
            self.scratch = np.full(self.indptr.size - 1, -1, dtype=np.int32)
        return EgoBatch(induced_union(self.indptr, self.indices, egos, self.scratch), x,
                        torch.from_numpy(centres), sizes, ids)


def draw_batch_masks(cfg: Config, seed: int, step: int, batch: EgoBatch):  # noqa: ANN201
    """Encoder mask and remask views of a batch, drawn ego by ego from streams keyed by
    ``(seed, ego id, step)``: an ego-graph is masked the same way whichever rank holds it,
    so N processes compute what one process computes on the same global batch."""
    masks, views, offset = [], [[] for _ in range(cfg.model.num_remask)], 0
    for size, ego in zip(batch.sizes, batch.ego_ids):
        mask, remasks = draw_masks(cfg, derive_seed(seed, "ego", ego), step, size)
        masks.append((mask, offset))
        for v, nodes in enumerate(remasks):
            views[v].append(nodes + offset)
        offset += size

    def cat(field: str) -> Tensor:
        return torch.cat([getattr(m, field) + off for m, off in masks])

    mask = EncoderMask(cat("mask_nodes"), cat("keep_nodes"), cat("token_nodes"), cat("noise_nodes"),
                       cat("noise_sources"))
    remasks = [torch.cat(v) for v in views] if cfg.model.remask_method == "random" else []
    return mask, remasks


def make_loader(egos: EgoGraphs, graph: Graph, features: Any, batch_size: int, seed: int,
                epoch: int, shuffle: bool, num_workers: int = 0, rank: int = 0, world: int = 1) -> DataLoader:
    """DataLoader over global batches of ego-graphs, seeded through
    :mod:`graphmae2.seeding`: its own generator per epoch (the same on every rank, so all
    ranks agree on the batches) and ``seed_worker`` in every worker process."""
    return DataLoader(EgoGraphDataset(len(egos)), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=EgoCollate(egos, graph, features, rank, world), num_workers=num_workers,
                      worker_init_fn=seed_worker, generator=loader_generator(seed, epoch))


def _dist() -> tuple:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pretrain_minibatch(cfg: Config, graph: Graph, features: Any, egos: EgoGraphs, seed: int,
                       device: torch.device, run_dir: Optional[Path] = None, resume: bool = False,
                       progress: bool = True, writer: Any = None) -> PretrainResult:
    """Pre-train on batches of ego-graphs; one optimizer step and one EMA update per batch.

    Every rank iterates the same global batch order (same loader generator) and keeps
    its shard, so the run is the same computation for any number of processes up to the
    order of gradient summation.
    """
    rank, world = _dist()
    seeding = seed_everything(seed, cfg.train.deterministic)
    check_precision(cfg, device)
    t = cfg.train
    in_dim = int(features.shape[1])
    model = build_model(cfg, in_dim, seed).to(device)
    initial = state_digests(model)
    teacher = EMATeacher(model.ema_source())
    optimizer = build_optimizer(cfg, model)
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.remask_method == "fixed" or cfg.model.lam == 0)
    steps_per_epoch = -(-len(egos) // cfg.data.batch_size)
    total_steps = steps_per_epoch * t.max_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s / steps_per_epoch, t.max_epoch, t.scheduler))
    losses: List[float] = []
    start, seconds = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = restore(ckpt_path, device, model, teacher, optimizer, scheduler)
        start, losses, seconds = state["epoch"], list(state["losses"]), state["seconds"]
    first_mask = None
    bar = tqdm(total=total_steps, initial=start * steps_per_epoch, desc=f"pretrain seed {seed}",
               disable=not progress or rank != 0, leave=False, dynamic_ncols=True)
    for epoch in range(start, t.max_epoch):
        loader = make_loader(egos, graph, features, cfg.data.batch_size, seed, epoch, shuffle=True,
                             num_workers=cfg.data.num_workers, rank=rank, world=world)
        epoch_loss = []
        for step_in_epoch, batch in enumerate(loader):
            tic = time.perf_counter()
            step = epoch * steps_per_epoch + step_in_epoch
            g, x = batch.graph.to(device), batch.x.to(device)
            mask, remasks = draw_batch_masks(cfg, seed, step, batch)
            if first_mask is None:
                first_mask = mask.mask_nodes
            torch.manual_seed(derive_seed(seed, "dropout", step, rank))
            model.train()
            teacher.module.train(cfg.ema.teacher_dropout)
            with autocast(cfg, device):
                parts = ddp(g, x, teacher, mask, remasks, False, batch.centres.to(device))
            if not torch.isfinite(parts["loss"]):
                raise NonFiniteLossError(f"non-finite loss at epoch {epoch} step {step} (seed {seed})")
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            scheduler.step()
            m = momentum_at(step, total_steps, cfg.ema.momentum, cfg.ema.momentum_end, cfg.ema.schedule)
            if epoch < cfg.ema.delay_epochs:
                teacher.copy_(model.ema_source())
            else:
                teacher.update_(model.ema_source(), m)
            seconds += time.perf_counter() - tic
            reported = parts["loss"].detach()
            if world > 1:  # report the global batch's loss, the same number on every rank
                dist.all_reduce(reported)
                reported /= world
            epoch_loss.append(reported.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{epoch_loss[-1]:.4f}", m=f"{m:.4f}")
            if writer is not None and rank == 0:
                writer.add_scalar("loss/total", epoch_loss[-1], step)
                writer.add_scalar("ema/momentum", m, step)
        losses.append(float(np.mean(epoch_loss)))
        if ckpt_path is not None and rank == 0 and \
                ((epoch + 1) % t.checkpoint_every == 0 or epoch + 1 == t.max_epoch):
            save_checkpoint({
                "config": cfg.to_dict(), "in_dim": in_dim, "seed": seed, "epoch": epoch + 1,
                "model": model.state_dict(), "teacher": teacher.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"seed": seed, "epoch": epoch + 1}, "losses": losses, "seconds": seconds},
                ckpt_path)
        if world > 1:
            dist.barrier()
    bar.close()
    teacher.module.eval()
    teacher_digest = state_digests(teacher.module)
    by_rank = [teacher_digest["overall"]]
    if world > 1:
        by_rank = [None] * world
        dist.all_gather_object(by_rank, teacher_digest["overall"])
    if run_dir is not None and rank == 0:
        write_manifest(run_dir / "manifest.json", {
            "seed": seed, "seeding": seeding, "world_size": world, "environment": environment(device),
            "initial_params": initial, "first_mask_digest": tensor_digest(first_mask),
            "loss_trace": losses, "final_params": state_digests(model),
            "teacher_params": teacher_digest, "teacher_digest_by_rank": by_rank})
    return PretrainResult(model, teacher, losses, [], seconds, t.max_epoch)


@torch.no_grad()
def embed_minibatch(model: torch.nn.Module, graph: Graph, features: Any, egos: EgoGraphs,
                    device: torch.device, batch_size: int = 512) -> Tensor:
    """Encoder output at every ego centre, one batch of ego-graphs at a time, so memory
    is bounded by the batch, not the graph. Row ``i`` belongs to ``egos.seeds[i]``."""
    model.eval()
    out = []
    for batch in DataLoader(EgoGraphDataset(len(egos)), batch_size=batch_size, shuffle=False,
                            collate_fn=EgoCollate(egos, graph, features)):
        z = model.encoder(batch.graph.to(device), batch.x.to(device))
        out.append(z[batch.centres.to(device)].cpu())
    return torch.cat(out)
