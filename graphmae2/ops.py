"""Message-passing primitives over a destination-sorted CSR :class:`~graphmae2.graph.Graph`.

Pure functions: tensors in, tensors out, no state, no randomness. Every reduction over
edges runs in the CSR's fixed order, in the forward and the backward pass, so results
repeat bitwise on the CPU, and on CUDA when deterministic algorithms are enabled:

* ``gather_src`` / ``gather_dst``: per-edge copies of node values; their backward sums
  per node with ``torch.segment_reduce`` over a sorted layout instead of atomics.
* ``segment_sum`` / ``segment_softmax``: reductions over each node's incoming edges.
* ``spmm``: ``out[v] = sum_{u -> v} w_uv * x[u]``, the hot loop of GAT and GCN. On the
  CPU it is a sparse-CSR matrix product (each output row summed by one thread in index
  order); on CUDA with deterministic algorithms on it is gather + segment sum.
* ``spmm_shared``: the same with one source vector shared by every head (aggregating
  before projecting, for layers asked for a few output rows).

Graphs may be bipartite (:meth:`Graph.in_edges`: the in-edges of some rows). Under
``train.precision: bf16`` autocast, these functions run in float32 (:func:`float32_island`).
Dropout lives in :mod:`graphmae2.dropout`, structured feature inputs in
:mod:`graphmae2.feature_rows`.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor

from .graph import Graph

# Sparse CSR is marked beta, but the CSR x dense product used here is stable and tested.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def float32_island(fn: Callable) -> Callable:
    """Run ``fn`` in float32 with autocast off when autocast is on (``train.precision:
    bf16``): sparse kernels have no bfloat16 version, and sums over edges keep their
    precision. Without autocast, inputs pass through untouched (float64 stays float64)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensors = [a for a in args if isinstance(a, Tensor)]
        dev = tensors[0].device.type if tensors else "cpu"
        if not _autocast_on(dev):
            return fn(*args, **kwargs)
        args = [a.float() if isinstance(a, Tensor) and a.dtype in (torch.bfloat16, torch.float16) else a
                for a in args]
        with torch.autocast(dev, enabled=False):
            return fn(*args, **kwargs)
    return wrapper


def _segment_sum(values: Tensor, indptr: Tensor) -> Tensor:
    """Sum consecutive runs of ``values`` (dim 0) delimited by ``indptr``."""
    if values.shape[0] == 0:
        return values.new_zeros((indptr.numel() - 1,) + tuple(values.shape[1:]))
    return torch.segment_reduce(values, "sum", offsets=indptr, axis=0, unsafe=True)


class _GatherSrc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, graph: Graph) -> Tensor:
        ctx.graph = graph
        return x.index_select(0, graph.indices)

    @staticmethod
    def backward(ctx, grad: Tensor):
        indptr, _, perm = ctx.graph.reverse
        return _segment_sum(grad.index_select(0, perm), indptr), None


class _GatherDst(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, graph: Graph) -> Tensor:
        ctx.graph = graph
        return x.index_select(0, graph.dst)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _segment_sum(grad, ctx.graph.indptr), None


def gather_src(graph: Graph, x: Tensor) -> Tensor:
    """``x[src]`` for every edge: ``[num_nodes, *] -> [num_edges, *]``."""
    return _GatherSrc.apply(x, graph)


def gather_dst(graph: Graph, x: Tensor) -> Tensor:
    """``x[dst]`` for every edge: ``[num_nodes, *] -> [num_edges, *]``."""
    return _GatherDst.apply(x, graph)


@float32_island
def segment_sum(graph: Graph, values: Tensor) -> Tensor:
    """Sum edge values into their destination node: ``[num_edges, *] -> [num_nodes, *]``.

    Nodes without incoming edges get 0.
    """
    return _segment_sum(values, graph.indptr)


@float32_island
def segment_softmax(graph: Graph, scores: Tensor) -> Tensor:
    """Softmax of edge ``scores`` over each destination's incoming edges.

    ``[num_edges, *] -> [num_edges, *]``; the weights into every node with at least one
    incoming edge sum to 1. The per-node maximum is subtracted first (detached: softmax
    is invariant to it) so large scores cannot overflow.
    """
    with torch.no_grad():
        peak = torch.segment_reduce(scores, "max", offsets=graph.indptr, axis=0, unsafe=True)
        peak = torch.nan_to_num(peak, neginf=0.0)  # nodes with no in-edges
    e = torch.exp(scores - gather_dst(graph, peak))
    denom = gather_dst(graph, segment_sum(graph, e))
    return e / denom


