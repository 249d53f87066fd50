"""Graph attention (Velickovic et al., 2018, https://arxiv.org/abs/1710.10903)."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import feature_rows, ops
from ..dropout import dropout
from ..graph import Graph
from .common import make_activation, make_norm


class GATConv(nn.Module):
    r"""Multi-head graph attention layer.

    .. math::
        \alpha^{k}_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\big(
            \mathrm{LeakyReLU}(a_{dst}^{k\top} W^k x_i + a_{src}^{k\top} W^k x_j)\big), \qquad
        h_i = \sigma\Big(\mathrm{norm}\big(\big\Vert_{k} \textstyle\sum_{j \in \mathcal{N}(i)}
            \alpha^{k}_{ij} W^k x_j + R x_i + b\big)\Big)

    where :math:`\Vert` concatenates the heads (or averages them when ``concat=False``)
    and :math:`R` is the optional residual projection (identity when shapes match).
    Splitting :math:`a^\top [W x_i \Vert W x_j]` into two dot products is the same score,
    computed per node instead of per edge.

    Args:
        in_dim: input feature size.
        out_dim: output size per head.
        num_heads: attention heads.
        feat_drop: dropout on the input features (default: 0).
        attn_drop: dropout on the attention weights (default: 0).
        negative_slope: LeakyReLU slope of the scores (default: 0.2).
        residual: add a residual connection (default: False).
        activation: ``prelu | elu | relu | gelu | none`` (default: none).
        norm: ``none | layernorm | batchnorm`` (default: none).
        concat: concatenate the heads, else average them (default: True).
        bias: learn an additive bias (default: True).
        init: ``graphmae`` or ``reference``, how the attention vectors start (see
            :meth:`reset_parameters`; default: graphmae).

    Shapes:
        input ``[num_nodes, in_dim]``, output ``[num_nodes, num_heads * out_dim]`` if
        ``concat`` else ``[num_nodes, out_dim]``.
    """

    #: :meth:`forward` aggregates before projecting when at most ``1 / ROWS_FIRST_FRACTION``
    #: of the nodes are asked for (ego-graph centres); above that, the per-head aggregation
    #: in input space (sparse kernels, far below dense matmul throughput) costs more than
    #: the projection it saves (measured on Cora: no gain at one half).
    ROWS_FIRST_FRACTION = 8

    def __init__(self, in_dim: int, out_dim: int, num_heads: int = 1, feat_drop: float = 0.0,
                 attn_drop: float = 0.0, negative_slope: float = 0.2, residual: bool = False,
                 activation: Optional[str] = None, norm: Optional[str] = None,
                 concat: bool = True, bias: bool = True, init: str = "graphmae") -> None:
        super().__init__()
        if init not in ("graphmae", "reference"):
            raise ValueError(f"GATConv init={init!r} is not allowed; allowed: graphmae, reference")
        self.init = init
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.num_heads = num_heads
        self.feat_drop = feat_drop
        self.attn_drop = attn_drop
        self.negative_slope = negative_slope
        self.concat = concat
        self.weight = nn.Parameter(torch.empty(in_dim, num_heads * out_dim))
        self.att_src = nn.Parameter(torch.empty(num_heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(num_heads, out_dim))
        out_total = num_heads * out_dim if concat else out_dim
        if bias:
            self.bias = nn.Parameter(torch.empty(out_total))
        else:
            self.register_parameter("bias", None)
        self.residual = residual
        if residual and in_dim != num_heads * out_dim:
            self.res_weight = nn.Parameter(torch.empty(in_dim, num_heads * out_dim))
        else:
            self.register_parameter("res_weight", None)
        self.norm = make_norm(norm, out_total)
        self.act = make_activation(activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Xavier-normal weights with the ReLU gain :math:`g = \sqrt 2`:
        :math:`W, R \sim \mathcal N(0, g^2 \cdot 2 / (F_{in} + H D))`, zero bias. The
        attention vectors :math:`a \sim \mathcal N(0, \sigma^2)` with

        * ``graphmae``: :math:`\sigma = g \sqrt{2 / (H D + 1)}`, xavier on one
          ``[1, H*D]`` row;
        * ``reference`` (the official GraphMAE2 code and DGL, xavier on ``[1, H, D]``):
          :math:`\sigma = g \sqrt{2 / (H D + D)}`; 6 % smaller for 8 heads of 128,
          29 % for one head (the decoder).
        """
        gain = nn.init.calculate_gain("relu")
        std = gain * math.sqrt(2.0 / (self.in_dim + self.num_heads * self.out_dim))
        nn.init.normal_(self.weight, 0.0, std)
        h, d = self.num_heads, self.out_dim
        att_std = gain * math.sqrt(2.0 / (h * d + (d if self.init == "reference" else 1)))
        nn.init.normal_(self.att_src, 0.0, att_std)
        nn.init.normal_(self.att_dst, 0.0, att_std)
        if self.res_weight is not None:
            nn.init.normal_(self.res_weight, 0.0, std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def project(self, x: Tensor) -> Tensor:
        """Dropout then ``x W``: ``[N, in_dim] -> [N, heads * out_dim]`` (dense or
        :class:`~graphmae2.feature_rows.SparseRows` input)."""
        return feature_rows.project(x, self.weight, self.feat_drop, self.training)

    def scores(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-node halves of the attention score, ``a_src^T z`` and ``a_dst^T z``:
        ``[N, heads * out_dim] -> 2 x [N, heads]``."""
        h, d = self.num_heads, self.out_dim
        # One GEMM against a block-diagonal [H*D, H*2] matrix: no copies of z, unlike
        # an elementwise product or a per-head einsum.
        att = torch.stack([self.att_src, self.att_dst], -1)                    # (H, D, 2)
        eye = torch.eye(h, dtype=att.dtype, device=att.device).view(h, 1, h, 1)
        both = (z @ (att.unsqueeze(2) * eye).reshape(h * d, h * 2)).view(-1, h, 2)  # (N, H, 2)
        return both[..., 0], both[..., 1]

    def attention(self, graph: Graph, score_src: Tensor, score_dst: Tensor) -> Tensor:
        """Attention weights ``[E, heads]`` from the per-node score halves."""
        score = ops.gather_src(graph, score_src) + ops.gather_dst(graph, score_dst)  # (E, H)
        alpha = ops.segment_softmax(graph, F.leaky_relu(score, self.negative_slope))
        return dropout(alpha, self.attn_drop, self.training)

    def finish(self, out: Tensor, res: Optional[Tensor] = None) -> Tensor:
        """Residual, head merge, bias, norm and activation of aggregated ``[N, H, D]``."""
        n, h, d = out.shape
        if res is not None:
            out = out + res.view(n, h, d)
        out = out.reshape(n, h * d) if self.concat else out.mean(1)
        if self.bias is not None:
            out = out + self.bias
        return self.act(self.norm(out))

    def propagate(self, graph: Graph, z: Tensor, res: Optional[Tensor] = None) -> Tensor:
        """Attention and aggregation of projected features ``z [N, heads * out_dim]``,
        then :meth:`finish`."""
        alpha = self.attention(graph, *self.scores(z))
        out = ops.spmm(graph, z.view(z.shape[0], self.num_heads, self.out_dim), alpha)  # (N, H, D)
        return self.finish(out, res)

    def forward(self, graph: Graph, x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Output at every node, or only at ``rows`` (``[len(rows), ...]``) when given: a
        small set aggregates before projecting (:meth:`_forward_rows`), a large one
        projects every node but aggregates, normalises and activates only its rows.
        :class:`~graphmae2.feature_rows.KeptRows` input projects only its non-zero rows
        (:meth:`_forward_kept`)."""
        rows = None if rows is None else rows.to(self.weight.device)
        if rows is not None and isinstance(self.norm, nn.BatchNorm1d):  # statistics need every row
            return self.forward(graph, x)[rows]
        res = self._residual(x)
        if res is None and isinstance(x, feature_rows.KeptRows):
            return self._forward_kept(graph, x, rows)
        if rows is None:
            return self.propagate(graph, self.project(x), res)
        if res is None and isinstance(x, Tensor) and rows.numel() * self.ROWS_FIRST_FRACTION <= graph.num_nodes:
            return self._forward_rows(graph, x, rows)
        z = self.project(x)  # every source row is needed; aggregate only into rows
        src_score, dst_score = self.scores(z)
        sub = graph.in_edges(rows)
        alpha = self.attention(sub, src_score, dst_score[rows])
        out = ops.spmm(sub, z.view(z.shape[0], self.num_heads, self.out_dim), alpha)
        return self.finish(out, None if res is None else res[rows])

    def _residual(self, x: Tensor) -> Optional[Tensor]:
        if not self.residual:
            return None
        if self.res_weight is not None:
            return feature_rows.project(x, self.res_weight, self.feat_drop, self.training)
        if isinstance(x, Tensor):
            return dropout(x, self.feat_drop, self.training)
        raise ValueError("GATConv: an identity residual needs dense input features")

    def _forward_kept(self, graph: Graph, x: feature_rows.KeptRows, rows: Optional[Tensor]) -> Tensor:
        """:meth:`forward` for input that is zero outside ``x.rows`` (the decoder under
        fixed re-masking), never forming a ``[num_nodes, heads * out_dim]`` tensor.

        A zero row projects to zero, so its score halves are exactly 0 (it still takes
        part in every softmax it belongs to) and its messages add nothing: the aggregation
        runs over the edges from ``x.rows`` only, in the same order.
        """
        n, h, d = x.num_rows, self.num_heads, self.out_dim
        z = dropout(x.values, self.feat_drop, self.training) @ self.weight   # (K, H*D)
        src_kept, dst_kept = self.scores(z)                                      # (K, H) each
        src = src_kept.new_zeros(n, h).index_copy(0, x.rows, src_kept)           # (N, H)
        dst = src_kept.new_zeros(n, h).index_copy(0, x.rows, dst_kept)
        sub = graph if rows is None else graph.in_edges(rows)
        alpha = self.attention(sub, src, dst if rows is None else dst[rows])
        from_kept, edges = sub.from_sources(x.rows)
        out = ops.spmm(from_kept, z.view(-1, h, d), alpha[edges])               # (R, H, D)
        return self.finish(out)

    def _forward_rows(self, graph: Graph, x: Tensor, rows: Tensor) -> Tensor:
        """:meth:`forward` at ``rows`` only, aggregating before projecting.

        ``sum_j alpha_ij W^k x_j = W^k sum_j alpha_ij x_j`` and
        ``a^{k T} W^k x = (W^k a^k)^T x``, so scores come from ``x`` directly and the
        projection runs on ``len(rows)`` aggregated rows instead of on every node.
        """
        rows = rows.to(x.device)
        x = dropout(x, self.feat_drop, self.training)
        w = self.weight.view(self.in_dim, self.num_heads, self.out_dim)       # (F, H, D)
        att_src, att_dst = (w * self.att_src).sum(-1), (w * self.att_dst).sum(-1)  # (F, H) each
        sub = graph.in_edges(rows)
        alpha = self.attention(sub, x @ att_src, x[rows] @ att_dst)             # (E', H)
        agg = ops.spmm_shared(sub, x, alpha)                                    # (R, H, F)
        out = torch.bmm(agg.transpose(0, 1), w.transpose(0, 1)).transpose(0, 1)  # (R, H, D)
        return self.finish(out)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, {self.out_dim}, heads={self.num_heads})"


class GAT(nn.Module):
    """A stack of :class:`GATConv` layers, as GraphMAE2 uses for encoder and decoder.

    Hidden layers have ``num_heads`` heads of size ``hidden_dim`` (concatenated) and
    the activation, residual and norm. The last layer has ``num_out_heads`` heads of
    size ``out_dim``; it keeps activation/residual/norm only when ``encoding`` is true
    (an encoder's output is a representation, a decoder's is a reconstruction).

    Shapes:
        ``[num_nodes, in_dim] -> [num_nodes, num_out_heads * out_dim]`` (concat) or
        ``[num_nodes, out_dim]``; ``self.out_dim`` holds the output width.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int,
                 num_heads: int, num_out_heads: int, activation: str = "prelu",
                 feat_drop: float = 0.0, attn_drop: float = 0.0, negative_slope: float = 0.2,
                 residual: bool = False, norm: str = "none", concat_out: bool = True,
                 encoding: bool = True, init: str = "graphmae") -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        dim = in_dim
        for _ in range(num_layers - 1):
            self.layers.append(GATConv(dim, hidden_dim, num_heads, feat_drop, attn_drop,
                                       negative_slope, residual, activation, norm, init=init))
            dim = hidden_dim * num_heads
        self.layers.append(GATConv(
            dim, out_dim, num_out_heads, feat_drop, attn_drop, negative_slope,
            residual and encoding, activation if encoding else None,
            norm if encoding else None, concat=concat_out, init=init))
        self.out_dim = out_dim * num_out_heads if concat_out else out_dim

    def forward(self, graph: Graph, x: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """Output at every node, or only at ``rows`` (the last layer then computes just
        those rows; see :meth:`GATConv.forward`)."""
        for layer in self.layers[:-1]:
            x = layer(graph, x)
        return self.layers[-1](graph, x, rows)

    def forward_views(self, graph: Graph, x: Tensor, views: Sequence[Tensor], token: Tensor,
                      rows: Optional[Tensor] = None) -> List[Tensor]:
        """Outputs for several copies of ``x``, each with rows ``views[k]`` replaced by
        ``token``, without materialising the copies; at every node, or only at ``rows``
        (the last layer then aggregates into those rows only, as :meth:`forward`).

        Row replacement commutes with the first layer's projection and score halves, so
        ``x W``, ``token W`` and their scores are computed once. Per view, only the
        edge weights change: with ``m`` the replaced-row indicator,
        ``sum_e alpha_e z'_src = sum_e alpha_e (1 - m_src) z_src + (sum_e alpha_e m_src) z_token``.
        The views share one feature-dropout draw (each draws its own attention dropout).
        """
        first = self.layers[0]
        if first.residual:
            return [self(graph, feature_rows.replace_rows(x, nodes, token), rows) for nodes in views]
        n, h, d = x.shape[0], first.num_heads, first.out_dim
        last = len(self.layers) - 1
        first_rows = rows.to(x.device) if rows is not None and last == 0 else None
        sub = graph if first_rows is None else graph.in_edges(first_rows)
        z, z_token = first.project(x), first.project(token)                   # (N, HD), (1, HD)
        src, dst = first.scores(z)                                              # (N, H) each
        token_src, token_dst = first.scores(z_token)                            # (1, H) each
        outs = []
        for nodes in views:
            hidden = z.new_zeros(n, 1)                                          # (N, 1)
            hidden[nodes.to(z.device)] = 1.0
            dst_mixed = dst * (1 - hidden) + hidden * token_dst
            alpha = first.attention(sub, src * (1 - hidden) + hidden * token_src,
                                    dst_mixed if first_rows is None else dst_mixed[first_rows])  # (E', H)
            on_token = alpha * ops.gather_src(sub, hidden)                      # (E', H)
            out = ops.spmm(sub, z.view(n, h, d), alpha - on_token) \
                + ops.segment_sum(sub, on_token).unsqueeze(-1) * z_token.view(1, h, d)
            out = first.finish(out)
            for i, layer in enumerate(self.layers[1:], start=1):
                out = layer(graph, out, rows if i == last else None)
            outs.append(out)
        return outs
