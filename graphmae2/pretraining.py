"""Pre-training from Python: ``graphmae2.pretrain(data)`` runs exactly what ``train.py`` runs.

>>> result = graphmae2.pretrain(pyg_data, config="cora.yaml", seeds=[0])  # doctest: +SKIP
>>> z = result.embed()                        # [num_nodes, hidden], the training graph
>>> result.metrics                            # test_acc_mean, ... (None without labels)

Same config schema (defaults, then the YAML file, then ``overrides``), same seeding and
determinism, same collapse monitor, and, when ``out`` is given, the same run directory as
the CLI (``config.yaml``, ``seed-<s>/`` with checkpoint and manifest, ``metrics.json``,
``checkpoint.pt``): both call :func:`graphmae2.experiment.run_experiment`.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from .config import Config, load_config, set_value
from .datasets import KNOWN_DATASETS, load_data
from .devices import resolve_device
from .experiment import Pretrained, new_run_dir, run_experiment

__all__ = ["Pretrained", "pretrain"]


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
            graph file, a known dataset name (``"cora"``, ``"citeseer"``, ``"pubmed"``), or
            ``None`` for the dataset the config names. Labels and a full train/val/test
            split are optional: without them the encoder is pre-trained, not evaluated
            (``result.note`` says why). Objects are made
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
    if isinstance(data, str) and data in KNOWN_DATASETS and not Path(data).exists():
        set_value(cfg, "data.dataset", data, source="pretrain(data=name)")  # "cora": the packaged dataset
        data = None
    if isinstance(data, (str, os.PathLike)):
        set_value(cfg, "data.dataset", "npz", source="pretrain(data=path)")
        set_value(cfg, "data.path", str(data), source="pretrain(data=path)")
        data = None
    elif data is not None:
        cfg.data.dataset, cfg.data.path = "custom", None  # the graph is not loadable by name
    dataset = load_data(cfg.data, source=data)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    run_dir = new_run_dir(Path(out), dataset.name, force=force) if out is not None else None
    return run_experiment(cfg, run_dir, device, data=dataset, progress=progress)
