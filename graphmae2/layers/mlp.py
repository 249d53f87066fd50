"""Multi-layer perceptron decoder: ignores the graph, so decoding is node-wise."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..dropout import dropout
from ..graph import Graph
from .common import make_activation, make_norm


class MLP(nn.Module):
    r"""``num_layers`` linear layers, ``h = \sigma(\mathrm{norm}(W h + b))`` between them.

    With ``num_layers=1`` it is the linear decoder. Takes ``(graph, x)`` like the graph
    networks so it can stand in for one; the graph is not used.

    Shapes:
        ``[num_nodes, in_dim] -> [num_nodes, out_dim]``.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int,
                 activation: str = "prelu", feat_drop: float = 0.0, norm: str = "none",
                 encoding: bool = True) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.feat_drop = feat_drop
        self.linears = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(num_layers))
        keep_last = encoding
        self.acts = nn.ModuleList(
            make_activation(activation if (i < num_layers - 1 or keep_last) else None)
            for i in range(num_layers))
        self.norms = nn.ModuleList(
            make_norm(norm if (i < num_layers - 1 or keep_last) else None, dims[i + 1])
            for i in range(num_layers))
        self.out_dim = out_dim

    def forward(self, graph: Graph, x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Output at every node, or only the ``rows`` of it when given."""
        del graph
        for linear, norm, act in zip(self.linears, self.norms, self.acts):
            x = act(norm(linear(dropout(x, self.feat_drop, self.training))))
        return x if rows is None else x[rows.to(x.device)]
