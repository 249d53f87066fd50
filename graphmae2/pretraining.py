"""Pre-training from Python: ``graphmae2.pretrain(data)`` runs exactly what ``train.py`` runs.

>>> result = graphmae2.pretrain(pyg_data, config="cora.yaml", seeds=[0])  # doctest: +SKIP
>>> z = result.embed()                        # [num_nodes, hidden], the training graph
>>> result.metrics                            # test_acc_mean, ... (None without labels)

Same config schema (defaults, then the YAML file, then ``overrides``), same seeding and
determinism, same collapse monitor, and, when ``out`` is given, the same run directory as
the CLI (``config.yaml``, ``seed-<s>/`` with checkpoint and manifest, ``metrics.json``,
``checkpoint.pt``): each seed goes through :func:`graphmae2.experiment.run_seed`.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from .batches import build_source
from .config import Config, load_config, set_value, to_yaml
from .datasets import NodeDataset, load_data
from .devices import resolve_device
from .ema import EMATeacher
from .experiment import new_run_dir, run_seed
from .pretrained import PretrainedEncoder
from .results import summarize

__all__ = ["Pretrained", "SeedResult", "pretrain"]

_logger = logging.getLogger(__name__)


@dataclass
class SeedResult:
    """One seed: its encoder (eval mode, the type :func:`~graphmae2.load_encoder` returns),
    EMA teacher, per-epoch loss trace, monitor records and evaluation scores (empty
    without labels)."""

    seed: int
    encoder: PretrainedEncoder
    teacher: EMATeacher
    losses: List[float]
    monitor: List[Dict[str, float]]
    scores: Dict[str, Any]


@dataclass
class Pretrained:
    """What :func:`pretrain` returns. ``encoder``, ``teacher`` and ``losses`` are the last
    seed's (as the CLI's run-level ``checkpoint.pt`` is); ``seeds`` holds every seed.

    Attributes:
        config: the fully resolved config the seeds ran with.
        data: the dataset trained on (features scaled by ``data.feature_norm``).
        seeds: one :class:`SeedResult` per seed, in order.
        metrics: mean and std over seeds of every score (as ``metrics.json``), or
            ``None`` when the dataset has no labels and nothing was evaluated.
        note: why there is no evaluation (``None`` when there is one).
        run_dir: the run directory when ``out`` was given.
    """

    config: Config
    data: NodeDataset
    seeds: List[SeedResult] = field(default_factory=list)
    metrics: Optional[Dict[str, Any]] = None
    note: Optional[str] = None
    run_dir: Optional[Path] = None

    @property
    def encoder(self) -> PretrainedEncoder:
        return self.seeds[-1].encoder

    @property
    def teacher(self) -> EMATeacher:
        return self.seeds[-1].teacher

    @property
    def losses(self) -> List[float]:
        return self.seeds[-1].losses

    @property
    def evaluated(self) -> bool:
        return self.metrics is not None

    @torch.no_grad()
    def embed(self) -> Tensor:
        """Embeddings of every training node from :attr:`encoder`, on the CPU: the graph and
        (already scaled) features it trained on, so no second scaling. One full-graph
        forward, also in ``data.mode: minibatch`` (whose probe embeds ego-graph by ego-graph)."""
        inner = self.encoder.encoder
        device = next(inner.parameters()).device
        was_training = inner.training
        inner.eval()
        try:
            return inner(self.data.graph.to(device), self.data.x.to(device)).cpu()
        finally:
            inner.train(was_training)


def _config(config: Union[str, os.PathLike, Config, None], overrides: Sequence[str],
            seeds: Optional[Sequence[int]]) -> Config:
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        if overrides:
            raise ValueError("overrides apply to a config file; set them on the Config object instead")
    else:
        cfg = load_config(config, overrides)
    if seeds is not None:
        set_value(cfg, "train.seeds", list(seeds), source="pretrain(seeds=...)")
    return cfg


def pretrain(data: Any = None, config: Union[str, os.PathLike, Config, None] = "cora.yaml",
             seeds: Optional[Sequence[int]] = None, device: Union[str, torch.device] = "auto",
             out: Union[str, os.PathLike, None] = None, overrides: Sequence[str] = (),
             progress: bool = False, force: bool = False) -> Pretrained:
    """Pre-train GraphMAE2 on ``data`` over ``seeds`` and evaluate it when it has labels.

    Args:
        data: a :class:`~graphmae2.datasets.NodeDataset`, a PyG ``Data``, a DGL graph
            with ``ndata["feat"]``, a ``(graph, x)`` pair, the path of a ``.npz``/``.pt``
            graph file, or ``None`` for the dataset the config names. Objects are made
            undirected with one self-loop per node, as the packaged datasets
            (:func:`~graphmae2.datasets.as_node_dataset`); pass raw features: they are
            scaled by ``data.feature_norm`` here.
        config: a YAML file (``NAME.yaml`` also looks in ``configs/``), a
            :class:`~graphmae2.config.Config`, or ``None`` for the schema defaults.
        seeds: overrides ``train.seeds``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (or a ``torch.device``).
        out: parent of a new run directory ``<out>/<name>-<timestamp>/`` laid out as the
            CLI's (checkpoints, manifests, metrics); nothing is written without it.
        overrides: ``section.key=value`` items, as ``--set``.
        progress: show progress bars.
        force: overwrite an existing run directory.

    Raises:
        ConfigError / ValueError: a bad config value or dataset, in one line, before training.
    """
    cfg = _config(config, overrides, seeds)
    if isinstance(data, (str, os.PathLike)):
        set_value(cfg, "data.dataset", "npz", source="pretrain(data=path)")
        set_value(cfg, "data.path", str(data), source="pretrain(data=path)")
        data = None
    elif data is not None:
        cfg.data.dataset, cfg.data.path = "custom", None  # the graph is not loadable by name
    dataset = load_data(cfg.data, source=data)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    run_dir = None
    if out is not None:
        run_dir = new_run_dir(Path(out), dataset.name, force=force)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    result = Pretrained(config=cfg, data=dataset, run_dir=run_dir)
    source = build_source(cfg, dataset, device)  # ego-graphs once for every seed, as run_experiment
    for seed in cfg.train.seeds:
        seed_dir = run_dir / f"seed-{seed}" if run_dir is not None else None
        run = run_seed(cfg, dataset, seed, device, seed_dir, progress=progress, source=source)
        encoder = PretrainedEncoder(run.pretrained.model.encoder, cfg).eval()
        result.seeds.append(SeedResult(seed, encoder, run.pretrained.teacher, run.pretrained.losses,
                                       run.pretrained.monitor, run.scores))
    summary = summarize({str(r.seed): r.scores for r in result.seeds}, cfg.eval.mode)
    if dataset.has_labels:
        result.metrics = summary
    else:
        result.note = f"dataset {dataset.name!r} has no labels: pre-trained only, eval.mode={cfg.eval.mode} skipped"
        _logger.info(result.note)
    if run_dir is not None:
        summary["dataset"] = cfg.data.dataset
        if result.note:
            summary["note"] = result.note
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=1))
        shutil.copyfile(run_dir / f"seed-{cfg.train.seeds[-1]}" / "checkpoint.pt", run_dir / "checkpoint.pt")
    return result
