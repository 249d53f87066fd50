"""GraphMAE2 model and training on Cora with a small budget."""
import pytest
import torch
from conftest import tiny_overrides

from graphmae2.config import load_config
from graphmae2.ema import EMATeacher
from graphmae2.evaluation import linear_probe
from graphmae2.masking import draw_masks
from graphmae2.trainer import build_model, train_seed


def small_cfg(**extra):
    return load_config(None, tiny_overrides(**extra))


def test_teacher_sees_the_unmasked_features(cora):
    cfg = small_cfg()
    model = build_model(cfg, cora.num_features, 0)
    teacher = EMATeacher(model.ema_source())
    seen = []
    teacher.module.encoder.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    model(cora.graph, cora.x, teacher, mask, remasks, sparse_input=False)
    assert len(seen) == 1 and torch.equal(seen[0], cora.x)


@pytest.mark.parametrize("where", ["unmasked", "all"])
def test_latent_loss_is_taken_on_the_configured_nodes(cora, where):
    cfg = small_cfg(**{"model.latent_nodes": where})
    model = build_model(cfg, cora.num_features, 0)
    teacher = EMATeacher(model.ema_source())
    targets = []
    teacher.module.projector.register_forward_hook(lambda m, args, out: targets.append(out))
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    model(cora.graph, cora.x, teacher, mask, remasks)
    expected = cora.num_nodes if where == "all" else mask.keep_nodes.numel()
    assert len(targets) == 1 and targets[0].shape == (expected, cfg.model.num_hidden)


def _loss_and_grads(model, cora, teacher, mask, remasks, **kwargs):
    model.zero_grad(set_to_none=True)
    out = model(cora.graph, cora.x.double(), teacher, mask, remasks, **kwargs)
    out["loss"].backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(a, b, tol=1e-10):
    (out_a, grad_a), (out_b, grad_b) = a, b
    for k in out_b:
        assert torch.allclose(out_a[k], out_b[k], rtol=0, atol=tol), k
    assert grad_a.keys() == grad_b.keys()
    for n in grad_b:
        assert torch.allclose(grad_a[n], grad_b[n], rtol=0, atol=tol * max(1.0, float(grad_b[n].abs().max()))), n


@pytest.mark.parametrize("replace_rate", [0.0, 0.15])
def test_sparse_masked_input_equals_the_plain_path_in_float64(cora, replace_rate):
    """``sparse_masked_input`` (a fast path) against ``masked_input`` (the plain path):
    the same losses and gradients, the token's included."""
    cfg = small_cfg(**{"model.replace_rate": replace_rate, "model.init": "reference"})
    model = build_model(cfg, cora.num_features, 0).double().eval()  # no dropout: paths comparable
    model.fast_decode = False
    teacher = EMATeacher(model.ema_source())
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    _assert_same(_loss_and_grads(model, cora, teacher, mask, remasks, sparse_input=True),
                 _loss_and_grads(model, cora, teacher, mask, remasks, sparse_input=False))


@pytest.mark.parametrize("remask", ["fixed", "random"])
@pytest.mark.parametrize("decoder", ["gat", "gcn"])
@pytest.mark.parametrize("latent", ["kept", "all", "given"])  # given: as mini-batches pass ego centres
def test_fast_decode_equals_the_plain_path_in_float64(cora, remask, decoder, latent):
    """``encode_decode_kept_rows`` (fixed), the shared-projection ``forward_views`` (random,
    GAT) and the rows-first last layer change the work, not the losses or gradients."""
    cfg = small_cfg(**{"model.remask_method": remask, "model.decoder": decoder, "model.init": "reference",
                       "model.latent_nodes": "all" if latent == "all" else "unmasked"})
    model = build_model(cfg, cora.num_features, 0).double().eval()  # no dropout: paths comparable
    teacher = EMATeacher(model.ema_source())
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    latent_nodes = torch.arange(0, cora.num_nodes, 97) if latent == "given" else None
    results = []
    for fast in (True, False):
        model.fast_decode = fast
        results.append(_loss_and_grads(model, cora, teacher, mask, remasks, latent_nodes=latent_nodes))
    _assert_same(*results)


