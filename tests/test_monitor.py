"""Collapse monitor: effective rank, embedding std, parameter cosine and the warning line."""
import copy
import math

import pytest
import torch
from torch import nn

from graphmae2.ema import EMATeacher
from graphmae2.monitor import (
    RANK_FRACTION,
    STD_THRESHOLD,
    TARGET_COSINE,
    TARGET_RANK_FRACTION,
    TARGET_STAT_KEYS,
    centred_effective_rank,
    check_collapse,
    check_target_collapse,
    collapse_stats,
    cosine_to_mean,
    effective_rank,
    embedding_std,
    latent_stats,
    parameter_cosine,
    std_threshold,
    target_stats,
    teacher_information,
)


def _gaussian(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_gaussian(n, k, seed).double())
    return q                                                              # (n, k), q^T q = I


@pytest.mark.parametrize("k", [1, 3, 8])
def test_effective_rank_of_k_equal_singular_values_is_k(k):
    z = 2.5 * _orthonormal(60, k, 1) @ _orthonormal(16, k, 2).T          # (60, 16), rank k
    assert effective_rank(z) == pytest.approx(k, rel=1e-9)


def test_effective_rank_edge_cases():
    assert effective_rank(torch.ones(10, 4)) == pytest.approx(1.0)        # constant rows: rank one
    assert effective_rank(torch.zeros(10, 4)) == 0.0
    assert 1.0 < effective_rank(torch.diag(torch.tensor([4.0, 1.0, 1.0]))) < 3.0
    with pytest.raises(ValueError, match=r"expected a non-empty \(num_nodes, dim\) matrix, got shape \(5,\)"):
        effective_rank(torch.ones(5))


def test_embedding_std_is_zero_when_collapsed_and_about_inverse_sqrt_dim_when_random():
    d = 64
    assert embedding_std(torch.full((100, d), 3.0)) == pytest.approx(0.0, abs=1e-12)
    assert embedding_std(_gaussian(2000, d)) == pytest.approx(1 / math.sqrt(d), rel=0.05)
    # The std is of the directions, not the magnitudes.
    assert embedding_std(_gaussian(2000, d) * 100) == pytest.approx(embedding_std(_gaussian(2000, d)))


def test_parameter_cosine_of_module_with_itself_is_one_and_scale_invariant():
    net = nn.Sequential(nn.Linear(5, 4), nn.PReLU(), nn.Linear(4, 3))
    assert parameter_cosine(net, net) == pytest.approx(1.0)
    other = copy.deepcopy(net)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-3.0)
    assert parameter_cosine(net, other) == pytest.approx(-1.0)


def test_parameter_cosine_refuses_modules_with_different_parameters():
    with pytest.raises(ValueError, match=r"differ in parameters \['1.bias', '1.weight'\]"):
        parameter_cosine(nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3)))


def test_collapse_stats_compares_student_with_its_ema_teacher():
    student = nn.Sequential(nn.Linear(5, 8), nn.PReLU(), nn.Linear(8, 8))
    teacher = EMATeacher(student)
    stats = collapse_stats(_gaussian(50, 8), _gaussian(50, 8, seed=1), student, teacher.module)
    assert set(stats) == {"std", "eff_rank_online", "teacher_eff_rank", "param_cosine",
                          "teacher_eff_rank_centred", "teacher_cos_to_mean"}
    assert stats["param_cosine"] == pytest.approx(1.0)                    # a fresh copy
    assert all(isinstance(v, float) for v in stats.values())


def test_check_collapse_warns_for_constant_embeddings_naming_epoch_and_knobs():
    d = 32
    net = nn.Linear(4, d)
    z = torch.ones(200, d)
    warning = check_collapse(collapse_stats(z, z, net, net), dim=d, epoch=7)
    assert warning is not None and "\n" not in warning
    assert "collapse at epoch 7" in warning
    assert "embedding std 0.0000" in warning and "effective rank 1.00 of 32" in warning
    for knob in ("model.mask_rate", "model.remask_rate", "model.lam", "ema.momentum"):
        assert knob in warning


def test_check_collapse_is_silent_for_random_gaussian_embeddings():
    d = 64
    net = nn.Linear(4, d)
    z = _gaussian(500, d)
    assert check_collapse(collapse_stats(z, z, net, net), dim=d, epoch=3) is None


def test_check_collapse_flags_low_effective_rank_alone():
    d = 400                                                               # rank floor 4 > 3
    stats = {"std": 1.0, "eff_rank_online": 3.0, "teacher_eff_rank": 3.0, "param_cosine": 1.0}
    assert RANK_FRACTION * d == 4.0
    assert "effective rank 3.00 of 400 (warn below 4.00)" in check_collapse(stats, dim=d, epoch=1)


def test_std_threshold_scales_with_inverse_sqrt_dim():
    assert std_threshold(64) == pytest.approx(STD_THRESHOLD / 8)
    assert std_threshold(256) == pytest.approx(std_threshold(64) / 2)


