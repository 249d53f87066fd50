"""Latent targets (``model.latent_target``): formulas, the constant-target floor, state, repeatability."""
import pytest
import torch
from conftest import tiny_overrides
from torch import nn

from graphmae2.config import load_config
from graphmae2.ema import EMATeacher
from graphmae2.manifest import state_digests
from graphmae2.masking import draw_masks
from graphmae2.model import STANDARDISE_EPS, standardise, whiten
from graphmae2.trainer import build_model, train_seed

CPU = torch.device("cpu")


def small_cfg(**extra):
    return load_config(None, tiny_overrides(**extra))


def _model(cora, target, **extra):
    cfg = small_cfg(**{"model.latent_target": target, **extra})
    model = build_model(cfg, cora.num_features, 0)
    return cfg, model, EMATeacher(model.ema_source(), cfg.ema)


def test_standardise_matches_closed_form_and_maps_constant_columns_to_zero():
    z = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)) * 3 + 1
    z[:, 2] = 0.1                                                         # a constant column
    mu, var = z.mean(0), z.var(0, correction=0)
    expected = (z - mu) / torch.sqrt(var + STANDARDISE_EPS)
    out = standardise(z)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[:, 2], torch.zeros(50))                        # exactly, not 1e-8


def test_whiten_decorrelates_the_standardised_target_with_the_shrunk_correlation():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(400, 8, generator=gen) @ torch.randn(8, 8, generator=gen) + 2.0  # correlated columns
    s = standardise(z).double()
    corr = s.t() @ s / 400
    full = whiten(z, 0.0).double()
    torch.testing.assert_close(full.t() @ full / 400, torch.eye(8, dtype=torch.float64), atol=1e-4, rtol=0)
    shrunk = whiten(z, 0.3).double()
    factor = torch.linalg.cholesky(0.7 * corr + 0.3 * torch.eye(8, dtype=torch.float64))
    torch.testing.assert_close(shrunk, s @ torch.linalg.inv(factor).t(), atol=1e-4, rtol=0)
    torch.testing.assert_close(whiten(z, 1.0), standardise(z), atol=1e-6, rtol=0)  # alpha = 1: standardise
    with torch.autocast("cpu", dtype=torch.bfloat16):                     # bf16 training rounds nothing here
        assert torch.equal(whiten(z, 0.3), whiten(z, 0.3)) and whiten(z, 0.3).dtype == torch.float32
    assert torch.equal(whiten(z, 0.3), whiten(z, 0.3))


def test_whiten_without_shrinkage_refuses_fewer_nodes_than_dimensions_in_one_line():
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"over 5 latent nodes is singular.*whiten_shrinkage=0.0"):
        whiten(z, 0.0)
    assert torch.isfinite(whiten(z, 0.01)).all()                          # the default shrinkage copes


