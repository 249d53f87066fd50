"""Runs: one seed (:func:`run_seed`), and a config over its seeds into one run directory
(:func:`run_experiment`).

``<out>/<dataset>-<timestamp>/`` holds ``config.yaml`` (fully resolved),
``metrics.json`` (per seed and mean/std), ``checkpoint.pt`` (the last seed's final
model) and one ``seed-<s>/`` directory per seed with its checkpoint, ``manifest.json``,
``result.json`` and TensorBoard events. A seed with a ``result.json`` is finished:
resuming skips it (:func:`finished_result`, the one rule, for runs and sweeps alike).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from .batches import BatchSource, build_source
from .config import Config, to_yaml
from .datasets import NodeDataset, load_data
from .distributed import is_rank0
from .evaluation import evaluate
from .monitor import final_stats
from .results import summarize
from .trainer import NonFiniteLossError, PretrainResult, pretrain

_logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"


def new_run_dir(out: Path, dataset: str, force: bool = False) -> Path:
    """A fresh ``<out>/<dataset>-<timestamp>``; an existing one needs ``force``.

    Raises:
        ValueError: ``out`` (or a parent of it) is a file, not a directory.
        FileExistsError: the run directory exists and ``force`` is False.
    """
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {out}: {parent} is a file, not a directory; give a directory")
    run_dir = out / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists():
        if not force:
            raise FileExistsError(f"run directory {run_dir} already exists; pass --force to overwrite it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


def finished_result(seed_dir: Path) -> Optional[Dict[str, Any]]:
    """The stored scores of a finished seed (its ``result.json``), else None."""
    path = Path(seed_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class SeedRun:
    """One seed's pre-training (model, teacher, losses, monitor) and its scores
    (empty on ranks other than 0, and for data without labels)."""

    pretrained: PretrainResult
    scores: Dict[str, Any]


def run_seed(cfg: Config, data: NodeDataset, seed: int, device: torch.device,
             seed_dir: Optional[Path] = None, resume: bool = False, progress: bool = True,
             source: Optional[BatchSource] = None) -> SeedRun:
    """Pre-train one seed of ``cfg`` on ``data`` and evaluate it with ``cfg.eval``.

    Args:
        cfg: the whole config (``train.seeds`` is not read: ``seed`` is the one run).
        data: what :func:`~graphmae2.datasets.load_data` returns (features scaled).
        seed: the seed of every stream.
        device: where to train.
        seed_dir: when given, rank 0 writes the checkpoint, ``manifest.json``,
            TensorBoard events and ``result.json`` there; ``resume`` continues from the
            checkpoint.
        progress: show progress bars.
        source: the batch source (default: :func:`~graphmae2.batches.build_source`);
            pass one to share ego-graphs between seeds.
    """
    source = source if source is not None else build_source(cfg, data, device)
    writer = None
    if seed_dir is not None and source.rank == 0:
        from torch.utils.tensorboard import SummaryWriter  # slow import, only when writing

        Path(seed_dir).mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(seed_dir))
    try:
        result = pretrain(cfg, source, seed, device, seed_dir, resume=resume, progress=progress, writer=writer)
        if source.rank != 0:
            return SeedRun(result, {})
        tic = time.perf_counter()
        emb = result.embeddings if result.embeddings is not None else source.embeddings(result.model)
        scores = evaluate(cfg.eval, data, seed, emb, encoder=result.model.encoder, device=device)
        if writer is not None:
            for k, v in scores.items():
                if k.endswith("acc") or k in ("nmi", "ari"):
                    writer.add_scalar(f"eval/{k}", v, cfg.train.max_epoch)
    finally:
        if writer is not None:
            writer.close()
    scores.update(epochs=result.epochs, seconds=result.seconds, eval_seconds=time.perf_counter() - tic,
                  final_loss=result.losses[-1], **final_stats(result.monitor), monitor=result.monitor)
    if seed_dir is not None:
        (Path(seed_dir) / RESULT_FILE).write_text(json.dumps(scores, indent=1))
    _logger.info("seed %d: %s", seed, ", ".join(f"{k}={v:.4f}" for k, v in scores.items()
                                               if isinstance(v, float)))
    return SeedRun(result, scores)


def run_experiment(cfg: Config, run_dir: Path, device: torch.device, data: Optional[NodeDataset] = None,
                   resume: bool = False, progress: bool = True, keep_going: bool = False,
                   after_seed: Optional[Callable[[int], None]] = None,
                   extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Run every seed of ``cfg`` into ``run_dir``; returns (and writes) ``metrics.json``.

    Args:
        data: what :func:`~graphmae2.datasets.load_data` returns (features already
            scaled); by default it is loaded from ``cfg.data``.
        resume: skip finished seeds and continue the others from their checkpoints.
        keep_going: a seed that stops on a non-finite loss is logged, counted in
            ``n_failed`` and left out of the means, instead of ending the run.
        after_seed: called with each seed once it is done (finished, skipped or failed).
        extra: entries added to ``metrics.json`` (a sweep's point).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank0 = is_rank0()
    if rank0:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    if data is None:
        data = load_data(cfg.data)
    source = build_source(cfg, data, device)  # ego-graphs once per experiment, not per seed
    per_seed: Dict[str, Dict[str, Any]] = {}
    failed = 0
    for seed in cfg.train.seeds:
        seed_dir = run_dir / f"seed-{seed}"
        scores = finished_result(seed_dir) if resume else None
        if scores is not None:
            _logger.info("%s seed %d already finished, skipped", run_dir.name, seed)
        else:
            try:
                scores = run_seed(cfg, data, seed, device, seed_dir, resume, progress, source).scores
            except NonFiniteLossError as exc:
                if not keep_going:
                    raise
                _logger.warning("%s seed %d diverged and is left out of the means: %s", run_dir.name, seed, exc)
                failed += 1
                scores = None
            if scores is not None and rank0:
                shutil.copyfile(seed_dir / "checkpoint.pt", run_dir / ".checkpoint.pt.tmp")
                (run_dir / ".checkpoint.pt.tmp").replace(run_dir / "checkpoint.pt")
        if scores is not None:
            per_seed[str(seed)] = scores
        if after_seed is not None:
            after_seed(seed)
    if not rank0:
        return {}
    metrics = summarize(per_seed, cfg.eval.mode)
    metrics["dataset"] = cfg.data.dataset
    if keep_going:
        metrics["n_failed"] = failed
    metrics.update(extra or {})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
