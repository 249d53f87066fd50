"""Behaviour shared by full batch and mini-batch, tested on both so the two cannot drift:
evaluation modes, the non-finite policy, the monitor, TensorBoard scalars, checkpoints,
resume and --compare. (Issue: mini-batch once ignored eval.mode, on_nan and the monitor,
and reported a false mask difference after a resume.)"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fail_forward_from

import graphmae2.trainer as trainer
from graphmae2.batches import build_source
from graphmae2.cli import main
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.experiment import run_seed
from graphmae2.manifest import compare_runs, read_manifest

CPU = torch.device("cpu")
MODES = ("fullbatch", "minibatch")


def overrides(mode, root, **extra):
    """A 600-node synthetic graph; mini-batch: 5 batches of 128 ego-graphs per epoch."""
    items = {"data.mode": mode, "data.root": str(root), "data.synthetic_nodes": 600,
             "data.synthetic_edges": 3000, "train.max_epoch": 2, "train.checkpoint_every": 1,
             "train.monitor_every": 1, "eval.max_epoch": 20, "eval.finetune_max_epoch": 5}
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def config(mode, root, **extra):
    return load_config("synthetic-small.yaml", overrides(mode, root, **extra))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("eval_mode,key", [("linear", "test_acc"), ("finetune", "test_acc"), ("cluster", "nmi")])
def test_every_eval_mode_runs_in_both_data_modes(mode, eval_mode, key, tmp_path, capsys):
    assert main(["--config", "synthetic-small.yaml", "--out", str(tmp_path / "runs"), "--quiet",
                 "--eval", eval_mode, "--set", *overrides(mode, tmp_path, **{"train.max_epoch": 1})]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"{key}: ") and last.endswith(f"({eval_mode})"), last
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    assert metrics["mode"] == eval_mode and f"{key}_mean" in metrics
    if eval_mode == "finetune":  # fine-tuning reports its own epochs, a linear probe does not
        assert "epoch" in metrics["seeds"]["0"] or "best_epoch" in metrics["seeds"]["0"]


@pytest.mark.parametrize("mode", MODES)
def test_on_nan_skip_goes_on_and_stop_raises_in_both_modes(mode, tmp_path, monkeypatch):
    cfg = config(mode, tmp_path, **{"train.on_nan": "skip"})
    data = load_data(cfg.data)
    source = build_source(cfg, data, CPU)
    steps = source.steps_per_epoch
    fail_forward_from(monkeypatch, steps)  # every step of epoch 1 is non-finite
    result = trainer.train_seed(cfg, source, 0, CPU, progress=False)
    assert np.isfinite(result.losses[0]) and np.isnan(result.losses[1])
    # skipped steps leave the parameters as they were after epoch 0: still finite
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    cfg.train.on_nan = "stop"
    monkeypatch.undo()
    fail_forward_from(monkeypatch, steps)
    with pytest.raises(trainer.NonFiniteLossError, match=rf"non-finite loss at epoch 1 step {steps} \(seed 0\)"):
        trainer.train_seed(cfg, source, 0, CPU, tmp_path / "ckpt", progress=False)


def _scalars(seed_dir: Path) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(seed_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.mark.parametrize("mode", MODES)
def test_monitor_scalars_and_checkpoint_are_the_same_in_both_modes(mode, tmp_path):
    cfg = config(mode, tmp_path)
    run = run_seed(cfg, load_data(cfg.data), 0, CPU, tmp_path / "seed-0", progress=False)
    assert [m["epoch"] for m in run.scores["monitor"]] == [0, 1]
    assert {"eff_rank_online", "teacher_eff_rank", "std"} <= set(run.scores["monitor"][0])
    assert json.loads((tmp_path / "seed-0" / "result.json").read_text())["monitor"] == run.scores["monitor"]
    state = torch.load(tmp_path / "seed-0" / "checkpoint.pt", weights_only=True)
    assert [m["epoch"] for m in state["monitor"]] == [0, 1]
    tags = _scalars(tmp_path / "seed-0")
    assert {"loss/total", "loss/rec", "loss/latent", "lr", "ema/momentum", "monitor/teacher_eff_rank",
            "eval/test_acc", "eval/val_acc"} <= tags


@pytest.mark.parametrize("mode", MODES)
def test_resume_after_a_crash_compares_identical_in_both_modes(mode, tmp_path, monkeypatch):
    """Killed in epoch 1 and resumed, the run's manifest equals an uninterrupted run's:
    same first-mask digest (taken from the streams, not from the first batch this
    process ran), loss trace, parameters and embeddings."""
    cfg = config(mode, tmp_path, **{"train.monitor_every": 0})
    data = load_data(cfg.data)
    source = build_source(cfg, data, CPU)
    full, crash = tmp_path / "full", tmp_path / "crash"
    trainer.train_seed(cfg, source, 0, CPU, full, progress=False)
    mid_epoch_1 = source.steps_per_epoch + source.steps_per_epoch // 2  # full batch: its one step
    fail_forward_from(monkeypatch, mid_epoch_1, KeyboardInterrupt("simulated crash"))
    with pytest.raises(KeyboardInterrupt):
        trainer.train_seed(cfg, source, 0, CPU, crash, progress=False)
    assert torch.load(crash / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    trainer.train_seed(cfg, source, 0, CPU, crash, resume=True, progress=False)
    assert compare_runs(read_manifest(full), read_manifest(crash)) == []


def test_minibatch_source_ranks_ego_graphs_as_data_ppr_rank_says(tmp_path, monkeypatch):
    import graphmae2.sampling as sampling

    seen = []
    real = sampling.ego_graphs

    def spy(*args, **kwargs):
        seen.append(kwargs.get("rank"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "ego_graphs", spy)
    cfg = config("minibatch", tmp_path, **{"data.ppr_rank": "degree"})
    build_source(cfg, load_data(cfg.data), CPU)
    assert seen == ["degree"]
