"""Each op against a dense reference, gradients by finite differences, bitwise repeats."""
import torch

from graphmae2 import feature_rows, ops
from graphmae2.dropout import training_dropout


def dense_adjacency(graph):
    a = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.float64)
    src, dst = graph.edges()
    a[dst, src] = 1.0
    return a


def test_segment_softmax_sums_to_one_over_in_edges(random_graph):
    scores = torch.randn(random_graph.num_edges, 3)
    alpha = ops.segment_softmax(random_graph, scores)
    assert torch.allclose(ops.segment_sum(random_graph, alpha), torch.ones(random_graph.num_nodes, 3))


def test_segment_softmax_survives_huge_scores(small_graph):
    alpha = ops.segment_softmax(small_graph, torch.full((small_graph.num_edges, 1), 1e4))
    assert torch.isfinite(alpha).all()


def test_spmm_matches_dense_product(random_graph):
    g = random_graph
    x = torch.randn(g.num_nodes, 2, 5, dtype=torch.float64)
    w = torch.rand(g.num_edges, 2, dtype=torch.float64)
    out = ops.spmm(g, x, w)
    for h in range(2):
        a = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
        a[g.dst, g.indices] = w[:, h]
        assert torch.allclose(out[:, h], a @ x[:, h])


def test_spmm_shared_on_in_edges_of_some_rows_matches_dense_product(random_graph):
    g = random_graph
    rows = torch.tensor([7, 0, 31, 12])
    sub = g.in_edges(rows)
    assert (sub.num_nodes, sub.num_src) == (4, g.num_nodes)
    x = torch.randn(g.num_nodes, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(sub.num_edges, 3, dtype=torch.float64, requires_grad=True)
    out = ops.spmm_shared(sub, x, w)
    for h in range(3):
        a = torch.zeros(4, g.num_nodes, dtype=torch.float64)
        a[sub.dst, sub.indices] = w[:, h].detach()
        assert torch.allclose(out[:, h], a @ x.detach())
    assert torch.autograd.gradcheck(lambda w, x: ops.spmm_shared(sub, x, w), (w, x))
    x3 = torch.randn(g.num_nodes, 3, 2, dtype=torch.float64, requires_grad=True)
    out3 = ops.spmm(sub, x3, w)
    assert out3.shape == (4, 3, 2)
    for h in range(3):
        a = torch.zeros(4, g.num_nodes, dtype=torch.float64)
        a[sub.dst, sub.indices] = w[:, h].detach()
        assert torch.allclose(out3[:, h], a @ x3[:, h].detach())
    assert torch.autograd.gradcheck(lambda w, x: ops.spmm(sub, x, w), (w, x3))
    s = torch.randn(sub.num_edges, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: ops.segment_softmax(sub, s), (s,))
    y = torch.randn(g.num_nodes, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: ops.gather_src(sub, y), (y,))


def test_spmm_unweighted_2d(random_graph):
    x = torch.randn(random_graph.num_nodes, 4, dtype=torch.float64)
    assert torch.allclose(ops.spmm(random_graph, x), dense_adjacency(random_graph) @ x)


def test_gradients_match_finite_differences(random_graph):
    g = random_graph
    x = torch.randn(g.num_nodes, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(g.num_edges, 2, dtype=torch.float64, requires_grad=True)
    s = torch.randn(g.num_edges, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x: ops.spmm(g, x, w), (w, x))
    assert torch.autograd.gradcheck(lambda s: ops.segment_softmax(g, s), (s,))
    assert torch.autograd.gradcheck(lambda x: ops.gather_src(g, x), (x,))
    assert torch.autograd.gradcheck(lambda x: ops.gather_dst(g, x), (x,))


def test_sparse_rows_projection_equals_dense():
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 20, generator=gen) < 0.1).double()
    w = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    token = torch.randn(1, 20, dtype=torch.float64, requires_grad=True)
    rows = torch.zeros(30, 1, dtype=torch.float64)
    rows[[1, 4]] = 1.0
    sparse = feature_rows.SparseRows.from_dense(x, rows, token).project(w, 0.0, False)
    dense = (x + rows * token) @ w
    assert torch.allclose(sparse, dense)
    g_sparse = torch.autograd.grad(sparse.sum(), (w, token))
    g_dense = torch.autograd.grad(dense.sum(), (w, token))
    assert all(torch.allclose(a, b) for a, b in zip(g_sparse, g_dense))


