"""GraphMAE2 pre-training for one seed (:func:`train_seed`): the one training loop, top to bottom.

Each step of each epoch: take the batch source's next batch (graph, features and masks
drawn from their streams), forward, non-finite policy, backward, clip, optimizer and
LR-schedule steps, EMA step (after the optimizer step, or before it with
``ema.timing: before_step``), log; each epoch ends with the collapse monitor and the
checkpoint. Full batch and mini-batch differ only in the source
(:mod:`graphmae2.batches`), so every rule here holds for
both. Every random draw is keyed by ``(seed, stream, step, ...)`` (see
:mod:`graphmae2.seeding`), so a run resumed from a checkpoint at epoch k repeats the
uninterrupted run bitwise.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .batches import BatchSource, FullBatch
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .datasets import NodeDataset
from .dropedge import edge_views
from .dropout import dropout_stream
from .ema import EMATeacher
from .manifest import environment, state_digests, tensor_digest, write_manifest
from .model import GraphMAE2
from .monitor import check_collapse, check_target_collapse, collapse_stats, latent_stats
from .precision import autocast, check_precision
from .pretrained import PretrainedEncoder
from .schedules import lr_factor
from .seeding import generator, init_parameters_by_name, set_deterministic

_logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss (``train.on_nan: stop``)."""


@dataclass
class SeedRun:
    """One seed's run: the trained model and EMA teacher, the per-epoch loss (mean over
    the epoch's steps), the monitor's records, training seconds and epochs; the final
    embeddings of every node while they are needed (for the manifest and the
    evaluation); and the evaluation ``scores`` once :func:`graphmae2.experiment.run_seed`
    has added them (empty on ranks other than 0 and for data without labels)."""

    seed: int
    config: Config
    model: GraphMAE2
    teacher: EMATeacher
    losses: List[float] = field(default_factory=list)
    monitor: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0
    embeddings: Optional[Tensor] = None
    scores: Dict[str, Any] = field(default_factory=dict)

    @property
    def encoder(self) -> PretrainedEncoder:
        """The trained encoder in eval mode, the type :func:`graphmae2.load_encoder` returns."""
        return PretrainedEncoder(self.model.encoder, self.config).eval()


