"""Full-batch GraphMAE2 pre-training for one seed, top to bottom.

Each epoch is one optimizer step: draw masks from their streams, forward, loss, backward,
clip, step, EMA update, log, checkpoint. Every random draw is keyed by
``(seed, stream, epoch)`` (see :mod:`graphmae2.seeding`), so a run resumed from a
checkpoint at epoch k repeats the uninterrupted run bitwise.
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .datasets import NodeDataset
from .ema import EMATeacher
from .schedules import momentum_at
from .manifest import environment, state_digests, tensor_digest, write_manifest
from .masking import encoder_mask, remask_nodes
from .model import GraphMAE2
from .monitor import check_collapse, collapse_stats
from .seeding import derive_seed, generator, init_parameters_by_name, seed_everything

_logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss (``train.on_nan: stop``)."""


@dataclass
class PretrainResult:
    model: GraphMAE2
    teacher: EMATeacher
    losses: List[float] = field(default_factory=list)
    monitor: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0


def build_model(cfg: Config, in_dim: int, seed: int) -> GraphMAE2:
    """The model with every parameter initialised from ``(seed, parameter name)``."""
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


@functools.lru_cache(maxsize=None)  # read once per process, not once per seed
def cpu_has_native_bf16(cpuinfo: Union[str, Path] = "/proc/cpuinfo") -> Optional[bool]:
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); ``None`` where
    ``cpuinfo`` cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


_warned_emulated_bf16 = False


def check_precision(cfg: Config, device: torch.device) -> None:
    """Warn, once per process (not once per seed), when ``train.precision: bf16`` would
    run emulated, slower than float32."""
    global _warned_emulated_bf16
    if (not _warned_emulated_bf16 and cfg.train.precision == "bf16" and device.type == "cpu"
            and cpu_has_native_bf16() is False):
        _warned_emulated_bf16 = True
        _logger.warning("train.precision=bf16 on a CPU without AVX-512 BF16 or AMX is emulated and "
                        "likely slower than float32; pass --set train.precision=fp32")