@pytest.mark.parametrize("remask", ["fixed", "random"])
def test_bf16_autocast_loss_is_close_to_fp32(cora, remask):
    """bf16 runs the dense matmuls in bfloat16 (message passing stays float32): the
    loss moves by bfloat16 rounding, not more."""
    from graphmae2.precision import autocast

    cfg = small_cfg(**{"model.remask_method": remask, "train.precision": "bf16"})
    model = build_model(cfg, cora.num_features, 0).eval()
    teacher = EMATeacher(model.ema_source())
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    fp32 = model(cora.graph, cora.x, teacher, mask, remasks, sparse_input=True)
    with autocast(cfg, torch.device("cpu")):
        bf16 = model(cora.graph, cora.x, teacher, mask, remasks, sparse_input=True)
    for k in fp32:
        assert bf16[k].dtype == torch.float32
        assert torch.allclose(bf16[k], fp32[k], rtol=0.02, atol=1e-3), (k, bf16[k], fp32[k])
    bf16["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_fixed_remask_and_no_latent_branch_run(cora):
    cfg = small_cfg(**{"model.remask_method": "fixed", "model.lam": 0})
    model = build_model(cfg, cora.num_features, 0)
    teacher = EMATeacher(model.ema_source())
    out = model(cora.graph, cora.x, teacher, *draw_masks(cfg.model, 0, 0, cora.num_nodes))
    assert float(out["latent"]) == 0.0 and torch.isfinite(out["rec"])
    out["loss"].backward()
    assert model.dec_mask_token.grad is None or float(model.dec_mask_token.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("teacher_dropout", [False, True])
def test_teacher_dropout_sets_the_teachers_mode_during_steps_only(cora, teacher_dropout):
    """``ema.teacher_dropout`` runs the teacher in training mode inside each step (its
    targets see dropout, as the reference's do); the monitor and the returned teacher
    are in eval mode either way."""
    cfg = small_cfg(**{"ema.teacher_dropout": teacher_dropout, "train.max_epoch": 2,
                       "train.monitor_every": 1})
    modes = []
    import graphmae2.model as model_module
    original = model_module.GraphMAE2.forward

    def spy(self, graph, x, teacher, *args, **kwargs):
        modes.append(teacher.module.training)
        return original(self, graph, x, teacher, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_module.GraphMAE2, "forward", spy)
        result = train_seed(cfg, cora, seed=0, device=torch.device("cpu"), progress=False)
    assert modes == [teacher_dropout] * 2
    assert not result.teacher.module.training
    # Dropout in the targets changes the latent loss, so the runs differ from the first step.
    other = train_seed(small_cfg(**{"ema.teacher_dropout": not teacher_dropout, "train.max_epoch": 1}),
                     cora, seed=0, device=torch.device("cpu"), progress=False)
    assert other.losses[0] != result.losses[0]


@pytest.mark.slow
def test_loss_falls_and_probe_beats_random_features(cora):
    """Budget: hidden 64, 40 epochs. The probe on the learned embedding must beat the
    same probe on random Gaussian features of the same width by at least 0.30."""
    cfg = load_config(None, tiny_overrides(**{"model.num_hidden": 64, "model.num_heads": 4,
                                               "train.max_epoch": 40, "train.lr": 0.005,
                                               "eval.max_epoch": 100}))
    result = train_seed(cfg, cora, seed=0, device=torch.device("cpu"), progress=False)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    kwargs = dict(lr=0.01, weight_decay=1e-4, max_epoch=100, seed=0)
    emb = result.model.encode(cora.graph, cora.x)
    learned = linear_probe(emb, cora.y, cora.train_mask, cora.val_mask, cora.test_mask, **kwargs)
    noise = torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))
    chance = linear_probe(noise, cora.y, cora.train_mask, cora.val_mask, cora.test_mask, **kwargs)
    assert learned.test_acc >= chance.test_acc + 0.30, (learned.test_acc, chance.test_acc)
    assert learned.test_acc >= 0.65