def _expand_heads(indptr: Tensor, indices: Tensor, heads: int, shared: bool = False):
    """CSR of the block matrix that applies every head at once. Row ``v*H + h`` holds
    destination ``v``'s in-edges for head ``h``; its columns are ``u*H + h`` (per-head
    features, acting on ``x.view(N * H, D)``) or ``u`` (``shared``: one feature vector
    per node for all heads). Returns ``(crow, col, perm)`` with ``perm`` mapping each
    stored entry to its index in a flat ``[E, H]`` weight tensor."""
    num_dst = indptr.numel() - 1
    deg = indptr[1:] - indptr[:-1]
    num_edges = indices.numel()
    dst = torch.repeat_interleave(torch.arange(num_dst, device=indptr.device), deg)
    e = torch.arange(num_edges, device=indptr.device)
    h = torch.arange(heads, device=indptr.device)
    pos = (indptr[dst] * heads + (e - indptr[dst])).unsqueeze(1) + h * deg[dst].unsqueeze(1)  # (E, H)
    perm = torch.empty(num_edges * heads, dtype=torch.long, device=indptr.device)
    perm[pos.reshape(-1)] = (e.unsqueeze(1) * heads + h).reshape(-1)
    col = torch.empty_like(perm)
    source = indices.unsqueeze(1).expand(-1, heads) if shared else indices.unsqueeze(1) * heads + h
    col[pos.reshape(-1)] = source.reshape(-1)
    crow = torch.empty(num_dst * heads + 1, dtype=torch.long, device=indptr.device)
    crow[:-1] = (indptr[:-1].unsqueeze(1) * heads + h * deg.unsqueeze(1)).reshape(-1)
    crow[-1] = num_edges * heads
    return crow, col, perm


def csr_transpose(crow: Tensor, col: Tensor, num_cols: int):
    """``(crow_t, col_t, order)`` of the transpose of a CSR pattern; ``values[order]``
    are the transpose's values. A stable sort on the column keeps each new row's
    entries in ascending original-row order, so products with it sum in a fixed order."""
    order = torch.sort(col, stable=True).indices
    rows = torch.repeat_interleave(torch.arange(crow.numel() - 1, device=crow.device),
                                   crow[1:] - crow[:-1])
    crow_t = torch.zeros(num_cols + 1, dtype=torch.long, device=crow.device)
    crow_t[1:] = torch.bincount(col, minlength=num_cols).cumsum(0)
    return crow_t, rows[order], order


def _head_layout(graph: Graph, heads: int, reverse: bool):
    """:func:`_expand_heads` of the graph (or of its reverse), cached on the graph."""
    def build():
        if reverse:
            indptr, rev_dst, _ = graph.reverse
            return _expand_heads(indptr, rev_dst, heads)
        return _expand_heads(graph.indptr, graph.indices, heads)

    return graph.cached(("head_layout", heads, reverse), build)


def _block_matmul(layout, values: Tensor, x: Tensor, num_rows: int) -> Tensor:
    """``[num_rows, H, D]`` product of the head-expanded sparse matrix with ``x [n, H, D]``."""
    crow, col, perm = layout
    n, h, d = x.shape
    a = torch.sparse_csr_tensor(crow, col, values.reshape(-1)[perm], (num_rows * h, n * h),
                                check_invariants=False)
    return (a @ x.reshape(n * h, d)).view(num_rows, h, d)