def build_model(cfg: Config, in_dim: int, seed: int) -> GraphMAE2:
    """The model with every parameter initialised from ``(seed, parameter name)``; built
    on the CPU with torch's CPU generator restored after (the modules' own
    initialisation draws from it and is then replaced)."""
    with torch.random.fork_rng(devices=[]):
        model = GraphMAE2(in_dim, cfg.model)
    init_parameters_by_name(model, seed)
    return model


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.train.optimizer]
    return kind(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def restore(path: Path, device: torch.device, model: nn.Module, teacher: EMATeacher,
            optimizer: torch.optim.Optimizer, scheduler: Any) -> Dict[str, Any]:
    """Load model, teacher, optimizer and LR schedule from a checkpoint; return it."""
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    teacher.load_state_dict(state["teacher"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _logger.info("resumed seed %d at epoch %d from %s", state["seed"], state["epoch"], path)
    return state


def train_seed(cfg: Config, source: Union[BatchSource, NodeDataset], seed: int, device: torch.device,
               run_dir: Optional[Path] = None, resume: bool = False,
               progress: bool = True, writer: Any = None) -> SeedRun:
    """Pre-train GraphMAE2 for ``cfg.train.max_epoch`` epochs of ``source``'s batches.

    ``source`` is a :class:`~graphmae2.batches.BatchSource` (see
    :func:`~graphmae2.batches.build_source`); a :class:`NodeDataset` trains full batch.
    With ``run_dir``, rank 0 writes ``run_dir/checkpoint.pt`` every
    ``train.checkpoint_every`` epochs and at the end, and ``manifest.json`` at the end;
    ``resume`` continues from the checkpoint.
    """
    seeding = set_deterministic(cfg.train.deterministic, seed)
    check_precision(cfg, device)
    if isinstance(source, NodeDataset):
        source = FullBatch(cfg, source, device)
    t = cfg.train
    # ====== building model, teacher, optimizer ======
    model = build_model(cfg, source.in_dim, seed).to(device)
    initial = state_digests(model)
    teacher = EMATeacher(model.ema_source(), cfg.ema)
    optimizer = build_optimizer(cfg, model)
    forward = source.wrap(model)
    steps_per_epoch = source.steps_per_epoch
    total_steps = steps_per_epoch * t.max_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps_per_epoch, t.max_epoch, t.scheduler))
    losses: List[float] = []
    monitor: List[Dict[str, float]] = []
    start, seconds = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = restore(ckpt_path, device, model, teacher, optimizer, scheduler)
        start, losses, seconds = state["epoch"], list(state["losses"]), state["seconds"]
        monitor = [dict(m) for m in state.get("monitor", [])]
    writes = source.rank == 0
    writer = writer if writes else None
    reported: set = set()  # collapse kinds already reported this run (each is said once)
    # ====== training loop ======
    bar = tqdm(total=total_steps, initial=start * steps_per_epoch, desc=f"pretrain seed {seed}",
               disable=not progress or not writes, leave=False, dynamic_ncols=True)
    for epoch in range(start, t.max_epoch):
        epoch_losses = []
        for batch in source.batches(seed, epoch):
            tic = time.perf_counter()
            model.train()
            teacher.module.train(cfg.ema.teacher_dropout)
            # Encoder and teacher views (model.drop_edge_rate; both batch.graph at 0), keyed as dropout.
            encoder_graph, teacher_graph = edge_views(batch.graph, cfg.model.drop_edge_rate, seed,
                                                      batch.dropout_key)
            with autocast(cfg, device), dropout_stream(generator(seed, "dropout", *batch.dropout_key, device=device)):
                parts = forward(batch.graph, batch.x, teacher, batch.mask, batch.remasks, batch.sparse_input,
                                batch.latent_nodes, encoder_graph=encoder_graph, teacher_graph=teacher_graph)
            optimizer.zero_grad(set_to_none=True)
            finite = source.all_finite(parts["loss"])
            momentum = teacher.momentum(batch.step, total_steps)
            if finite:
                parts["loss"].backward()
                if t.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                if cfg.ema.timing == "before_step":  # from the weights this forward used
                    teacher.step(model.ema_source(), batch.step, total_steps, epoch)
                optimizer.step()
                if cfg.ema.timing == "after_step":  # from the weights just made
                    teacher.step(model.ema_source(), batch.step, total_steps, epoch)
            else:
                _non_finite(parts, epoch, batch.step, seed, t.on_nan, ckpt_path)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            seconds += time.perf_counter() - tic
            # ====== logging ======
            values = source.reduce({k: v.detach() for k, v in parts.items()})
            epoch_losses.append(values["loss"])
            bar.update(1)
            bar.set_postfix({"epoch": epoch, **{k: f"{v:.4f}" for k, v in values.items()}, "m": f"{momentum:.4f}"})
            if writer is not None:
                for name, value in values.items():
                    writer.add_scalar(f"loss/{'total' if name == 'loss' else name}", value, batch.step)
                writer.add_scalar("lr", lr, batch.step)
                writer.add_scalar("ema/momentum", momentum, batch.step)
        losses.append(float(np.mean(epoch_losses)))
        # ====== monitor and checkpoint ======
        last = epoch + 1 == t.max_epoch
        if writes and t.monitor_every and ((epoch + 1) % t.monitor_every == 0 or last):
            monitor.append(_monitor(model, teacher, source, epoch, writer, reported))
        if (epoch + 1) % t.checkpoint_every == 0 or last:
            if ckpt_path is not None and writes:
                save_checkpoint({
                    "config": cfg.to_dict(), "in_dim": source.in_dim, "seed": seed, "epoch": epoch + 1,
                    "model": model.state_dict(), "teacher": teacher.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    # Streams are counter-based: (seed, name, step) is their whole state.
                    "rng": {"seed": seed, "epoch": epoch + 1},
                    "losses": losses, "monitor": monitor, "seconds": seconds}, ckpt_path)
            source.barrier()
    bar.close()
    teacher.module.eval()
    teacher_digest = state_digests(teacher.module)
    extra = source.manifest_fields(teacher_digest)  # collective: every rank calls it
    result = SeedRun(seed, cfg, model, teacher, losses, monitor, seconds, t.max_epoch)
    if run_dir is not None:
        # Mini-batch sources stream them to run_dir/embeddings.npy, each rank its share: they need not fit in memory.
        embeddings = source.embeddings(model, spill=run_dir / "embeddings.npy", progress=progress and writes,
                                       resume=resume)
    if run_dir is not None and writes:
        result.embeddings = embeddings
        write_manifest(run_dir / "manifest.json", {
            "seed": seed, "seeding": seeding,
            "environment": environment(device), "initial_params": initial,
            "first_mask_digest": tensor_digest(source.first_mask(seed)), "loss_trace": losses,
            "final_params": state_digests(model), "teacher_params": teacher_digest, **extra,
            "embedding_digest": tensor_digest(result.embeddings)})
    return result


def _non_finite(parts: Dict[str, Tensor], epoch: int, step: int, seed: int, policy: str,
                ckpt_path: Optional[Path]) -> None:
    """``train.on_nan``: ``stop`` raises :class:`NonFiniteLossError`; ``skip`` warns and
    the loop skips this step's backward, optimizer and EMA updates (the LR schedule still
    advances, so later steps keep their values)."""
    bad = {k: v.item() for k, v in parts.items() if k != "loss" and not torch.isfinite(v)}
    msg = (f"non-finite loss at epoch {epoch} step {step} (seed {seed}): "
           + (", ".join(f"{k} = {v}" for k, v in bad.items()) or f"loss = {parts['loss'].item()}"))
    if policy == "stop":
        raise NonFiniteLossError(msg + (f"; last good checkpoint: {ckpt_path}" if ckpt_path else ""))
    _logger.warning("%s; skipping this step (train.on_nan=skip)", msg)


@torch.no_grad()
def _monitor(model: GraphMAE2, teacher: EMATeacher, source: BatchSource, epoch: int,
             writer: Any, reported: set) -> Dict[str, float]:
    """Collapse statistics of the online embeddings, the teacher's output and the latent
    pair the loss compares (:func:`~graphmae2.monitor.latent_stats`: ranks, cosine to the
    mean, teacher information) on the source's monitor batch; warns on either collapse."""
    graph, x, rows = source.monitor_batch()
    online = model.encode(graph, x)
    online = online if rows is None else online[rows]
    teacher.module.eval()  # clean targets, whatever ema.teacher_dropout; the next step resets the mode
    target = teacher.targets(graph, x, rows)
    stats = collapse_stats(online, target, model.ema_source(), teacher.module)
    stats.update(latent_stats(model, teacher, graph, x, rows))
    if writer is not None:
        for k, v in stats.items():
            writer.add_scalar(f"monitor/{k}", v, epoch)
    online_msg = check_collapse(stats, model.out_dim, epoch)
    if online_msg and "online" not in reported:
        reported.add("online")
        _logger.warning(online_msg)
    if "target" not in reported and check_target_collapse(stats, model.out_dim, epoch):
        reported.add("target")
        if model.cfg.latent_target == "reference":  # the official recipe's targets: expected, not a fault
            _logger.info("latent targets share one direction from epoch %d on (cosine to their mean %.4f), "
                         "as expected with model.latent_target=reference, the official recipe; for a teacher "
                         "that carries information: --set model.latent_target=standardise",
                         epoch, stats["target_cos_to_mean"])
        else:
            _logger.warning(check_target_collapse(stats, model.out_dim, epoch))
    return {"epoch": epoch, **stats}