def test_sparse_rows_token_rows_get_their_own_dropout_draw():
    """In training, each token row is dropped independently, as in the dense product
    ``dropout(x + rows * token) @ w``, not with one draw shared by all token rows."""
    n, f, p = 400, 64, 0.2
    x = torch.zeros(n, f)
    x[0, 3] = 1.0
    rows = torch.zeros(n, 1)
    rows[1:] = 1.0
    token = torch.ones(1, f, requires_grad=True)
    torch.manual_seed(0)
    out = feature_rows.SparseRows.from_dense(x, rows, token).project(torch.eye(f), p, True)
    kept = out[1:] != 0
    assert set(out[1:].unique().tolist()) <= {0.0, 1.0 / (1.0 - p)}
    assert len({tuple(r) for r in kept.tolist()}) == n - 1  # every row its own draw
    assert abs(kept.float().mean().item() - (1.0 - p)) < 0.01  # 25,536 draws: ~4 std
    (out[1:].sum() * (1.0 - p)).backward()
    assert torch.equal(token.grad, kept.sum(0, keepdim=True).float())


def test_spmm_forward_and_backward_repeat_bitwise(random_graph):
    g = random_graph
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(g.num_nodes, 4, 16, generator=gen)
    w0 = torch.rand(g.num_edges, 4, generator=gen)
    results = []
    for _ in range(2):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        out = ops.spmm(g, x, w)
        out.pow(2).sum().backward()
        results.append((out.detach(), x.grad, w.grad))
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_ops_run_in_float32_under_bf16_autocast_and_leave_float64_alone(random_graph):
    g = random_graph
    x = torch.randn(g.num_nodes, 2, 3)
    w = torch.rand(g.num_edges, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.spmm(g, x.bfloat16(), w)
        alpha = ops.segment_softmax(g, w.bfloat16())
    assert out.dtype == torch.float32 and alpha.dtype == torch.float32
    assert torch.allclose(out, ops.spmm(g, x.bfloat16().float(), w))
    assert ops.spmm(g, x.double(), w.double()).dtype == torch.float64


def test_take_rows_builds_the_masked_input_exactly(cora):
    """Rows gathered from the cached CSR (token rows empty, noise rows copied) give the
    same sparse matrix, so the same projection bitwise, as converting the dense masked input."""
    from graphmae2.config import load_config
    from graphmae2.masking import draw_masks, input_rows, masked_input, token_rows

    cfg = load_config("cora.yaml", ["model.replace_rate=0.15"])  # noise rows too
    mask, _ = draw_masks(cfg.model, 0, 0, cora.num_nodes)
    assert mask.noise_nodes.numel() > 0 and mask.token_nodes.numel() > 0
    is_token = token_rows(cora.num_nodes, mask, cora.x.device, cora.x.dtype)
    token = torch.randn(1, cora.num_features)
    w = torch.randn(cora.num_features, 8)
    gathered = feature_rows.SparseRows.from_dense(cora.x).take_rows(input_rows(cora.num_nodes, mask), is_token, token)
    direct = feature_rows.SparseRows.from_dense(masked_input(cora.x, mask), is_token, token)
    assert torch.equal(gathered.crow, direct.crow) and torch.equal(gathered.col, direct.col)
    assert torch.equal(gathered.project(w, 0.0, False), direct.project(w, 0.0, False))


def test_training_dropout_keeps_one_minus_p_under_bfloat16():
    """The keep mask comes from float32 uniforms: bfloat16 ones (~1,800 distinct values)
    kept 0.7984 of the entries at p = 0.2 while rescaling by 1 / 0.8."""
    torch.manual_seed(0)
    x = torch.ones(4_000_000, dtype=torch.bfloat16)
    kept = float((training_dropout(x, 0.2) != 0).double().mean())
    assert abs(kept - 0.8) < 8e-4  # 4 standard errors; the bfloat16 draw was 16 below


def test_training_dropout_on_float32_draws_rand_like():
    x = torch.randn(100, 50)
    torch.manual_seed(3)
    out = training_dropout(x, 0.3)
    torch.manual_seed(3)
    assert torch.equal(out, x * (torch.rand_like(x) >= 0.3).to(x.dtype) * (1.0 / 0.7))
