"""DGL interop: our GAT/GCN layers against DGL's with the same weights, and DGLGraph conversion.

Runs only where DGL is installed: `make test-dgl` builds a pinned environment for it.
"""
import importlib.util
import os

import pytest

# tests/ is on sys.path (pytest puts the rootdir conftest's folder there), so without DGL a bare
# ``import dgl`` finds this folder as an empty namespace package and importorskip does not skip.
# A namespace package has no origin; the real one has dgl/__init__.py.
_spec = importlib.util.find_spec("dgl")
if _spec is None or _spec.origin is None:
    pytest.skip("DGL is not installed; `make test-dgl` runs these tests", allow_module_level=True)
os.environ.setdefault("DGLBACKEND", "pytorch")  # else DGL writes ~/.dgl/config.json on import
dgl = pytest.importorskip("dgl")
dglnn = pytest.importorskip("dgl.nn")

import torch  # noqa: E402
from crosscheck import ATOL, GAT_CASES, assert_same_outputs_and_grads, gat_case, max_diff, outputs_and_grads  # noqa: E402

from graphmae2.config import Config  # noqa: E402
from graphmae2.graph import Graph  # noqa: E402
from graphmae2.layers import GATConv, GCNConv  # noqa: E402
from graphmae2.model import GraphMAE2  # noqa: E402
from graphmae2.pretrained import PretrainedEncoder, as_graph, embed  # noqa: E402


# ---------------------------------------------------------------------------- GAT
def dgl_gat_like(ours: GATConv) -> "dglnn.GATConv":
    """A ``dgl.nn.GATConv`` holding ``ours``' weights.

    DGL's conventions: ``fc.weight`` is ``[heads*out, in]`` (ours transposed); ``attn_l``
    scores the source and ``attn_r`` the destination, shaped ``[1, heads, out]``; with a
    projected residual DGL puts the bias in ``res_fc`` (same sum: agg + W_res x + b), else it
    adds ``bias`` after the residual, as ours does. DGL has no head averaging: with
    ``concat=False`` the caller averages, so our ``[out]`` bias is repeated per head.
    """
    h, d = ours.num_heads, ours.out_dim
    theirs = dglnn.GATConv(ours.in_dim, d, h, negative_slope=ours.negative_slope,
                           residual=ours.residual, bias=ours.bias is not None)
    theirs = theirs.to(ours.weight.dtype)
    with torch.no_grad():
        theirs.fc.weight.copy_(ours.weight.T)
        theirs.attn_l.copy_(ours.att_src.view(1, h, d))
        theirs.attn_r.copy_(ours.att_dst.view(1, h, d))
        bias = None
        if ours.bias is not None:
            bias = ours.bias if ours.concat else ours.bias.repeat(h)
        if ours.res_weight is not None:
            theirs.res_fc.weight.copy_(ours.res_weight.T)
            if bias is not None:
                theirs.res_fc.bias.copy_(bias)
        elif bias is not None:
            theirs.bias.copy_(bias)
    return theirs.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", GAT_CASES)
def test_gat_conv_matches_dgl_outputs_and_gradients(cora, case, dtype):
    x, ours = gat_case(cora, case, dtype)
    concat = ours.concat
    theirs = dgl_gat_like(ours)
    g = cora.graph.to_dgl()

    def dgl_forward(x):
        out = theirs(g, x)                                   # (N, H, D)
        return out.flatten(1) if concat else out.mean(1)

    assert_same_outputs_and_grads(lambda x: ours(cora.graph, x), dgl_forward, x, dtype)


def test_gat_conv_parameter_gradients_match_dgl(cora):
    """Backward through our custom gather/segment ops reaches every weight as DGL's does."""
    torch.manual_seed(0)
    ours = GATConv(cora.num_features, 8, 4, residual=True).double().eval()
    theirs = dgl_gat_like(ours)
    x = cora.x.double()
    outputs_and_grads(lambda x: ours(cora.graph, x), x)
    outputs_and_grads(lambda x: theirs(cora.graph.to_dgl(), x).flatten(1), x)
    pairs = {"weight": (ours.weight.grad, theirs.fc.weight.grad.T),
             "att_src": (ours.att_src.grad, theirs.attn_l.grad.view(4, 8)),
             "att_dst": (ours.att_dst.grad, theirs.attn_r.grad.view(4, 8)),
             "res_weight": (ours.res_weight.grad, theirs.res_fc.weight.grad.T),
             "bias": (ours.bias.grad, theirs.res_fc.bias.grad)}
    for name, (a, b) in pairs.items():
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), f"{name}: max |diff| {max_diff(a, b):.3g}"


