"""Runs: one seed (:func:`run_seed`), and a config over its seeds (:func:`run_experiment`,
what the CLI, sweeps and :func:`graphmae2.pretrain` all call) into one run directory.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor

from .atomic import atomic_copy
from .batches import BatchSource, build_source
from .config import Config, to_yaml
from .datasets import NodeDataset, load_data
from .distributed import is_rank0
from .ema import EMATeacher
from .evaluation import evaluate
from .layers import eval_mode
from .monitor import final_stats
from .pretrained import PretrainedEncoder
from .results import summarize
from .trainer import NonFiniteLossError, SeedRun, train_seed

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
class Pretrained:
    """A config run over its seeds: what :func:`run_experiment` (the CLI) and
    :func:`graphmae2.pretrain` return. ``encoder``, ``teacher`` and ``losses`` are the last
    seed's (as the run-level ``checkpoint.pt`` is).

    Attributes:
        config: the fully resolved config the seeds ran with.
        data: the dataset trained on (features scaled by ``data.feature_norm``).
        seeds: one :class:`~graphmae2.trainer.SeedRun` per seed trained by this call, in
            order (seeds a resumed run skipped have scores in ``summary`` only).
        summary: mean and std over seeds of every score and the per-seed scores, as
            ``metrics.json``.
        note: why nothing was evaluated (``None`` when something was).
        run_dir: the run directory, when one was written.
    """

    config: Config
    data: NodeDataset
    seeds: List[SeedRun] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)
    note: Optional[str] = None
    run_dir: Optional[Path] = None

    @property
    def metrics(self) -> Optional[Dict[str, Any]]:
        """``summary``, or ``None`` when the dataset has no labels and nothing was evaluated."""
        return None if self.note else self.summary

    @property
    def evaluated(self) -> bool:
        return self.note is None

    @property
    def encoder(self) -> PretrainedEncoder:
        return self.seeds[-1].encoder

    @property
    def teacher(self) -> EMATeacher:
        return self.seeds[-1].teacher

    @property
    def losses(self) -> List[float]:
        return self.seeds[-1].losses

    @torch.no_grad()
    def embed(self) -> Tensor:
        """Embeddings of every training node from :attr:`encoder`, on the CPU: the graph and
        (already scaled) features it trained on, so no second scaling. One full-graph
        forward, also in ``data.mode: minibatch`` (whose probe embeds ego-graph by ego-graph)."""
        inner = self.encoder.encoder
        device = next(inner.parameters()).device
        with eval_mode(inner):
            return inner(self.data.graph.to(device), self.data.x.to(device)).cpu()


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
        run = train_seed(cfg, source, seed, device, seed_dir, resume=resume, progress=progress, writer=writer)
        if source.rank != 0:
            return run
        tic = time.perf_counter()
        emb = run.embeddings if run.embeddings is not None else source.embeddings(run.model)
        run.embeddings = None  # held only until evaluated: [num_nodes, hidden] on a large graph
        scores = evaluate(cfg.eval, data, seed, emb, encoder=run.model.encoder, device=device)
        if writer is not None:
            for k, v in scores.items():
                if k.endswith("acc") or k in ("nmi", "ari"):
                    writer.add_scalar(f"eval/{k}", v, cfg.train.max_epoch)
    finally:
        if writer is not None:
            writer.close()
    scores.update(epochs=run.epochs, seconds=run.seconds, eval_seconds=time.perf_counter() - tic,
                  final_loss=run.losses[-1], **final_stats(run.monitor), monitor=run.monitor)
    if seed_dir is not None:
        (Path(seed_dir) / RESULT_FILE).write_text(json.dumps(scores, indent=1))
    _logger.info("seed %d: %s", seed, ", ".join(f"{k}={v:.4f}" for k, v in scores.items()
                                               if isinstance(v, float)))
    run.scores = scores
    return run


def run_experiment(cfg: Config, run_dir: Optional[Path], device: torch.device,
                   data: Optional[NodeDataset] = None, resume: bool = False, progress: bool = True,
                   keep_going: bool = False, after_seed: Optional[Callable[[int], None]] = None,
                   extra: Optional[Dict[str, Any]] = None) -> Pretrained:
    """Run every seed of ``cfg``: the one run function of the CLI, of sweeps and of
    :func:`graphmae2.pretrain`.

    Args:
        run_dir: where ``config.yaml``, ``seed-<s>/``, ``checkpoint.pt`` and
            ``metrics.json`` go; ``None`` writes nothing.
        data: what :func:`~graphmae2.datasets.load_data` returns (features already
            scaled); by default it is loaded from ``cfg.data``.
        resume: skip finished seeds and continue the others from their checkpoints.
        keep_going: a seed that stops on a non-finite loss is logged, counted in
            ``n_failed`` and left out of the means, instead of ending the run.
        after_seed: called with each seed once it is done (finished, skipped or failed).
        extra: entries added to ``metrics.json`` (a sweep's point).
    """
    rank0 = is_rank0()
    writes = run_dir is not None and rank0
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if writes:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    if data is None:
        data = load_data(cfg.data)
    result = Pretrained(config=cfg, data=data, run_dir=run_dir)
    source = build_source(cfg, data, device)  # ego-graphs once per experiment, not per seed
    per_seed: Dict[str, Dict[str, Any]] = {}
    failed = 0
    for seed in cfg.train.seeds:
        seed_dir = run_dir / f"seed-{seed}" if run_dir is not None else None
        scores = finished_result(seed_dir) if resume and seed_dir is not None else None
        if scores is not None:
            _logger.info("%s seed %d already finished, skipped", run_dir.name, seed)
        else:
            try:
                run = run_seed(cfg, data, seed, device, seed_dir, resume, progress, source)
                result.seeds.append(run)
                scores = run.scores
            except NonFiniteLossError as exc:
                if not keep_going:
                    raise
                _logger.warning("%sseed %d diverged and is left out of the means: %s",
                                f"{run_dir.name} " if run_dir is not None else "", seed, exc)
                failed += 1
                scores = None
            if scores is not None and writes:
                atomic_copy(seed_dir / "checkpoint.pt", run_dir / "checkpoint.pt")
        if scores is not None:
            per_seed[str(seed)] = scores
        if after_seed is not None:
            after_seed(seed)
    if not rank0:
        return result
    result.summary = summarize(per_seed, cfg.eval.mode)
    result.summary["dataset"] = cfg.data.dataset
    if data.why_not_evaluated is not None:
        result.note = f"{data.why_not_evaluated}: pre-trained only, eval.mode={cfg.eval.mode} skipped"
        _logger.info(result.note)
        result.summary["note"] = result.note
    if keep_going:
        result.summary["n_failed"] = failed
    result.summary.update(extra or {})
    if writes:
        (run_dir / "metrics.json").write_text(json.dumps(result.summary, indent=1))
    return result
