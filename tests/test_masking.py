"""Masks: counts, disjointness, stream isolation."""
import torch

from graphmae2.config import load_config
from graphmae2.masking import draw_masks, encoder_mask, masked_input, remask_nodes
from graphmae2.seeding import generator


def test_encoder_mask_counts_and_disjointness():
    m = encoder_mask(1000, 0.5, 0.15, generator(0, "mask", 0))
    assert m.mask_nodes.numel() == 500 and m.keep_nodes.numel() == 500
    assert m.noise_nodes.numel() == 75 and m.token_nodes.numel() == 425
    every = torch.cat([m.mask_nodes, m.keep_nodes])
    assert torch.equal(every.sort().values, torch.arange(1000))
    assert set(m.token_nodes.tolist()) | set(m.noise_nodes.tolist()) == set(m.mask_nodes.tolist())
    assert not set(m.token_nodes.tolist()) & set(m.noise_nodes.tolist())


def test_masked_input_zeroes_tokens_and_copies_noise_sources():
    x = torch.arange(40.0).view(20, 2)
    m = encoder_mask(20, 0.5, 0.4, generator(1, "mask", 0))
    out = masked_input(x, m)
    assert torch.equal(out[m.token_nodes], torch.zeros(m.token_nodes.numel(), 2))
    assert torch.equal(out[m.noise_nodes], x[m.noise_sources])
    assert torch.equal(out[m.keep_nodes], x[m.keep_nodes])


def test_remask_count():
    assert remask_nodes(101, 0.5, generator(0, "remask", 0, 0)).numel() == 50


def test_mask_streams_are_isolated_from_num_remask_and_latent_branch():
    a = load_config(None, ["model.num_remask=1", "model.lam=0"])
    b = load_config(None, ["model.num_remask=3", "model.lam=1.0"])
    for epoch in range(5):
        ma, ra = draw_masks(a.model, 7, epoch, 300)
        mb, rb = draw_masks(b.model, 7, epoch, 300)
        assert torch.equal(ma.mask_nodes, mb.mask_nodes) and torch.equal(ma.noise_sources, mb.noise_sources)
        assert torch.equal(ra[0], rb[0])  # view 0 is the same whatever the number of views
        assert len(ra) == 1 and len(rb) == 3


def test_masks_change_between_epochs_and_seeds():
    cfg = load_config(None)
    m0 = draw_masks(cfg.model, 0, 0, 300)[0].mask_nodes
    assert not torch.equal(m0, draw_masks(cfg.model, 0, 1, 300)[0].mask_nodes)
    assert not torch.equal(m0, draw_masks(cfg.model, 1, 0, 300)[0].mask_nodes)
