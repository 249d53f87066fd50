"""Layers: shapes, gradients, and GAT/GCN against dense references written from the papers."""
import pytest
import torch
import torch.nn.functional as F

from graphmae2 import feature_rows, ops
from graphmae2.layers import GAT, MLP, GATConv, GCNConv


def dense_gat(layer, graph, x):
    """GAT written densely from the paper's formula, independent of ops.py."""
    n, h, d = x.shape[0], layer.num_heads, layer.out_dim
    z = (x @ layer.weight).view(n, h, d)
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[graph.dst, graph.indices] = True
    outs = []
    for k in range(h):
        e = (z[:, k] @ layer.att_dst[k]).unsqueeze(1) + (z[:, k] @ layer.att_src[k]).unsqueeze(0)
        e = F.leaky_relu(e, layer.negative_slope).masked_fill(~adj, float("-inf"))
        outs.append(torch.softmax(e, dim=1) @ z[:, k])
    out = torch.stack(outs, 1)
    out = out.reshape(n, h * d) if layer.concat else out.mean(1)
    return out + layer.bias


@pytest.mark.parametrize("concat", [True, False])
def test_gat_equals_dense_reference(random_graph, concat):
    torch.manual_seed(0)
    layer = GATConv(6, 4, num_heads=3, concat=concat).double().eval()
    x = torch.randn(random_graph.num_nodes, 6, dtype=torch.float64)
    assert torch.allclose(layer(random_graph, x), dense_gat(layer, random_graph, x), atol=1e-10)


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("num_rows", [5, 30])  # aggregate first / project all, aggregate rows
@pytest.mark.parametrize("residual", [False, True])
def test_gat_rows_equal_the_full_output_at_those_rows(random_graph, concat, num_rows, residual):
    """Output at a subset of rows: same values and gradients as the full output."""
    torch.manual_seed(0)
    layer = GATConv(6, 4, num_heads=3, concat=concat, activation="prelu", norm="layernorm",
                    residual=residual).double().eval()
    rows = torch.randperm(random_graph.num_nodes)[:num_rows]
    x = torch.randn(random_graph.num_nodes, 6, dtype=torch.float64, requires_grad=True)
    part = layer(random_graph, x, rows=rows)
    full = layer(random_graph, x)[rows]
    assert torch.allclose(part, full, atol=1e-12)
    g_part = torch.autograd.grad(part.square().sum(), [x] + list(layer.parameters()))
    g_full = torch.autograd.grad(full.square().sum(), [x] + list(layer.parameters()))
    for a, b in zip(g_part, g_full):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("rows", [None, "masked", "mixed"])