def test_collapse_monitor_warns_on_constant_embeddings_and_not_on_a_normal_run(cora, caplog, monkeypatch):
    import logging

    cfg = small_cfg(**{"train.monitor_every": 1, "train.max_epoch": 2})
    with caplog.at_level(logging.WARNING, logger="graphmae2.trainer"):
        normal = train_seed(cfg, cora, 0, torch.device("cpu"), progress=False)
    # The online embeddings are healthy; the reference's latent targets collapse, as
    # expected, which is said once at INFO level (tests/test_teacher_wiring.py).
    assert len(normal.monitor) == 2 and not [r for r in caplog.records if "representation collapse" in r.message]
    assert normal.monitor[-1]["eff_rank_online"] > 1.0

    from graphmae2.model import GraphMAE2

    monkeypatch.setattr(GraphMAE2, "encode", lambda self, graph, x: torch.ones(x.shape[0], self.out_dim))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphmae2.trainer"):
        collapsed = train_seed(cfg, cora, 0, torch.device("cpu"), progress=False)
    warnings = [r.message for r in caplog.records if "representation collapse" in r.message]
    assert warnings and "epoch 0" in warnings[0]
    assert collapsed.monitor[0]["std"] == 0.0


@pytest.mark.parametrize("encoder,decoder", [("gat", "gcn"), ("gat", "mlp"), ("gcn", "linear"), ("gcn", "gat")])
def test_every_encoder_decoder_pair_trains_a_step(cora, encoder, decoder):
    cfg = small_cfg(**{"model.encoder": encoder, "model.decoder": decoder})
    model = build_model(cfg, cora.num_features, 0)
    teacher = EMATeacher(model.ema_source())
    out = model(cora.graph, cora.x, teacher, *draw_masks(cfg.model, 0, 0, cora.num_nodes), sparse_input=True)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.encoder_to_decoder.weight.grad is not None


def test_decoder_with_several_heads_reconstructs_in_feature_space(cora):
    cfg = small_cfg(**{"model.num_out_heads": 2})
    model = build_model(cfg, cora.num_features, 0)
    out = model(cora.graph, cora.x, EMATeacher(model.ema_source()),
                *draw_masks(cfg.model, 0, 0, cora.num_nodes), sparse_input=True)
    assert torch.isfinite(out["loss"])


def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path, monkeypatch, caplog):
    from graphmae2 import precision as trainer

    plain = tmp_path / "cpuinfo"
    plain.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n")
    native = tmp_path / "cpuinfo-bf16"
    native.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    assert trainer.cpu_has_native_bf16(plain) is False
    assert trainer.cpu_has_native_bf16(native) is True
    assert trainer.cpu_has_native_bf16(tmp_path / "missing") is None
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    trainer._warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING"):
        trainer.check_precision(small_cfg(), torch.device("cpu"))
        for _ in range(2):  # once per process, not once per seed
            trainer.check_precision(small_cfg(**{"train.precision": "bf16"}), torch.device("cpu"))
    assert [r.message for r in caplog.records] == [
        "train.precision=bf16 on a CPU without AVX-512 BF16 or AMX is emulated and likely "
        "slower than float32; pass --set train.precision=fp32"]


def test_reference_init_changes_only_the_attention_vectors():
    """The official code starts its tokens at zero and ``encoder_to_decoder`` at torch's
    default on the Planetoid graphs (its ``zero_init``), as graphmae2 always does; only the
    attention vectors' fan differs (per head there)."""
    from graphmae2.trainer import build_model

    over = ["model.num_hidden=512", "model.num_heads=4"]
    ref = build_model(load_config(None, over + ["model.init=reference"]), 2000, seed=0).state_dict()
    default = build_model(load_config(None, over), 2000, seed=0).state_dict()
    differ = sorted(k for k in ref if not torch.equal(ref[k], default[k]))
    assert differ == sorted(k for k in ref if k.endswith(("att_src", "att_dst")))
    assert not ref["enc_mask_token"].any() and not ref["dec_mask_token"].any()