def test_check_collapse_refuses_bad_arguments():
    with pytest.raises(ValueError, match="stats lack teacher_eff_rank, param_cosine"):
        check_collapse({"std": 1.0, "eff_rank_online": 5.0}, dim=8, epoch=0)
    with pytest.raises(ValueError, match="dim=0 must be >= 1"):
        check_collapse({}, dim=0, epoch=0)


def test_centred_rank_and_cosine_to_mean_see_through_a_shared_offset():
    g = _gaussian(300, 5, 3).double()
    rows, _ = torch.linalg.qr(g - g.mean(0))                              # orthonormal, zero column means
    noise = 0.01 * rows @ _orthonormal(16, 5, 4).T                        # 5 equal centred directions
    offset = torch.full((300, 16), 1.0, dtype=torch.float64)
    z = offset + noise                                                    # (300, 16)
    assert effective_rank(z) < 1.1                                        # the offset hides them
    assert centred_effective_rank(noise) == pytest.approx(5.0, rel=1e-6)
    assert centred_effective_rank(z) == pytest.approx(centred_effective_rank(noise), rel=1e-6)
    assert cosine_to_mean(z) > 0.999
    assert centred_effective_rank(offset) == 0.0 and cosine_to_mean(offset) == pytest.approx(1.0)
    assert abs(cosine_to_mean(_gaussian(2000, 16))) < 0.1


def test_target_stats_and_warning_on_planted_near_constant_targets():
    d = 64
    target = 1.0 + 1e-3 * _gaussian(500, d)                               # one direction + noise
    stats = target_stats(_gaussian(500, d, seed=1), target)
    assert set(stats) == set(TARGET_STAT_KEYS)
    assert stats["target_cos_to_mean"] > TARGET_COSINE and stats["pred_cos_to_mean"] < 0.2
    assert stats["target_eff_rank_centred"] > TARGET_RANK_FRACTION * d    # rank alone would not flag it
    warning = check_target_collapse(stats, dim=d, epoch=4)
    assert warning is not None and "\n" not in warning
    assert "latent targets collapsed at epoch 4" in warning and f"(warn above {TARGET_COSINE})" in warning
    for knob in ("model.latent_target=standardise", "ema.momentum"):
        assert knob in warning
    low_rank = {**stats, "target_cos_to_mean": 0.0, "target_eff_rank_centred": 0.5}
    assert "centred effective rank 0.50 of 64 (warn below 0.64)" in check_target_collapse(low_rank, d, 1)
    healthy = target_stats(_gaussian(500, d, seed=1), _gaussian(500, d, seed=2))
    assert check_target_collapse(healthy, dim=d, epoch=4) is None


def test_check_target_collapse_refuses_bad_arguments():
    with pytest.raises(ValueError, match="stats lack target_eff_rank_centred, target_cos_to_mean"):
        check_target_collapse({"target_eff_rank": 1.0}, dim=8, epoch=0)
    with pytest.raises(ValueError, match="dim=0 must be >= 1"):
        check_target_collapse({}, dim=0, epoch=0)
    with pytest.raises(ValueError, match=r"pred \(3, 4\) and target \(3, 5\) must have the same shape"):
        target_stats(torch.ones(3, 4), torch.ones(3, 5))


def _tiny(cora, target="reference"):
    from conftest import tiny_overrides

    from graphmae2.config import load_config
    from graphmae2.trainer import build_model

    cfg = load_config(None, tiny_overrides(**{"model.latent_target": target}))
    model = build_model(cfg, cora.num_features, 0)
    return model, EMATeacher(model.ema_source(), cfg.ema)


def test_teacher_information_is_zero_for_planted_constant_targets_and_warns(cora):
    model, teacher = _tiny(cora)
    with torch.no_grad():
        teacher.module.projector[2].weight.zero_()                        # targets = the bias, every node
    model.eval()
    teacher.module.train()
    stats = latent_stats(model, teacher, cora.graph, cora.x)
    assert stats["teacher_information"] < 1e-6
    assert stats["target_cos_to_mean"] == pytest.approx(1.0)
    assert stats["target_eff_rank_centred"] < TARGET_RANK_FRACTION * model.out_dim
    assert "teacher information 0.0000" in check_target_collapse(stats, model.out_dim, epoch=0)
    assert not model.training and teacher.module.training                 # modes restored


def test_teacher_information_is_positive_for_a_healthy_standardised_teacher(cora):
    model, teacher = _tiny(cora, "standardise")
    model.train()
    rows = torch.arange(0, 2000, 3)
    stats = latent_stats(model, teacher, cora.graph, cora.x, rows)
    assert stats["teacher_information"] == 1.0                            # the mean target standardises to 0
    assert stats["target_eff_rank_centred"] > 0.25 * model.out_dim
    assert check_target_collapse(stats, model.out_dim, epoch=0) is None
    assert model.training and not teacher.module.training
    ref, ref_teacher = _tiny(cora)                                        # the same teacher, reference loss
    info = teacher_information(ref, ref_teacher, cora.graph, cora.x, rows)
    assert 0.0 < info < 1.0