def autocast(cfg: Config, device: torch.device) -> torch.autocast:
    """The forward pass's precision: bfloat16 autocast for ``train.precision: bf16``
    (dense matmuls in bfloat16; ``ops`` keeps message passing in float32), else off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")


def lr_factor(epoch: int, max_epoch: int, schedule: str) -> float:
    """Multiplier of the base LR at ``epoch``: 1, or half a cosine from 1 down to 0."""
    if schedule == "cosine":
        return (1.0 + math.cos(math.pi * epoch / max_epoch)) * 0.5
    return 1.0


def draw_masks(cfg: Config, seed: int, epoch: int, num_nodes: int):  # noqa: ANN201
    """Encoder mask and remask views for ``epoch``, each from its own stream.

    View ``v`` of epoch ``e`` is keyed by ``(seed, "remask", e, v)``, so changing
    ``num_remask`` adds or drops views without moving the others or the encoder mask.
    """
    m = cfg.model
    mask = encoder_mask(num_nodes, m.mask_rate, m.replace_rate, generator(seed, "mask", epoch))
    remasks = []
    if m.remask_method == "random":
        remasks = [remask_nodes(num_nodes, m.remask_rate, generator(seed, "remask", epoch, v))
                   for v in range(m.num_remask)]
    return mask, remasks


def pretrain(cfg: Config, data: NodeDataset, seed: int, device: torch.device,
             run_dir: Optional[Path] = None, resume: bool = False,
             progress: bool = True, writer: Any = None) -> PretrainResult:
    """Pre-train GraphMAE2 on ``data`` for ``cfg.train.max_epoch`` epochs.

    With ``run_dir``, checkpoints go to ``run_dir/checkpoint.pt`` every
    ``train.checkpoint_every`` epochs and at the end; ``resume`` continues from it.
    """
    seeding = seed_everything(seed, cfg.train.deterministic)
    check_precision(cfg, device)
    graph, x = data.graph.to(device), data.x.to(device)
    # Sparse first-layer projection: exact, and far cheaper for ~1%-dense features on CPU.
    sparse_input = device.type == "cpu" and float((x != 0).float().mean()) < 0.1
    t = cfg.train
    # ====== building model, teacher, optimizer ======
    model = build_model(cfg, data.num_features, seed).to(device)
    teacher = EMATeacher(model.ema_source())
    optimizer = build_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, t.max_epoch, t.scheduler))
    initial = state_digests(model)
    losses: List[float] = []
    monitor: List[Dict[str, float]] = []
    start, seconds = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = restore(ckpt_path, device, model, teacher, optimizer, scheduler)
        start, losses, seconds = state["epoch"], list(state["losses"]), state["seconds"]
        monitor = [dict(m) for m in state.get("monitor", [])]

    first_mask = draw_masks(cfg, seed, 0, data.num_nodes)[0].mask_nodes

    def checkpoint(epoch: int) -> None:
        if ckpt_path is None:
            return
        save_checkpoint({
            "config": cfg.to_dict(), "in_dim": data.num_features, "seed": seed, "epoch": epoch,
            "model": model.state_dict(), "teacher": teacher.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            # Streams are counter-based: (seed, name, epoch) is their whole state.
            "rng": {"seed": seed, "epoch": epoch},
            "losses": losses, "monitor": monitor, "seconds": seconds}, ckpt_path)

    # ====== training loop ======
    bar = tqdm(range(start, t.max_epoch), initial=start, total=t.max_epoch,
               desc=f"pretrain seed {seed}", disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        tic = time.perf_counter()
        mask, remasks = draw_masks(cfg, seed, epoch, data.num_nodes)
        torch.manual_seed(derive_seed(seed, "dropout", epoch))  # the dropout stream
        model.train()
        teacher.module.train(cfg.ema.teacher_dropout)
        with autocast(cfg, device):
            parts = model(graph, x, teacher, mask, remasks, sparse_input)
        loss = parts["loss"]
        if not torch.isfinite(loss):
            bad = {k: v.item() for k, v in parts.items() if k != "loss" and not torch.isfinite(v)}
            msg = (f"non-finite loss at epoch {epoch} (seed {seed}): "
                   + ", ".join(f"{k} = {v}" for k, v in bad.items()))
            if t.on_nan == "stop":
                raise NonFiniteLossError(msg + (f"; last good checkpoint: {ckpt_path}" if ckpt_path else ""))
            _logger.warning("%s; skipping this step (train.on_nan=skip)", msg)
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            losses.append(float("nan"))
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        momentum = momentum_at(epoch, t.max_epoch, cfg.ema.momentum, cfg.ema.momentum_end, cfg.ema.schedule)
        if epoch < cfg.ema.delay_epochs:
            teacher.copy_(model.ema_source())
        else:
            teacher.update_(model.ema_source(), momentum)
        seconds += time.perf_counter() - tic
        # ====== logging and checkpointing ======
        values = {k: v.item() for k, v in parts.items()}
        losses.append(values["loss"])
        bar.set_postfix({**{k: f"{v:.4f}" for k, v in values.items()}, "m": f"{momentum:.4f}"})
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"loss/{'total' if name == 'loss' else name}", value, epoch)
            writer.add_scalar("lr", lr, epoch)
            writer.add_scalar("ema/momentum", momentum, epoch)
        if t.monitor_every and ((epoch + 1) % t.monitor_every == 0 or epoch + 1 == t.max_epoch):
            monitor.append(_monitor(model, teacher, graph, x, epoch, writer))
        if (epoch + 1) % t.checkpoint_every == 0 or epoch + 1 == t.max_epoch:
            checkpoint(epoch + 1)
    bar.close()
    teacher.module.eval()
    result = PretrainResult(model, teacher, losses, monitor, seconds, t.max_epoch)
    if run_dir is not None:
        write_manifest(run_dir / "manifest.json", {
            "seed": seed, "seeding": seeding,
            "environment": environment(device), "initial_params": initial,
            "first_mask_digest": tensor_digest(first_mask), "loss_trace": losses,
            "final_params": state_digests(model), "teacher_params": state_digests(teacher.module),
            "embedding_digest": tensor_digest(model.embed(graph, x))})
    return result


@torch.no_grad()
def _monitor(model: GraphMAE2, teacher: EMATeacher, graph, x: Tensor, epoch: int,  # noqa: ANN001
             writer: Any) -> Dict[str, float]:
    """Collapse statistics of the online embeddings and teacher targets; warns on collapse."""
    online = model.embed(graph, x)
    teacher.module.eval()  # clean targets, whatever ema.teacher_dropout; the next step resets the mode
    target = teacher.module.projector(teacher.module.encoder(graph, x))
    stats = collapse_stats(online, target, model.ema_source(), teacher.module)
    if writer is not None:
        for k, v in stats.items():
            writer.add_scalar(f"monitor/{k}", v, epoch)
    warning = check_collapse(stats, model.out_dim, epoch)
    if warning:
        _logger.warning(warning)
    return {"epoch": epoch, **stats}


def embed(model: GraphMAE2, data: NodeDataset, device: torch.device) -> Tensor:
    """Frozen encoder output for every node, on the CPU."""
    return model.embed(data.graph.to(device), data.x.to(device)).cpu()
