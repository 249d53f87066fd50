"""One experiment: a config run over its seeds, into one run directory.

``<out>/<dataset>-<timestamp>/`` holds ``config.yaml`` (fully resolved),
``metrics.json`` (per seed and mean/std), ``checkpoint.pt`` (the last seed's final
model) and one ``seed-<s>/`` directory per seed with its checkpoint, ``manifest.json``,
``result.json`` and TensorBoard events.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from .config import Config, to_yaml
from .datasets import NodeDataset, feature_matrix, load_data
from .distributed import is_rank0
from .evaluation import cluster, finetune, linear_probe
from .trainer import embed, pretrain

_logger = logging.getLogger(__name__)

#: The metric each evaluation mode reports on the final line.
HEADLINE = {"linear": "test_acc", "finetune": "test_acc", "cluster": "nmi"}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use cpu or auto")
    return dev


def new_run_dir(out: Path, dataset: str, force: bool = False) -> Path:
    """A fresh ``<out>/<dataset>-<timestamp>``; an existing one needs ``force``."""
    run_dir = Path(out) / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists():
        if not force:
            raise FileExistsError(f"run directory {run_dir} already exists; pass --force to overwrite it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


def evaluate(cfg: Config, model: torch.nn.Module, data: NodeDataset, seed: int,
             device: torch.device) -> Dict[str, float]:
    """Evaluate the pre-trained encoder with ``cfg.eval.mode``."""
    e = cfg.eval
    if e.mode == "finetune":
        return finetune(model.encoder, data.graph.to(device), data.x.to(device), data.y.to(device),
                        data.train_mask, data.val_mask, data.test_mask, lr=e.finetune_lr,
                        weight_decay=e.finetune_weight_decay, max_epoch=e.finetune_max_epoch,
                        patience=e.finetune_patience, seed=seed).as_dict()
    emb = embed(model, data, device)
    if e.mode == "cluster":
        return cluster(emb, data.y, data.num_classes, seed=seed, n_init=e.cluster_n_init)
    return probe(cfg, emb, data, seed)


def probe(cfg: Config, emb: torch.Tensor, data: NodeDataset, seed: int) -> Dict[str, float]:
    """Linear probe with ``eval.weight_decay``, or, when ``eval.weight_decay_grid`` is set,
    the grid value with the best validation accuracy (the first on ties): the test split
    never influences the choice. The weight decay used is reported as ``probe_weight_decay``."""
    e = cfg.eval
    best = None
    for wd in e.weight_decay_grid or [e.weight_decay]:
        result = linear_probe(emb, data.y, data.train_mask, data.val_mask, data.test_mask, lr=e.lr,
                              weight_decay=wd, max_epoch=e.max_epoch, seed=seed, ties=e.ties).as_dict()
        result["probe_weight_decay"] = wd
        if best is None or result["val_acc"] > best["val_acc"]:
            best = result
    return best


def summarize(per_seed: Dict[str, Dict[str, Any]], mode: str) -> Dict[str, Any]:
    """Mean and population std (ddof=0) over seeds of every numeric metric."""
    out: Dict[str, Any] = {"mode": mode, "seeds": per_seed, "n_seeds": len(per_seed)}
    keys = sorted({k for r in per_seed.values() for k, v in r.items() if isinstance(v, (int, float))})
    for k in keys:
        vals = np.array([r[k] for r in per_seed.values() if k in r], dtype=float)
        out[f"{k}_mean"] = float(vals.mean())
        out[f"{k}_std"] = float(vals.std())
    return out


def headline(metrics: Dict[str, Any]) -> str:
    """The final line: ``test_acc: 0.8450 ± 0.0060 over 5 seeds (linear)``."""
    key = HEADLINE[metrics["mode"]]
    n = metrics["n_seeds"]
    return (f"{key}: {metrics[f'{key}_mean']:.4f} ± {metrics[f'{key}_std']:.4f} "
            f"over {n} seed{'s' if n != 1 else ''} ({metrics['mode']})")


def _ego_graphs(cfg: Config, data: NodeDataset):  # noqa: ANN202
    from .sampling import ego_graphs

    cache = Path(cfg.data.root or Path.home() / ".cache" / "graphmae2") / "ego"
    return ego_graphs(data.graph, k=cfg.data.ego_k, alpha=cfg.data.ppr_alpha, eps=cfg.data.ppr_eps,
                      workers=cfg.data.ppr_workers, cache_dir=cache)


def run_experiment(cfg: Config, run_dir: Path, device: torch.device, data: Optional[NodeDataset] = None,
                   resume: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Pre-train and evaluate every seed of ``cfg`` into ``run_dir``; returns metrics.

    ``data`` is what :func:`~graphmae2.datasets.load_data` returns (features already
    scaled); by default it is loaded from ``cfg.data``.

    ``resume`` skips seeds that have a ``result.json`` and continues the others from
    their checkpoints.
    """
    from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    if data is None:
        data = load_data(cfg.data)
    minibatch = cfg.data.mode == "minibatch"
    egos = _ego_graphs(cfg, data) if minibatch else None
    features = feature_matrix(cfg.data, data) if minibatch else None
    rank0 = is_rank0()
    per_seed: Dict[str, Dict[str, Any]] = {}
    for seed in cfg.train.seeds:
        seed_dir = run_dir / f"seed-{seed}"
        done = seed_dir / "result.json"
        if resume and done.exists():
            per_seed[str(seed)] = json.loads(done.read_text())
            _logger.info("seed %d already finished, skipped", seed)
            continue
        seed_dir.mkdir(exist_ok=True)
        writer = SummaryWriter(str(seed_dir)) if rank0 else None
        try:
            if minibatch:
                from .minibatch import embed_minibatch, pretrain_minibatch

                result = pretrain_minibatch(cfg, data.graph, features, egos, seed, device,
                                            seed_dir, resume=resume, progress=progress, writer=writer)
            else:
                result = pretrain(cfg, data, seed, device, seed_dir, resume=resume, progress=progress,
                                  writer=writer)
            if not rank0:
                continue
            tic = time.perf_counter()
            if minibatch:
                emb = embed_minibatch(result.model, data.graph, features, egos, device)
                scores = probe(cfg, emb, data, seed)
            else:
                scores = evaluate(cfg, result.model, data, seed, device)
            for k, v in scores.items():
                if k.endswith("acc") or k in ("nmi", "ari"):
                    writer.add_scalar(f"eval/{k}", v, cfg.train.max_epoch)
        finally:
            if writer is not None:
                writer.close()
        scores.update(epochs=result.epochs, seconds=result.seconds,
                      eval_seconds=time.perf_counter() - tic, final_loss=result.losses[-1],
                      monitor=result.monitor)
        done.write_text(json.dumps(scores, indent=1))
        per_seed[str(seed)] = scores
        _logger.info("seed %d: %s", seed, ", ".join(f"{k}={v:.4f}" for k, v in scores.items()
                                                   if isinstance(v, float)))
        shutil.copyfile(seed_dir / "checkpoint.pt", run_dir / ".checkpoint.pt.tmp")
        (run_dir / ".checkpoint.pt.tmp").replace(run_dir / "checkpoint.pt")
    if not rank0:
        return {}
    metrics = summarize(per_seed, cfg.eval.mode)
    metrics["dataset"] = cfg.data.dataset
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