def _fit_to_constant_targets(model, steps=30):
    """Adam on the online rows to minimise the latent loss towards one shared target."""
    gen = torch.Generator().manual_seed(1)
    online = torch.randn(40, model.out_dim, generator=gen).requires_grad_(True)
    target = torch.randn(1, model.out_dim, generator=gen).expand(40, -1)   # every node: one target
    opt = torch.optim.Adam([online, *model.projector.parameters(), *model.predictor.parameters()], lr=0.05)
    losses = []
    for _ in range(steps):
        loss = model.latent_loss(online, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_constant_targets_cannot_give_a_latent_loss_below_one_when_standardised(cora):
    _, ref, _ = _model(cora, "reference")
    assert min(_fit_to_constant_targets(ref)) < 0.5                       # reference: easily matched
    _, std, _ = _model(cora, "standardise")
    losses = _fit_to_constant_targets(std)
    assert losses == [1.0] * len(losses)                                  # exactly 1, no gradient
    online = torch.randn(40, std.out_dim, requires_grad=True)
    std.latent_loss(online, torch.full((40, std.out_dim), 0.3)).backward()
    assert torch.count_nonzero(online.grad) == 0
    _, white, _ = _model(cora, "whiten")
    assert _fit_to_constant_targets(white) == [1.0] * 30                  # whiten too: the target becomes 0


def test_reference_target_keeps_todays_modules_and_state():
    cfg = small_cfg()
    assert cfg.model.latent_target == "reference"
    model = build_model(cfg, 7, 0)
    keys = [k for k in model.state_dict() if k.startswith(("projector", "predictor")) or "centre" in k]
    assert keys == ["projector.0.weight", "projector.0.bias", "projector.1.weight",
                    "projector.2.weight", "projector.2.bias", "predictor.0.weight",
                    "predictor.1.weight", "predictor.1.bias"]
    assert model.latent_centre is None


def test_batchnorm_projector_normalises_with_the_latent_nodes_statistics_in_eval_mode_too(cora):
    _, model, teacher = _model(cora, "batchnorm")
    bn = model.projector[1]
    assert isinstance(bn, nn.BatchNorm1d) and not bn.track_running_stats
    assert not [n for n, _ in model.named_buffers() if n.startswith("projector")]  # nothing for the EMA
    seen = []
    teacher.module.projector[1].register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    rows = torch.arange(0, 300)
    teacher.targets(cora.graph, cora.x, rows)                             # the teacher is in eval mode
    h, out = seen[0]                                                      # (300, projector_hidden) each
    expected = (h - h.mean(0)) / torch.sqrt(h.var(0, correction=0) + bn.eps)  # weight 1, bias 0 at init
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_centre_is_subtracted_and_moves_towards_the_mean_target_after_a_training_forward(cora):
    cfg, model, teacher = _model(cora, "centre", **{"model.centre_momentum": 0.75})
    assert torch.equal(model.latent_centre, torch.zeros(model.out_dim))
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    model.train()
    model(cora.graph, cora.x, teacher, mask, remasks)
    rows = mask.keep_nodes                                                # latent_nodes: unmasked
    target = teacher.targets(cora.graph, cora.x, rows)
    torch.testing.assert_close(model.latent_centre, 0.25 * target.mean(0))
    online = torch.randn(rows.numel(), model.out_dim)
    _, shifted = model.latent_pair(online, target)
    torch.testing.assert_close(shifted, target - model.latent_centre)
    before = model.latent_centre.clone()
    model.eval()
    model(cora.graph, cora.x, teacher, mask, remasks)                     # evaluation: no update
    assert torch.equal(model.latent_centre, before)
    assert "latent_centre" in model.state_dict()                          # checkpointed with the model


def test_latent_pair_standardises_over_the_given_latent_nodes_only(cora):
    cfg, model, teacher = _model(cora, "standardise")
    centres = torch.tensor([3, 10, 11, 500, 900, 1200])                   # a mini-batch's ego centres
    online = model.encoder(cora.graph, cora.x, rows=centres)
    pred, target = model.latent_pair(online, teacher.targets(cora.graph, cora.x, centres))
    for z in (pred, target):
        assert z.shape == (6, model.out_dim)
        torch.testing.assert_close(z.mean(0), torch.zeros(model.out_dim), atol=1e-5, rtol=0)
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    out = model(cora.graph, cora.x, teacher, mask, remasks, latent_nodes=centres)
    assert torch.isfinite(out["latent"]) and 0 < out["latent"].item() < 2


@pytest.mark.parametrize("target", ["standardise", "batchnorm", "centre", "whiten"])
def test_every_latent_target_trains_and_repeats_bitwise(cora, target):
    cfg = small_cfg(**{"model.latent_target": target, "train.max_epoch": 2})
    a = train_seed(cfg, cora, 0, CPU, progress=False)
    b = train_seed(cfg, cora, 0, CPU, progress=False)
    assert all(torch.isfinite(torch.tensor(a.losses)))
    assert a.losses == b.losses
    assert state_digests(a.model) == state_digests(b.model)
    ref = train_seed(small_cfg(**{"train.max_epoch": 2}), cora, 0, CPU, progress=False)
    assert ref.losses[1] != a.losses[1]                                   # the option takes effect
