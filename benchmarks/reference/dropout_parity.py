"""Dropout on, in expectation: our training step against the official one, transcribed.

    python benchmarks/reference/dropout_parity.py --draws 60 --checkpoint RUN_DIR/seed-0/checkpoint.pt

``tests/test_official_parity.py`` checks one step with dropout off, element by element.
This checks what that leaves out: at fixed weights (a checkpoint of ``configs/cora.yaml``,
or its initialisation at width 64 without one) and fixed masks, in float64, it draws
``--draws`` dropout samples for each side — ours through ``GraphMAE2.forward`` with the
teacher in training mode, the official step from the test's transcription with dropout
where DGL's ``GATConv`` applies it (features before the projection, attention after the
softmax, in every encoder layer, the decoder and the teacher) — and prints, per
parameter, the root-mean-square z-score of the difference of the mean gradients (about
1 when the means agree), their cosine, and the ratio of the gradient variances.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import test_official_parity as tp  # the transcription lives with its test

from graphmae2.checkpoint import load_checkpoint
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.dropout import dropout_stream
from graphmae2.ema import EMATeacher
from graphmae2.masking import draw_masks
from graphmae2.trainer import build_model


def dropped(t: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    return t * (torch.rand(t.shape, generator=gen, dtype=t.dtype) >= p).to(t.dtype) / (1 - p)


def gat_layer(p, src, dst, h, heads, act, drop, gen):
    """``tp.gat_layer`` with DGL GATConv's two dropouts (``drop = (feat, attn)``)."""
    fc, attn_l, attn_r, bias, slope = p
    n = h.shape[0]
    feat = (dropped(h, drop[0], gen) @ fc.t()).view(n, heads, -1)
    el, er = (feat * attn_l).sum(-1), (feat * attn_r).sum(-1)
    e = F.leaky_relu(el[src] + er[dst], 0.2)
    e_max = e.new_zeros(n, heads).scatter_reduce(0, dst[:, None].expand_as(e), e, "amax", include_self=False)
    w = torch.exp(e - e_max[dst])
    a = dropped(w / w.new_zeros(n, heads).index_add(0, dst, w)[dst], drop[1], gen)
    out = torch.zeros_like(feat).index_add(0, dst, feat[src] * a.unsqueeze(-1)).flatten(1) + bias
    return tp.prelu(out, slope) if act else out


def official_loss(P, T, x, src, dst, mask_nodes, cfg, gen):
    """``tp.official_step`` for fixed re-masking, with dropout."""
    drop = (cfg.in_drop, cfg.attn_drop)

    def encoder(E, h):
        return gat_layer(E[1], src, dst, gat_layer(E[0], src, dst, h, cfg.num_heads, True, drop, gen),
                         cfg.num_heads, True, drop, gen)

    use_x = x.clone()
    use_x[mask_nodes] = 0.0
    use_x[mask_nodes] += P["enc_mask_token"]
    enc_rep = encoder(P["encoder"], use_x)
    with torch.no_grad():
        target = tp.mlp_projector(T["projector"], encoder(T["encoder"], x))
    a, w, b = P["predictor"]
    latent = tp.sce(tp.prelu(tp.mlp_projector(P["projector"], enc_rep), a) @ w.t() + b, target, 1)
    rep = (enc_rep @ P["encoder_to_decoder"].t()).clone()
    rep[mask_nodes] = 0
    recon = gat_layer(P["decoder"], src, dst, rep, 1, False, drop, gen)
    return tp.sce(x[mask_nodes], recon[mask_nodes], cfg.alpha_l) + cfg.lam * latent


class Moments:
    """Running mean and sample variance per tensor (sums of x and x^2 in float64), so
    memory does not grow with the number of draws."""

    def __init__(self) -> None:
        self.n, self.s1, self.s2 = 0, {}, {}

    def add(self, sample: Dict[str, torch.Tensor]) -> None:
        self.n += 1
        for k, v in sample.items():
            v = v.detach().double()
            self.s1[k] = self.s1.get(k, 0) + v
            self.s2[k] = self.s2.get(k, 0) + v * v

    def result(self):
        mean = {k: v / self.n for k, v in self.s1.items()}
        var = {k: (self.s2[k] - self.n * mean[k] ** 2).clamp_min(0) / (self.n - 1) for k in self.s1}
        return mean, var


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=60)
    p.add_argument("--checkpoint", type=Path, help="a checkpoint of configs/cora.yaml (default: init, width 64)")
    args = p.parse_args()
    small = [] if args.checkpoint else ["model.num_hidden=64", "model.num_heads=4"]
    cfg = load_config("cora.yaml", ["train.precision=fp32", *small])
    if cfg.model.remask_method != "fixed":
        p.error("the transcription here is of fixed re-masking")
    data = load_data(cfg.data)
    model = build_model(cfg, data.num_features, 0).double()
    if args.checkpoint:
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    P = tp.official_params(model)
    for t in tp.leaves(P):
        t.requires_grad_(True)
    T = tp.teacher_copy(P)
    mask, remasks = draw_masks(cfg.model, 0, 0, data.num_nodes)
    x = data.x.double()
    src, dst = data.graph.edges()
    model.train()
    teacher = EMATeacher(model.ema_source())
    teacher.module.train()
    gen = torch.Generator().manual_seed(1)
    official, ours = Moments(), Moments()
    for i in range(args.draws):
        for t in tp.leaves(P):
            t.grad = None
        loss = official_loss(P, T, x, src, dst, mask.mask_nodes, cfg.model, gen)
        loss.backward()
        grads = tp.as_ours(tp.map_tree(P, lambda t: torch.zeros_like(t) if t.grad is None else t.grad))
        official.add({"loss": loss, **grads})
        model.zero_grad(set_to_none=True)
        with dropout_stream(torch.Generator().manual_seed(1000 + i)):
            out = model(data.graph, x, teacher, mask, remasks, sparse_input=True)
        out["loss"].backward()
        ours.add({"loss": out["loss"], **{n: q.grad if q.grad is not None else torch.zeros_like(q)
                                           for n, q in model.named_parameters()}})
    mo, vo = official.result()
    mu, vu = ours.result()
    z_loss = float((mu["loss"] - mo["loss"]) / ((vo["loss"] + vu["loss"]) / args.draws).sqrt())
    print(f"{args.draws} draws each; mean loss official {float(mo['loss']):.5f}, ours {float(mu['loss']):.5f}, "
          f"z {z_loss:.2f}")
    print("| parameter | rms z of the mean gradients | cosine | variance ours / official |")
    print("| --- | --- | --- | --- |")
    for k in mo:
        se = ((vo[k] + vu[k]) / args.draws).sqrt()
        if k == "loss" or not bool((se > 0).any()):
            continue
        z = ((mu[k] - mo[k]) / se)[se > 0]
        cos = float(F.cosine_similarity(mo[k].flatten(), mu[k].flatten(), dim=0))
        print(f"| {k} | {float(z.pow(2).mean().sqrt()):.2f} | {cos:.4f} | {float(vu[k].sum() / vo[k].sum()):.3f} |")


if __name__ == "__main__":
    main()
