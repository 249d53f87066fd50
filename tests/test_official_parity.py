"""Parity with the official GraphMAE2 code: our training loop against an independent
plain-PyTorch transcription of the official full-batch step.

The transcription below is written from the paper and from what the official code
(THUDM/GraphMAE2 at bc473e8: ``models/edcoder.py``, ``models/gat.py``,
``main_full_batch.py``) computes, on edge lists, with none of graphmae2's modules: DGL's
``GATConv`` as per-edge scores and a scatter softmax, ``PreModel.mask_attr_prediction``
as the masked encoder input, the latent branch on every node against the EMA teacher, the
re-masked decoding views and their scaled cosine errors, ``ema_update()`` inside the forward
(before backward and the optimizer step), Adam with weight decay and the cosine
``LambdaLR``. It is fed our initial weights and our masks, with dropout off. In float64 the
first step's loss and every gradient agree element-wise to 1e-10; in float32, three steps
through our real training loop agree in loss to 1e-5 and in every gradient to 5e-3 of its
norm (``RTOL`` says why not element-wise), for the shipped Cora recipe and for random
re-masking with an m = 0.996 teacher, under the official teacher timing. This is what
keeps "faithful to the official code" true after later changes.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.masking import draw_masks
from graphmae2.trainer import build_model, train_seed

pytestmark = pytest.mark.slow  # Cora at full width: ~60 s for the module

STEPS = 3
#: float32, per parameter and step: ``|g_ours - g_official| <= RTOL * |g_official|`` (L2
#: norms) and the losses within ``LOSS_ATOL``. Element-wise agreement is not float32's to
#: give here: a masked node whose neighbourhood is all masked has exactly zero activations
#: (zero tokens and biases), its reconstruction is the decoder's bias, and
#: ``F.normalize`` of that zero row divides by 1e-12 (the decoder bias's first gradient is
#: ~5e10 in both codes); the encoder biases' gradients are sums with cancellation that
#: float32 gets to 5.5e-5 only, the official computation as ours (measured against float64);
#: and Adam turns such rounding into full-size steps. Measured worst at steps 0/1/2:
#: 8e-5 / 1e-3 / 1.4e-3 (attention vectors); a one-step teacher lag moves the predictor's
#: gradient by 0.12. The float64 test below is the element-wise one, at 1e-10.
RTOL = 5e-3
LOSS_ATOL = 1e-5
ATOL64 = 1e-10


# ---------------------------------------------------------------- the transcription
def sce(x, y, alpha):
    """The official ``sce_loss``: mean over rows of (1 - cos)^alpha."""
    x, y = F.normalize(x, p=2, dim=-1), F.normalize(y, p=2, dim=-1)
    return (1 - (x * y).sum(-1)).pow(alpha).mean()


def prelu(x, a):
    """``nn.PReLU``: slope ``a`` at and below zero (the official code's activation; zero
    pre-activations are common here: a masked node whose neighbours are all masked)."""
    return torch.where(x > 0, x, a * x)


def gat_layer(p, src, dst, h, heads, act):
    """DGL's GATConv as the official code configures it (no residual, no norm), with
    ``p = (fc [H*D, in], attn_l [1, H, D], attn_r [1, H, D], bias [H*D], prelu or None)``."""
    fc, attn_l, attn_r, bias, slope = p
    n = h.shape[0]
    feat = (h @ fc.t()).view(n, heads, -1)                          # (N, H, D)
    el = (feat * attn_l).sum(-1)                                    # (N, H)
    er = (feat * attn_r).sum(-1)
    e = F.leaky_relu(el[src] + er[dst], 0.2)                        # (E, H), edge src -> dst
    e_max = e.new_zeros(n, heads).scatter_reduce(0, dst[:, None].expand_as(e), e, "amax", include_self=False)
    w = torch.exp(e - e_max[dst])
    a = w / w.new_zeros(n, heads).index_add(0, dst, w)[dst]         # softmax over dst's in-edges
    out = torch.zeros_like(feat).index_add(0, dst, feat[src] * a.unsqueeze(-1))
    out = out.flatten(1) + bias
    return prelu(out, slope) if act else out


def mlp_projector(p, h):
    w1, b1, a, w2, b2 = p
    return prelu(h @ w1.t() + b1, a) @ w2.t() + b2


def official_step(P, T, x, src, dst, mask_nodes, remasks, cfg):
    """The loss of ``PreModel.mask_attr_prediction`` (``targets`` = every node)."""
    heads = cfg.num_heads

    def encoder(E, h):
        h = gat_layer(E[0], src, dst, h, heads, True)
        return gat_layer(E[1], src, dst, h, heads, True)

    use_x = x.clone()
    use_x[mask_nodes] = 0.0
    use_x[mask_nodes] += P["enc_mask_token"]
    enc_rep = encoder(P["encoder"], use_x)
    with torch.no_grad():
        latent_target = mlp_projector(T["projector"], encoder(T["encoder"], x))
    a, w, b = P["predictor"]
    latent_pred = prelu(mlp_projector(P["projector"], enc_rep), a) @ w.t() + b
    loss_latent = sce(latent_pred, latent_target, 1)
    origin_rep = enc_rep @ P["encoder_to_decoder"].t()
    if cfg.remask_method == "fixed":
        views = [(mask_nodes, torch.zeros_like(P["dec_mask_token"]))]
    else:
        views = [(r, P["dec_mask_token"]) for r in remasks]
    loss_rec = 0
    for nodes, token in views:
        rep = origin_rep.clone()
        rep[nodes] = 0
        rep[nodes] += token
        recon = gat_layer(P["decoder"], src, dst, rep, 1, False)
        loss_rec = loss_rec + sce(x[mask_nodes], recon[mask_nodes], cfg.alpha_l)
    return loss_rec + cfg.lam * loss_latent


def official_params(model):
    """Our model's initial weights in the official modules' layouts, as leaf tensors."""
    s = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def gat(prefix, act=True):
        w = s[f"{prefix}.weight"]
        heads, dim = s[f"{prefix}.att_src"].shape
        return [w.t().contiguous(), s[f"{prefix}.att_src"].view(1, heads, dim).clone(),
                s[f"{prefix}.att_dst"].view(1, heads, dim).clone(), s[f"{prefix}.bias"],
                s[f"{prefix}.act.weight"] if act else None]

    P = {"enc_mask_token": s["enc_mask_token"], "dec_mask_token": s["dec_mask_token"],
         "encoder": [gat("encoder.layers.0"), gat("encoder.layers.1")],
         "decoder": gat("decoder.layers.0", act=False),
         "encoder_to_decoder": s["encoder_to_decoder.weight"],
         "projector": [s[f"projector.{k}"] for k in ("0.weight", "0.bias", "1.weight", "2.weight", "2.bias")],
         "predictor": [s[f"predictor.{k}"] for k in ("0.weight", "1.weight", "1.bias")]}
    return P


def teacher_copy(P):
    """The teacher's tensors at step 0: detached copies of the student's encoder and projector."""
    return {"encoder": [[t.detach().clone() if t is not None else None for t in layer] for layer in P["encoder"]],
            "projector": [t.detach().clone() for t in P["projector"]]}


def leaves(tree):
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [t for v in tree for t in leaves(v)]
    return [] if tree is None else [tree]


def map_tree(tree, fn):
    if isinstance(tree, dict):
        return {k: map_tree(v, fn) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [map_tree(v, fn) for v in tree]
    return None if tree is None else fn(tree)


def as_ours(P):
    """Official-layout tensors (or their gradients) under our parameter names."""
    out = {"enc_mask_token": P["enc_mask_token"], "dec_mask_token": P["dec_mask_token"],
           "encoder_to_decoder.weight": P["encoder_to_decoder"]}
    for prefix, layer in [("encoder.layers.0", P["encoder"][0]), ("encoder.layers.1", P["encoder"][1]),
                          ("decoder.layers.0", P["decoder"])]:
        fc, attn_l, attn_r, bias, slope = layer
        out.update({f"{prefix}.weight": None if fc is None else fc.t(), f"{prefix}.att_src": attn_l[0],
                    f"{prefix}.att_dst": attn_r[0], f"{prefix}.bias": bias})
        if slope is not None:
            out[f"{prefix}.act.weight"] = slope
    for k, t in zip(("0.weight", "0.bias", "1.weight", "2.weight", "2.bias"), P["projector"]):
        out[f"projector.{k}"] = t
    for k, t in zip(("0.weight", "1.weight", "1.bias"), P["predictor"]):
        out[f"predictor.{k}"] = t
    return out


def run_official(cfg, data, seed, steps):
    """``steps`` official training steps from our initial weights; per step the loss and
    the gradient of every parameter (our names)."""
    model = build_model(cfg, data.num_features, seed)
    P = official_params(model)
    params = leaves(P)
    for t in params:
        t.requires_grad_(True)
    T = teacher_copy(P)
    opt = torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: (1 + math.cos(e * math.pi / cfg.train.max_epoch)) * 0.5)
    src, dst = data.graph.edges()
    losses, grads = [], []
    for epoch in range(steps):
        mask, remasks = draw_masks(cfg.model, seed, epoch, data.num_nodes)
        loss = official_step(P, T, data.x, src, dst, mask.mask_nodes, remasks, cfg.model)
        with torch.no_grad():  # ema_update() inside forward: before backward and the step
            m = cfg.ema.momentum
            student = leaves(P["encoder"]) + P["projector"]
            for t, s in zip(leaves(T["encoder"]) + T["projector"], student):
                t.mul_(m).add_((1 - m) * s.detach())
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        grads.append(as_ours(map_tree(P, lambda t: torch.zeros_like(t) if t.grad is None else t.grad.clone())))
        opt.step()
        sched.step()
    return losses, grads


# ---------------------------------------------------------------- ours, through the real loop
def run_ours(cfg, data, seed, monkeypatch):
    """Our training loop (``trainer.train_seed``); per step the loss and every gradient, read
    by a hook just before each ``optimizer.step()``."""
    grads = []
    model_ref = {}
    real_build = build_model

    def build(*args, **kwargs):
        model_ref["model"] = real_build(*args, **kwargs)
        return model_ref["model"]

    def record(optimizer, args, kwargs):
        grads.append({n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                      for n, p in model_ref["model"].named_parameters()})

    monkeypatch.setattr("graphmae2.trainer.build_model", build)
    handle = register_optimizer_step_pre_hook(record)
    try:
        result = train_seed(cfg, data, seed, torch.device("cpu"), progress=False)
    finally:
        handle.remove()
    return result.losses, grads


PARITY_CASES = {
    # the shipped Cora recipe: fixed re-masking, teacher momentum 0
    "shipped-cora": [],
    # GraphMAE2's own decoding and teacher: three random re-masked views, an EMA teacher
    "random-remask-ema": ["model.remask_method=random", "ema.momentum=0.996"],
}


def config(extra):
    return load_config("cora.yaml", [
        "train.precision=fp32", "model.in_drop=0", "model.attn_drop=0", f"train.max_epoch={STEPS}",
        "train.monitor_every=0", "model.init=reference", "ema.timing=before_step", *extra])


@pytest.fixture(scope="module")
def cora_row_normalised():
    return load_data(load_config("cora.yaml").data)


def mismatches(grads, ref_grads):
    """Parameters whose float32 gradient differs from the official one beyond ``RTOL``."""
    assert grads.keys() == ref_grads.keys()
    return [name for name, ref in ref_grads.items()
            if float((grads[name] - ref).norm()) > RTOL * float(ref.norm()) + 1e-12]


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_our_steps_equal_the_official_steps(case, cora_row_normalised, monkeypatch):
    cfg = config(PARITY_CASES[case])
    ref_losses, ref_grads = run_official(cfg, cora_row_normalised, 0, STEPS)
    losses, grads = run_ours(cfg, cora_row_normalised, 0, monkeypatch)
    assert len(grads) == STEPS
    for step in range(STEPS):
        assert abs(losses[step] - ref_losses[step]) < LOSS_ATOL, (step, losses[step], ref_losses[step])
        assert mismatches(grads[step], ref_grads[step]) == [], f"step {step}"


def test_parity_sees_the_teacher_timing(cora_row_normalised, monkeypatch):
    """The same comparison is sensitive to a one-step teacher lag: with the teacher moved
    after the optimizer step (``ema.timing: after_step``), step 0 agrees and step 1's
    latent branch (predictor, projector) does not."""
    _, ref_grads = run_official(config([]), cora_row_normalised, 0, 2)
    _, grads = run_ours(config(["ema.timing=after_step"]), cora_row_normalised, 0, monkeypatch)
    assert mismatches(grads[0], ref_grads[0]) == []
    assert "predictor.1.weight" in mismatches(grads[1], ref_grads[1])


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_our_step_equals_the_official_step_in_float64(case, cora_row_normalised):
    """The same first step in float64, where rounding cannot hide a difference: our model
    (sparse first layer, the fast decoding paths) against the transcription."""
    from graphmae2.ema import EMATeacher

    cfg = config(PARITY_CASES[case])
    data = cora_row_normalised
    model = build_model(cfg, data.num_features, 0).double()
    P = official_params(model)
    for t in leaves(P):
        t.requires_grad_(True)
    T = teacher_copy(P)
    mask, remasks = draw_masks(cfg.model, 0, 0, data.num_nodes)
    x = data.x.double()
    src, dst = data.graph.edges()
    ref_loss = official_step(P, T, x, src, dst, mask.mask_nodes, remasks, cfg.model)
    ref_loss.backward()
    ref_grads = as_ours(map_tree(P, lambda t: torch.zeros_like(t) if t.grad is None else t.grad))
    model.train()
    teacher = EMATeacher(model.ema_source())
    teacher.module.train()
    out = model(data.graph, x, teacher, mask, remasks, sparse_input=True)
    out["loss"].backward()
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in model.named_parameters()}
    assert abs(out["loss"].item() - ref_loss.item()) < ATOL64
    assert grads.keys() == ref_grads.keys()
    bad = [n for n, ref in ref_grads.items()
           if float((grads[n] - ref).abs().max()) > ATOL64 * max(1.0, float(ref.abs().max()))]
    assert bad == []

