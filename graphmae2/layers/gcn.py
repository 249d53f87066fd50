"""Graph convolution (Kipf & Welling, 2017, https://arxiv.org/abs/1609.02907)."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .. import feature_rows, ops
from ..dropout import dropout
from ..graph import Graph
from .common import make_activation, make_norm


def gcn_norm(graph: Graph, dtype: torch.dtype = torch.float32) -> Tensor:
    """Edge weights ``1 / sqrt(deg_out(u) * deg_in(v))`` for each edge ``u -> v``, in ``dtype``.

    A node of degree 0 gets weight 0 on its (non-existent) edges rather than inf.
    """
    deg_in = graph.in_degrees().to(dtype)
    deg_out = graph.out_degrees().to(dtype)
    inv_in = torch.where(deg_in > 0, deg_in.rsqrt(), torch.zeros_like(deg_in))
    inv_out = torch.where(deg_out > 0, deg_out.rsqrt(), torch.zeros_like(deg_out))
    src, dst = graph.edges()
    return inv_out[src] * inv_in[dst]


class GCNConv(nn.Module):
    r"""Graph convolution with symmetric normalisation.

    .. math::
        H' = \sigma\big(\mathrm{norm}(\hat D_{in}^{-1/2} \hat A \hat D_{out}^{-1/2} X W + b)\big),
        \qquad h'_i = \sigma\Big(\sum_{j \in \mathcal{N}(i)}
            \frac{1}{\sqrt{d^{out}_j d^{in}_i}} W^\top x_j + b\Big)

    Self-loops are whatever the graph holds (add them with ``Graph.add_self_loops``).

    Args:
        in_dim: input feature size.
        out_dim: output feature size.
        dropout: dropout on the input features (default: 0).
        residual: add ``x`` (or a projection of it) to the output (default: False).
        activation: ``prelu | elu | relu | gelu | none`` (default: none).
        norm: ``none | layernorm | batchnorm`` (default: none).
        bias: learn an additive bias (default: True).

    Shapes:
        ``[num_nodes, in_dim] -> [num_nodes, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, residual: bool = False,
                 activation: Optional[str] = None, norm: Optional[str] = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.dropout = dropout
        self.residual = residual
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_dim))
        else:
            self.register_parameter("bias", None)
        if residual and in_dim != out_dim:
            self.res_weight = nn.Parameter(torch.empty(in_dim, out_dim))
        else:
            self.register_parameter("res_weight", None)
        self.norm = make_norm(norm, out_dim)
        self.act = make_activation(activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_dim + self.out_dim))  # Glorot uniform
        nn.init.uniform_(self.weight, -bound, bound)
        if self.res_weight is not None:
            nn.init.uniform_(self.res_weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, graph: Graph, x: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        if edge_weight is None:
            edge_weight = gcn_norm(graph, self.weight.dtype)
        out = ops.spmm(graph, feature_rows.project(x, self.weight, self.dropout, self.training), edge_weight)
        if self.residual:
            if self.res_weight is not None:
                out = out + feature_rows.project(x, self.res_weight, self.dropout, self.training)
            else:
                out = out + dropout(x, self.dropout, self.training)
        if self.bias is not None:
            out = out + self.bias
        return self.act(self.norm(out))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, {self.out_dim})"


class GCN(nn.Module):
    """A stack of :class:`GCNConv` layers (hidden width ``hidden_dim``).

    The last layer keeps activation/residual/norm only when ``encoding`` is true.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int,
                 activation: str = "prelu", feat_drop: float = 0.0, residual: bool = False,
                 norm: str = "none", encoding: bool = True) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            last = i == num_layers - 1
            keep = encoding or not last
            self.layers.append(GCNConv(dims[i], dims[i + 1], feat_drop, residual and keep,
                                       activation if keep else None, norm if keep else None))
        self.out_dim = out_dim

    def forward(self, graph: Graph, x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Output at every node, or only the ``rows`` of it when given."""
        weight = gcn_norm(graph, self.layers[0].weight.dtype)  # once, shared by every layer
        for layer in self.layers:
            x = layer(graph, x, weight)
        return x if rows is None else x[rows.to(x.device)]
