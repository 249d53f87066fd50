"""What the DGL and PyG layer cross-checks share: the GAT cases, tolerances, and the
output-and-input-gradient comparison (tests/dgl runs in its own venv, so this lives
beside conftest, importable from both)."""
import torch

from graphmae2.layers import GATConv

# Absolute tolerance per dtype: float32 agrees to ~1e-6 on Cora's 1433-dim input, float64 to ~1e-14.
ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}

GAT_CASES = {
    # name: (in_dim or None for Cora's 1433, out_dim, heads, residual, concat, bias)
    "1head": (None, 16, 1, False, True, True),
    "4heads": (None, 8, 4, False, True, True),
    "4heads-projected-residual": (None, 8, 4, True, True, True),
    "4heads-identity-residual": (32, 8, 4, True, True, True),
    "4heads-mean": (None, 8, 4, False, False, True),
    "4heads-no-bias": (None, 8, 4, False, True, False),
}


def outputs_and_grads(forward, x, seed=0):
    """Output of ``forward(x)`` and the gradient of a fixed random projection of it w.r.t. ``x``
    (a projection, not ``.sum()``, so every output entry carries its own weight)."""
    x = x.detach().clone().requires_grad_(True)
    out = forward(x)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * probe).sum().backward()
    return out.detach(), x.grad


def max_diff(a, b):
    return float((a - b).abs().max())


def gat_case(cora, case, dtype):
    """``(x, ours)`` for a ``GAT_CASES`` entry: the input and our ``GATConv`` in eval mode,
    with a non-zero bias, so a bias added in the wrong place would show."""
    in_dim, out_dim, heads, residual, concat, bias = GAT_CASES[case]
    gen = torch.Generator().manual_seed(1)
    x = cora.x if in_dim is None else torch.randn(cora.num_nodes, in_dim, generator=gen)
    x = x.to(dtype)
    torch.manual_seed(0)
    ours = GATConv(x.shape[1], out_dim, heads, residual=residual, concat=concat, bias=bias).to(dtype).eval()
    if ours.bias is not None:
        with torch.no_grad():
            ours.bias.normal_(generator=gen)
    return x, ours


def assert_same_outputs_and_grads(ours_forward, ref_forward, x, dtype):
    out, grad = outputs_and_grads(ours_forward, x)
    ref_out, ref_grad = outputs_and_grads(ref_forward, x)
    assert out.shape == ref_out.shape
    assert max_diff(out, ref_out) < ATOL[dtype], f"output max |diff| {max_diff(out, ref_out):.3g}"
    assert max_diff(grad, ref_grad) < ATOL[dtype], f"input-gradient max |diff| {max_diff(grad, ref_grad):.3g}"
