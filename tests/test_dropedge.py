"""DropEdge views (graphmae2/dropedge.py): self-loops kept, rate honoured, streams repeatable, wiring."""
import pytest
from conftest import tiny_overrides

from graphmae2.config import load_config
from graphmae2.dropedge import drop_edges, edge_views
from graphmae2.ema import EMATeacher
from graphmae2.masking import draw_masks
from graphmae2.seeding import generator
from graphmae2.trainer import build_model


def _loops(g):
    src, dst = g.edges()
    return int((src == dst).sum())


def test_drop_edges_keeps_every_self_loop_and_about_one_minus_rate_of_the_rest(cora):
    g = cora.graph
    out = drop_edges(g, 0.3, generator(0, "drop_edge", 0, "encoder"))
    assert out.num_nodes == g.num_nodes and _loops(out) == g.num_nodes == _loops(g)
    others, kept = g.num_edges - g.num_nodes, out.num_edges - g.num_nodes
    assert kept / others == pytest.approx(0.7, abs=0.02)
    src, dst = out.edges()
    full = set(zip(*(t.tolist() for t in g.edges())))
    assert set(zip(src.tolist(), dst.tolist())) <= full                   # a subgraph, no new edges


def test_drop_edges_rate_zero_is_the_graph_itself_and_bad_rates_are_refused(small_graph):
    assert drop_edges(small_graph, 0.0, generator(0, "x")) is small_graph
    assert edge_views(small_graph, 0.0, 0, (5,)) == (small_graph, small_graph)
    with pytest.raises(ValueError, match=r"rate=1.0 must be in \[0, 1\) \(model.drop_edge_rate\)"):
        drop_edges(small_graph, 1.0, generator(0, "x"))


def test_edge_views_are_independent_per_view_and_step_and_repeat_bitwise(cora):
    enc, teach = edge_views(cora.graph, 0.5, seed=3, key=(7,))
    assert enc.digest() != teach.digest()
    again = edge_views(cora.graph, 0.5, seed=3, key=(7,))
    assert (again[0].digest(), again[1].digest()) == (enc.digest(), teach.digest())
    assert edge_views(cora.graph, 0.5, seed=3, key=(8,))[0].digest() != enc.digest()


def test_encoder_teacher_and_decoder_run_on_their_own_graphs(cora):
    cfg = load_config(None, tiny_overrides(**{"model.remask_method": "fixed"}))
    model = build_model(cfg, cora.num_features, 0)
    teacher = EMATeacher(model.ema_source(), cfg.ema)
    enc_g, teach_g = edge_views(cora.graph, 0.5, seed=0, key=(0,))
    seen = {}
    for name, module in (("encoder", model.encoder), ("teacher", teacher.module.encoder),
                         ("decoder", model.decoder)):
        module.register_forward_pre_hook(lambda m, args, name=name: seen.update({name: args[0]}))
    mask, remasks = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    out = model(cora.graph, cora.x, teacher, mask, remasks, encoder_graph=enc_g, teacher_graph=teach_g)
    assert seen["encoder"] is enc_g and seen["teacher"] is teach_g and seen["decoder"] is cora.graph
    plain = model(cora.graph, cora.x, teacher, mask, remasks)
    assert out["latent"].item() != plain["latent"].item()