# ---------------------------------------------------------------------------- GCN
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("out_dim", [16, 2048], ids=["project-first", "aggregate-first"])
def test_gcn_conv_matches_dgl_graphconv_both_norm(cora, out_dim, dtype):
    """DGL multiplies before aggregating when out < in and after otherwise: both orders."""
    torch.manual_seed(0)
    ours = GCNConv(cora.num_features, out_dim).to(dtype).eval()
    theirs = dglnn.GraphConv(cora.num_features, out_dim, norm="both").to(dtype).eval()
    with torch.no_grad():
        ours.bias.normal_()
        theirs.weight.copy_(ours.weight)                     # both [in, out]
        theirs.bias.copy_(ours.bias)
    g = cora.graph.to_dgl()
    x = cora.x.to(dtype)
    out, grad = outputs_and_grads(lambda x: ours(cora.graph, x), x)
    ref_out, ref_grad = outputs_and_grads(lambda x: theirs(g, x), x)
    assert max_diff(out, ref_out) < ATOL[dtype], f"output max |diff| {max_diff(out, ref_out):.3g}"
    assert max_diff(grad, ref_grad) < ATOL[dtype], f"input-gradient max |diff| {max_diff(grad, ref_grad):.3g}"


# ------------------------------------------------------------------- conversion
def sorted_edges(src, dst):
    """Edge list as sorted ``(src, dst)`` pairs, duplicates kept."""
    pairs = torch.stack([torch.as_tensor(src).long(), torch.as_tensor(dst).long()], 1)
    return sorted(map(tuple, pairs.tolist()))


def test_from_dgl_keeps_duplicates_self_loops_and_isolated_nodes():
    # Unsorted, a duplicate edge 0->1, a self-loop listed twice, and isolated node 5.
    src = torch.tensor([3, 0, 2, 0, 4, 4, 1])
    dst = torch.tensor([0, 1, 2, 1, 4, 4, 3])
    g = dgl.graph((src, dst), num_nodes=6)
    ours = Graph.from_dgl(g)
    assert (ours.num_nodes, ours.num_edges) == (6, 7)
    assert sorted_edges(*ours.edges()) == sorted_edges(src, dst)
    back = ours.to_dgl()
    assert isinstance(back, dgl.DGLGraph) and back.num_nodes() == 6
    assert sorted_edges(*back.edges()) == sorted_edges(src, dst)


def test_cora_round_trip_through_dgl_is_exact(cora):
    g = cora.graph.to_dgl()
    assert (g.num_nodes(), g.num_edges()) == (cora.graph.num_nodes, cora.graph.num_edges)
    assert sorted_edges(*g.edges()) == sorted_edges(*cora.graph.edges())
    back = Graph.from_dgl(g)
    assert torch.equal(back.indptr, cora.graph.indptr)
    assert torch.equal(back.indices, cora.graph.indices)
    assert back.digest() == cora.graph.digest()


def test_embed_accepts_a_dgl_graph(cora):
    cfg = Config.from_dict({"model": {"num_hidden": 16, "num_heads": 2, "projector_hidden": 8}})
    torch.manual_seed(0)
    encoder = PretrainedEncoder(GraphMAE2(cora.num_features, cfg.model).encoder, cfg)
    g = dgl.add_self_loop(dgl.remove_self_loop(cora.graph.to_dgl()))
    assert isinstance(as_graph(g), Graph)
    z = embed(encoder, g, cora.x)
    assert z.shape == (cora.num_nodes, 16)
    assert torch.equal(z, embed(encoder, cora.graph, cora.x))
    assert torch.equal(encoder.eval()(g, cora.x), z)
