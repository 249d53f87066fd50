"""Issue 19 in the one training loop, full batch and mini-batch: latent targets and the
teacher's DropEdge view train and repeat bitwise; the monitor's target statistics reach
result.json, TensorBoard and the sweep table."""
import json

import pytest
import torch
from conftest import run_torchrun
from test_data_modes import MODES, _scalars, config

import graphmae2.trainer as trainer
from graphmae2.batches import build_source
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.experiment import run_seed
from graphmae2.manifest import state_digests
from graphmae2.monitor import SWEEP_KEYS, TARGET_STAT_KEYS
from graphmae2.sweep import point_row

CPU = torch.device("cpu")


def _train(cfg):
    data = load_data(cfg.data)
    return trainer.train_seed(cfg, build_source(cfg, data, CPU), 0, CPU, progress=False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("extra", [{"model.drop_edge_rate": 0.3}, {"model.latent_target": "standardise"},
                                   {"model.latent_target": "centre"}, {"model.latent_target": "batchnorm"},
                                   {"model.latent_target": "whiten"}])
def test_teacher_options_train_repeat_bitwise_and_take_effect_in_both_modes(mode, extra, tmp_path):
    cfg = config(mode, tmp_path, **{"train.monitor_every": 0, **extra})
    a, b = _train(cfg), _train(cfg)
    assert a.losses == b.losses and state_digests(a.model) == state_digests(b.model)
    assert state_digests(a.teacher.module) == state_digests(b.teacher.module)
    plain = _train(config(mode, tmp_path, **{"train.monitor_every": 0}))
    assert plain.losses != a.losses


def test_drop_edge_draws_two_views_per_step_from_the_dropout_key(tmp_path, monkeypatch):
    cfg = config("minibatch", tmp_path, **{"train.monitor_every": 0, "train.max_epoch": 1,
                                           "model.drop_edge_rate": 0.3})
    keys = []
    real = trainer.edge_views

    def spy(graph, rate, seed, key):
        keys.append(tuple(key))
        return real(graph, rate, seed, key)

    monkeypatch.setattr(trainer, "edge_views", spy)
    source = build_source(cfg, load_data(cfg.data), CPU)
    trainer.train_seed(cfg, source, 0, CPU, progress=False)
    assert keys == [(s, 0) for s in range(source.steps_per_epoch)]        # (step, rank)


@pytest.mark.parametrize("mode", MODES)
def test_target_statistics_reach_result_json_tensorboard_and_the_sweep_row(mode, tmp_path):
    cfg = config(mode, tmp_path)
    run = run_seed(cfg, load_data(cfg.data), 0, CPU, tmp_path / "seed-0", progress=False)
    last = run.scores["monitor"][-1]
    assert set(TARGET_STAT_KEYS) | {"teacher_information", "teacher_eff_rank_centred"} <= set(last)
    saved = json.loads((tmp_path / "seed-0" / "result.json").read_text())
    assert {k: saved[k] for k in SWEEP_KEYS} == {k: last[k] for k in SWEEP_KEYS}
    assert {"monitor/target_eff_rank_centred", "monitor/teacher_information",
            "monitor/pred_cos_to_mean"} <= _scalars(tmp_path / "seed-0")
    metrics = {"n_seeds": 1, **{f"{k}_mean": saved[k] for k in SWEEP_KEYS},
               **{f"{k}_std": 0.0 for k in SWEEP_KEYS}, "val_acc_mean": 0.5, "val_acc_std": 0.0,
               "test_acc_mean": 0.5, "test_acc_std": 0.0}
    row = point_row({"ema.momentum": 0.99}, "linear", metrics)
    assert row["teacher_information_mean"] == saved["teacher_information"]


def test_the_reference_targets_collapse_is_said_once_as_expected_and_standardised_ones_do_not(caplog,
                                                                                               monkeypatch):
    import logging

    from graphmae2.datasets import load_dataset

    cora = load_dataset("cora")
    base = {"model.num_hidden": 64, "model.num_heads": 4, "model.projector_hidden": 32,
            "model.num_remask": 1, "train.max_epoch": 3, "train.monitor_every": 1}
    with caplog.at_level(logging.INFO, logger="graphmae2.trainer"):
        ref = trainer.train_seed(load_config("cora.yaml", [f"{k}={v}" for k, v in base.items()]), cora, 0, CPU,
                                 progress=False)
    said = [r for r in caplog.records if "latent targets" in r.message]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # three checks, one line, not a warning
    assert "as expected with model.latent_target=reference" in said[0].message
    assert ref.monitor[-1]["target_cos_to_mean"] > 0.99 and ref.monitor[-1]["teacher_information"] < 0.01
    caplog.clear()
    std_cfg = load_config("cora.yaml", [f"{k}={v}" for k, v in base.items()] + ["model.latent_target=standardise"])
    with caplog.at_level(logging.INFO, logger="graphmae2.trainer"):
        std = trainer.train_seed(std_cfg, cora, 0, CPU, progress=False)
    assert not [r for r in caplog.records if "latent targets" in r.message]
    assert std.monitor[-1]["target_eff_rank_centred"] > 0.1 * 64
    # A collapse under another target is a fault: a warning, given once per run.
    caplog.clear()
    monkeypatch.setattr(trainer, "check_target_collapse",
                        lambda stats, dim, epoch: f"latent targets collapsed at {epoch}")
    with caplog.at_level(logging.INFO, logger="graphmae2.trainer"):
        trainer.train_seed(std_cfg, cora, 0, CPU, progress=False)
    said = [r for r in caplog.records if "latent targets" in r.message]
    assert [(r.levelno, r.message) for r in said] == [(logging.WARNING, "latent targets collapsed at 0")]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["centre", "standardise", "whiten"])
def test_torchrun_two_ranks_keep_one_teacher_with_new_targets_and_drop_edge(target, tmp_path):
    """Two gloo ranks, each standardising (or centring) over its own batch's latent nodes
    and drawing its own DropEdge views: the teachers stay identical on both ranks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sets = [f"data.root={tmp_path / 'cache'}", f"model.latent_target={target}", "model.drop_edge_rate=0.2",
            "train.max_epoch=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # One process first, so the ego-graph cache exists before two ranks would both write it.
    warm = subprocess.run([sys.executable, "train.py", "--config", "synthetic-small.yaml", "--quiet",
                           "--out", str(tmp_path / "one"), "--set", *sets],
                          cwd=root, capture_output=True, text=True, env=env, timeout=600)
    assert warm.returncode == 0, warm.stderr[-2000:]
    run_torchrun(["train.py", "--config", "synthetic-small.yaml", "--quiet", "--out", str(tmp_path / "two"),
                  "--set", *sets], cwd=root, env=env)
    two = json.loads(next((tmp_path / "two").glob("*/seed-0/manifest.json")).read_text())
    assert two["world_size"] == 2 and len(set(two["teacher_digest_by_rank"])) == 1