def test_gat_on_kept_rows_equals_the_zero_filled_input(random_graph, rows):
    """Input zero outside some rows (the decoder under fixed re-masking): the compact
    path gives the dense path's output and gradients, masked sources still in every softmax."""
    torch.manual_seed(0)
    n = random_graph.num_nodes
    layer = GATConv(6, 4, num_heads=3, concat=False).double().eval()
    kept = torch.randperm(n)[: n // 2]
    masked = torch.ones(n, dtype=torch.bool)
    masked[kept] = False
    out_rows = {None: None, "masked": masked.nonzero().squeeze(1), "mixed": torch.arange(0, n, 3)}[rows]
    values = torch.randn(kept.numel(), 6, dtype=torch.float64, requires_grad=True)
    compact = layer(random_graph, feature_rows.KeptRows(values, kept, n), rows=out_rows)
    dense_in = values.new_zeros(n, 6).index_copy(0, kept, values)
    dense = layer(random_graph, dense_in) if out_rows is None else layer(random_graph, dense_in)[out_rows]
    assert torch.allclose(compact, dense, atol=1e-12)
    g_compact = torch.autograd.grad(compact.square().sum(), [values] + list(layer.parameters()))
    g_dense = torch.autograd.grad(dense.square().sum(), [values] + list(layer.parameters()))
    for a, b in zip(g_compact, g_dense):
        assert torch.allclose(a, b, atol=1e-12)


def test_gat_attention_over_in_edges_sums_to_one(random_graph):
    layer = GATConv(5, 3, num_heads=2)
    z = layer.project(torch.randn(random_graph.num_nodes, 5)).view(-1, 2, 3)
    score = ops.gather_src(random_graph, (z * layer.att_src).sum(-1)) + \
        ops.gather_dst(random_graph, (z * layer.att_dst).sum(-1))
    alpha = ops.segment_softmax(random_graph, F.leaky_relu(score, 0.2))
    assert torch.allclose(ops.segment_sum(random_graph, alpha), torch.ones(random_graph.num_nodes, 2))


@pytest.mark.parametrize("norm", ["none", "layernorm", "batchnorm"])
@pytest.mark.parametrize("activation", ["prelu", "elu", "relu", "gelu"])
def test_gat_stack_shapes_and_gradients(random_graph, norm, activation):
    net = GAT(7, 4, 4, num_layers=2, num_heads=2, num_out_heads=2, activation=activation,
              feat_drop=0.2, attn_drop=0.1, residual=True, norm=norm)
    x = torch.randn(random_graph.num_nodes, 7, requires_grad=True)
    out = net(random_graph, x)
    assert out.shape == (random_graph.num_nodes, 8) and net.out_dim == 8
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gat_forward_views_equals_separate_forwards_in_float64(random_graph, num_layers):
    """The shared-view decoding (one projection for every view) against the plain path:
    each view decoded from its own re-masked copy; outputs and gradients."""
    torch.manual_seed(0)
    net = GAT(6, 5, 6, num_layers=num_layers, num_heads=2, num_out_heads=1, encoding=False).double().eval()
    x = torch.randn(random_graph.num_nodes, 6, dtype=torch.float64, requires_grad=True)
    token = torch.randn(1, 6, dtype=torch.float64, requires_grad=True)
    views = [torch.tensor([0, 3, 5]), torch.tensor([1, 2])]
    shared = net.forward_views(random_graph, x, views, token)
    plain = [net(random_graph, feature_rows.replace_rows(x, nodes, token)) for nodes in views]
    for a, b in zip(shared, plain):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    probe = [torch.randn(o.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
             for i, o in enumerate(plain)]
    g_shared = torch.autograd.grad(sum((o * p).sum() for o, p in zip(shared, probe)), [x, token])
    g_plain = torch.autograd.grad(sum((o * p).sum() for o, p in zip(plain, probe)), [x, token])
    for a, b in zip(g_shared, g_plain):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_gcn_equals_symmetric_normalised_dense_product(random_graph):
    layer = GCNConv(4, 3).double()
    x = torch.randn(random_graph.num_nodes, 4, dtype=torch.float64)
    a = torch.zeros(random_graph.num_nodes, random_graph.num_nodes, dtype=torch.float64)
    a[random_graph.dst, random_graph.indices] = 1.0
    d_in, d_out = a.sum(1), a.sum(0)
    ref = (d_in.rsqrt()[:, None] * a * d_out.rsqrt()[None, :]) @ x @ layer.weight + layer.bias
    assert torch.allclose(layer(random_graph, x), ref)


def test_mlp_ignores_graph(random_graph, small_graph):
    mlp = MLP(4, 8, 3, num_layers=2).eval()
    x = torch.randn(5, 4)
    assert torch.equal(mlp(small_graph, x), mlp(None, x))


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'; allowed: prelu, elu"):
        GATConv(2, 2, activation="swish")


def test_repr_is_short():
    assert repr(GATConv(16, 8, num_heads=4)) == "GATConv(16, 8, heads=4)"
    assert repr(GCNConv(16, 32)) == "GCNConv(16, 32)"


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gat_views_at_rows_equal_the_views_at_every_node(random_graph, num_layers):
    """The decoder's views computed only where the loss reads them: same rows, same values."""
    torch.manual_seed(0)
    net = GAT(6, 4, 5, num_layers=num_layers, num_heads=2, num_out_heads=1, concat_out=False,
              encoding=False).double().eval()
    x = torch.randn(random_graph.num_nodes, 6, dtype=torch.float64)
    token = torch.randn(1, 6, dtype=torch.float64)
    views = [torch.randperm(random_graph.num_nodes)[:7] for _ in range(3)]
    rows = torch.randperm(random_graph.num_nodes)[:9]
    full = net.forward_views(random_graph, x, views, token)
    part = net.forward_views(random_graph, x, views, token, rows=rows)
    for f, p in zip(full, part):
        assert torch.allclose(p, f[rows], atol=1e-12)


def test_gat_attention_init_graphmae_is_xavier_on_one_row_and_reference_per_head():
    gain = torch.nn.init.calculate_gain("relu")
    conv = GATConv(64, 32, num_heads=4)
    torch.manual_seed(0)
    conv.reset_parameters()
    torch.manual_seed(0)
    w, a_src, a_dst = torch.empty(64, 128), torch.empty(1, 128), torch.empty(1, 128)
    torch.nn.init.xavier_normal_(w, gain=gain)
    torch.nn.init.xavier_normal_(a_src, gain=gain)
    torch.nn.init.xavier_normal_(a_dst, gain=gain)
    assert torch.equal(conv.weight, w) and torch.equal(conv.att_src.view(1, -1), a_src)
    assert torch.equal(conv.att_dst.view(1, -1), a_dst)
    ref = GATConv(64, 32, num_heads=4, init="reference")
    torch.manual_seed(0)
    ref.reset_parameters()
    torch.manual_seed(0)
    a3 = torch.empty(1, 4, 32)
    torch.nn.init.xavier_normal_(torch.empty(64, 128), gain=gain)
    torch.nn.init.xavier_normal_(a3, gain=gain)  # DGL's and the official code's layout
    assert torch.equal(ref.att_src, a3[0])