class _SpMM(torch.autograd.Function):
    """``out[v, h] = sum_e w[e, h] * x[src_e, h]`` as one sparse CSR product."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, graph: Graph) -> Tensor:
        ctx.graph = graph
        ctx.save_for_backward(weight, x)
        return _block_matmul(_head_layout(graph, x.shape[1], False), weight, x.contiguous(),
                             graph.num_nodes)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, x = ctx.saved_tensors
        graph = ctx.graph
        grad = grad.contiguous()
        grad_w = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_w = _sddmm(graph, grad, x)
        if ctx.needs_input_grad[1]:
            _, _, perm = graph.reverse
            grad_x = _block_matmul(_head_layout(graph, x.shape[1], True), weight[perm], grad,
                                   graph.num_src)
        return grad_w, grad_x, None


def _sddmm(graph: Graph, a: Tensor, b: Tensor) -> Tensor:
    """``out[e, h] = <a[dst_e, h], b[src_e, h]>``: one independent dot product per edge
    (``a`` has a row per destination, ``b`` one per source)."""
    if a.device.type == "cpu":
        crow, col, perm = _head_layout(graph, a.shape[1], False)
        (n, h, d), m = a.shape, b.shape[0]
        pattern = torch.sparse_csr_tensor(crow, col, a.new_zeros(col.numel()), (n * h, m * h),
                                          check_invariants=False)
        vals = torch.sparse.sampled_addmm(pattern, a.reshape(n * h, d), b.reshape(m * h, d).t(),
                                          beta=0.0).values()
        out = torch.empty_like(vals)
        out[perm] = vals
        return out.view(graph.num_edges, h)
    out = a.new_empty(graph.num_edges, a.shape[1])
    chunk = max(1, (1 << 24) // max(1, a.shape[1] * a.shape[2]))  # bound the gathered copies
    for s in range(0, graph.num_edges, chunk):
        dst, src = graph.dst[s:s + chunk], graph.indices[s:s + chunk]
        out[s:s + chunk] = (a.index_select(0, dst) * b.index_select(0, src)).sum(-1)
    return out


class _SpMMShared(torch.autograd.Function):
    """``out[v, h] = sum_e w[e, h] * x[src_e]``: every head weighs the same source
    vectors. One sparse ``[num_dst * H, num_src]`` product; the backward pass uses its
    explicit transpose and a sampled product (no atomics)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, graph: Graph) -> Tensor:
        heads = weight.shape[1]
        crow, col, perm = _expand_heads(graph.indptr, graph.indices, heads, shared=True)
        ctx.layout, ctx.num_src = (crow, col, perm), x.shape[0]
        ctx.save_for_backward(weight, x)
        a = torch.sparse_csr_tensor(crow, col, weight.reshape(-1)[perm],
                                    (graph.num_nodes * heads, x.shape[0]), check_invariants=False)
        return (a @ x).view(graph.num_nodes, heads, x.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, x = ctx.saved_tensors
        crow, col, perm = ctx.layout
        rows = crow.numel() - 1
        grad = grad.reshape(rows, x.shape[1])
        grad_w = grad_x = None
        if ctx.needs_input_grad[0]:
            pattern = torch.sparse_csr_tensor(crow, col, grad.new_zeros(col.numel()),
                                              (rows, ctx.num_src), check_invariants=False)
            vals = torch.sparse.sampled_addmm(pattern, grad, x.t(), beta=0.0).values()
            grad_w = torch.empty_like(vals)
            grad_w[perm] = vals
            grad_w = grad_w.view_as(weight)
        if ctx.needs_input_grad[1]:
            crow_t, col_t, order = csr_transpose(crow, col, ctx.num_src)
            a_t = torch.sparse_csr_tensor(crow_t, col_t, weight.reshape(-1)[perm][order],
                                          (ctx.num_src, rows), check_invariants=False)
            grad_x = a_t @ grad
        return grad_w, grad_x, None


@float32_island
def spmm_shared(graph: Graph, x: Tensor, weight: Tensor) -> Tensor:
    """Per-head weighted sums of shared source features.

    Args:
        graph: the graph (may be bipartite, see :meth:`Graph.in_edges`).
        x: ``[num_src, F]`` source features, one vector per node for all heads.
        weight: ``[num_edges, heads]`` edge weights.

    Returns:
        ``[num_dst, heads, F]`` with ``out[v, h] = sum_{e = (u -> v)} weight[e, h] * x[u]``.
    """
    if x.device.type != "cpu":
        return segment_sum(graph, gather_src(graph, x).unsqueeze(1) * weight.unsqueeze(-1))
    return _SpMMShared.apply(weight, x, graph)


def _use_segment_path(x: Tensor) -> bool:
    return x.device.type != "cpu" and torch.are_deterministic_algorithms_enabled()


@float32_island
def spmm(graph: Graph, x: Tensor, weight: Optional[Tensor] = None) -> Tensor:
    """Weighted sum of source features into destinations.

    Args:
        graph: the graph.
        x: ``[num_nodes, heads, dim]`` or ``[num_nodes, dim]`` node features.
        weight: ``[num_edges, heads]`` (or ``[num_edges]``) edge weights; ``None`` for 1.

    Returns:
        ``out`` with ``out[v] = sum_{e = (u -> v)} weight[e] * x[u]``, same shape as ``x``.
    """
    squeeze = x.dim() == 2
    if squeeze:
        x = x.unsqueeze(1)
    if weight is None:
        weight = x.new_ones(graph.num_edges, x.shape[1])
    elif weight.dim() == 1:
        weight = weight.unsqueeze(1)
    if _use_segment_path(x):
        out = segment_sum(graph, gather_src(graph, x) * weight.unsqueeze(-1))
    else:
        out = _SpMM.apply(weight, x, graph)
    return out.squeeze(1) if squeeze else out
