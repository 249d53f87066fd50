r"""GraphMAE2 (Hou et al., WWW 2023, https://arxiv.org/abs/2304.04779).

Two regularisers on top of masked feature reconstruction:

* multi-view random re-masking: the encoder output of every node is decoded
  ``num_remask`` times, each time with a fresh random ``remask_rate`` of nodes replaced
  by a learnable decoder token; the scaled cosine error (SCE) on the encoder-masked
  nodes is summed over views;
* latent prediction: a projector + predictor on the online encoder output must match an
  EMA teacher's projected representation of the *unmasked* graph (SCE, exponent 1,
  weight ``lam``), on the nodes the encoder saw unmasked (``latent_nodes: unmasked``)
  or on every node (``all``, as the authors' full-batch script does).

Latent targets (``model.latent_target``). Write :math:`p_i` for the prediction
``predictor(projector(h_i))`` of latent node :math:`i`, :math:`t_i` for the teacher's
``projector(encoder(x))_i`` and :math:`\mu, \sigma^2` for per-dimension mean and
(population) variance over the :math:`n` latent nodes of the step (the batch's, in
mini-batch mode). The loss is always :math:`\mathrm{SCE}_1(\tilde p, \tilde t) =
\mathrm{mean}_i\,(1 - \cos(\tilde p_i, \tilde t_i))`, with

* ``reference`` (default; GraphMAE2's): :math:`\tilde p = p,\ \tilde t = t`. The
  teacher's output can be dominated by the projector's bias, so every :math:`t_i` points
  the same way and the loss carries one direction, not node-level information;
* ``standardise``: :math:`\tilde z_{id} = (z_{id} - \mu_d(z)) / \sqrt{\sigma_d^2(z) +
  \epsilon}` for both :math:`z = p` and :math:`z = t` (no affine, :math:`\epsilon =`
  :data:`STANDARDISE_EPS`). Any component shared by all nodes is removed, so constant
  targets become :math:`\tilde t = 0` and give loss exactly 1 and no gradient;
* ``batchnorm`` (BYOL, Grill et al. 2020; BGRL, Thakoor et al. 2022): the projector is
  ``Linear -> BatchNorm1d -> PReLU -> Linear``; the BatchNorm always uses the statistics
  of the latent nodes it is given (``track_running_stats=False``, so student and teacher
  alike, in train and eval mode, and no buffers for the EMA to average);
* ``whiten`` (after W-MSE, Ermolov et al. 2021): :math:`\tilde p = ` ``standardise`` (p);
  the target is standardised, :math:`s = ` ``standardise`` (t), then decorrelated with a
  shrunk correlation matrix, :math:`C = s^\top s / n`, :math:`C_\alpha = (1 - \alpha) C
  + \alpha I = L L^\top` (Cholesky), :math:`\tilde t = s L^{-\top}` (:math:`\alpha =`
  ``model.whiten_shrinkage``). At :math:`\alpha = 0` the target's covariance is the
  identity, every direction equally weighted; :math:`\alpha > 0` keeps directions with
  correlation eigenvalue far below :math:`\alpha` damped (by about :math:`\lambda /
  \alpha`) instead of blowing noise up, and :math:`C_\alpha` positive definite when
  :math:`n <` hidden (mini-batches). No gradient flows through the target;
* ``centre`` (DINO, Caron et al. 2021): :math:`\tilde p = p,\ \tilde t_i = t_i - c` with
  a centre buffer :math:`c \leftarrow \lambda c + (1 - \lambda)\,\mu(t)` updated after
  each training forward (:math:`\lambda` = ``model.centre_momentum``, :math:`c_0 = 0`).
  A direction shared by all targets is subtracted once :math:`c` has caught up with it.

DDP: :math:`\mu, \sigma^2` (and :math:`C`) of ``standardise``, ``whiten`` and ``batchnorm``
are per rank, over that rank's latent nodes, as unsynchronised BatchNorm: gradients are
all-reduced, so parameters stay identical on every rank, and the objective depends on the
per-rank batch, not on the rank. The ``centre`` update all-reduces :math:`\mu(t)`, so
:math:`c` is the same on every rank (DDP's buffer broadcast would otherwise keep rank 0's).

Masks are drawn by the caller (see :mod:`graphmae2.trainer`) from named RNG streams and
passed in, so the model itself holds no randomness but dropout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from . import feature_rows
from .config import ModelConfig
from .graph import Graph
from .layers import GAT, GCN, build_network, eval_mode
from .masking import EncoderMask, input_rows, masked_input, token_rows

if TYPE_CHECKING:
    from .ema import EMATeacher


def sce_loss(pred: Tensor, target: Tensor, alpha: float) -> Tensor:
    r"""Scaled cosine error :math:`\mathrm{mean}_i (1 - \cos(p_i, t_i))^\alpha`."""
    dtype = torch.promote_types(pred.dtype, torch.float32)  # float32 under bf16 autocast too
    pred = F.normalize(pred.to(dtype), p=2, dim=-1)
    target = F.normalize(target.to(dtype), p=2, dim=-1)
    return (1.0 - (pred * target).sum(-1)).pow(alpha).mean()


#: :math:`\epsilon` of ``latent_target: standardise`` (BatchNorm's). A dimension whose
#: variance is far below it is divided by about :math:`\sqrt\epsilon` like every other
#: such dimension, not blown up to unit variance, so rounding noise stays small.
STANDARDISE_EPS = 1e-5


def standardise(z: Tensor, eps: float = STANDARDISE_EPS) -> Tensor:
    r"""Per-dimension standardisation over rows, no affine:
    :math:`(z_{id} - \mu_d) / \sqrt{\sigma_d^2 + \epsilon}`, ``[n, D] -> [n, D]`` float32.

    Mean and (population) variance are taken in float64, where the mean of a column of
    equal float32 values is that value exactly: a constant column maps to exactly 0.
    """
    z64 = z.double()
    mu = z64.mean(dim=0, keepdim=True)                                      # (1, D)
    centred = z64 - mu
    var = centred.pow(2).mean(dim=0, keepdim=True)                          # (1, D)
    return (centred * torch.rsqrt(var + eps)).float()


def whiten(z: Tensor, shrinkage: float) -> Tensor:
    r"""Standardise ``z`` ``[n, D]`` per dimension, then decorrelate it with the shrunk
    correlation matrix: :math:`s L^{-\top}` with :math:`(1 - \alpha)\,s^\top s / n +
    \alpha I = L L^\top`, ``[n, D]`` float32 (formula in the module docstring).

    The correlation matrix is a float32 product, its Cholesky factor and inverse are
    float64 (deterministic LAPACK/cuSOLVER calls, no atomics), and autocast is off here,
    so ``train.precision: bf16`` does not round the decorrelation.
    """
    with torch.autocast(z.device.type, enabled=False):
        s = standardise(z)                                                  # (n, D) float32
        n, dim = s.shape
        corr = (s.t() @ s).double() / n                                     # (D, D)
        eye = torch.eye(dim, dtype=torch.float64, device=s.device)
        factor, info = torch.linalg.cholesky_ex((1.0 - shrinkage) * corr + shrinkage * eye)
        if int(info) != 0:
            raise ValueError(f"model.latent_target=whiten: the target's correlation matrix over {n} latent nodes "
                             f"is singular (fewer nodes than its {dim} dimensions, or collinear ones) at "
                             f"model.whiten_shrinkage={shrinkage}; use a shrinkage above 0, e.g. 0.01")
        inverse = torch.linalg.solve_triangular(factor, eye, upper=False)  # L^{-1}
        return s @ inverse.t().float()


class GraphMAE2(nn.Module):
    """Online side of GraphMAE2: encoder, decoder, projector, predictor and tokens.

    The EMA teacher is a separate :class:`~graphmae2.ema.EMATeacher` over
    :meth:`ema_source` (encoder + projector), passed to :meth:`forward`.

    Args:
        in_dim: input feature size.
        cfg: the ``model`` section of the config.
    """

    def __init__(self, in_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.cfg = cfg
        hidden = cfg.num_hidden
        heads = cfg.num_heads if cfg.encoder == "gat" else 1
        per_head = hidden // heads
        self.encoder = build_network(
            cfg.encoder, in_dim=in_dim, hidden_dim=per_head, out_dim=per_head,
            num_layers=cfg.num_layers, num_heads=heads, num_out_heads=heads,
            activation=cfg.activation, feat_drop=cfg.in_drop, attn_drop=cfg.attn_drop,
            negative_slope=cfg.negative_slope, residual=cfg.residual, norm=cfg.norm,
            concat_out=True, encoding=True, init=cfg.init)
        self.decoder = build_network(
            cfg.decoder, in_dim=hidden, hidden_dim=hidden, out_dim=in_dim, num_layers=1,
            num_heads=cfg.num_out_heads, num_out_heads=cfg.num_out_heads,
            activation=cfg.activation, feat_drop=cfg.in_drop, attn_drop=cfg.attn_drop,
            negative_slope=cfg.negative_slope, residual=False, norm="none",
            concat_out=False, encoding=False, init=cfg.init)  # heads averaged: the output must be in_dim wide
        self.encoder_to_decoder = nn.Linear(hidden, hidden, bias=False)
        if cfg.latent_target == "batchnorm":
            self.projector = nn.Sequential(
                nn.Linear(hidden, cfg.projector_hidden),
                nn.BatchNorm1d(cfg.projector_hidden, track_running_stats=False),
                nn.PReLU(), nn.Linear(cfg.projector_hidden, hidden))
        else:
            self.projector = nn.Sequential(nn.Linear(hidden, cfg.projector_hidden), nn.PReLU(),
                                           nn.Linear(cfg.projector_hidden, hidden))
        self.predictor = nn.Sequential(nn.PReLU(), nn.Linear(hidden, hidden))
        # Exploit the decoder input's structure when the decoder projects through
        # ``feature_rows.project`` (GAT, GCN): under fixed re-masking only the kept rows are
        # non-zero, so only they are projected; under random re-masking a GAT decodes all
        # views from one shared projection. False decodes a dense copy per view, as a
        # direct transcription of the paper would (same loss, more work).
        self.fast_decode = isinstance(self.decoder, (GAT, GCN))
        self._sparse_cache: Optional[Tuple[Tensor, int, feature_rows.SparseRows]] = None
        self.enc_mask_token = nn.Parameter(torch.empty(1, in_dim))
        self.dec_mask_token = nn.Parameter(torch.empty(1, hidden))
        # Only ``centre`` has a centre; a None buffer leaves the others' state dicts as before.
        self.register_buffer("latent_centre", torch.zeros(hidden) if cfg.latent_target == "centre" else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Tokens start at zero: a masked node initially looks like an empty feature row (the
        official code's ``zero_init`` on Cora, CiteSeer and PubMed; it draws them
        xavier-normal, with ``encoder_to_decoder`` at gain 1.414, only on its other graphs);
        the ``centre`` target's centre starts at zero, as DINO's."""
        nn.init.zeros_(self.enc_mask_token)
        nn.init.zeros_(self.dec_mask_token)
        if self.latent_centre is not None:
            self.latent_centre.zero_()

    @property
    def out_dim(self) -> int:
        return self.encoder.out_dim

    def ema_source(self) -> nn.ModuleDict:
        """The modules the EMA teacher tracks (shared with this model, not copies)."""
        return nn.ModuleDict({"encoder": self.encoder, "projector": self.projector})

    def forward(self, graph: Graph, x: Union[Tensor, feature_rows.SparseRows], teacher: "EMATeacher", mask: EncoderMask,
                remasks: Sequence[Tensor], sparse_input: bool = False,
                latent_nodes: Optional[Tensor] = None, encoder_graph: Optional[Graph] = None,
                teacher_graph: Optional[Graph] = None) -> Dict[str, Tensor]:
        """Losses for one step.

        Args:
            graph: graph with self-loops.
            x: ``[N, F]`` input features, dense or (with ``sparse_input``)
                :class:`~graphmae2.feature_rows.SparseRows`.
            teacher: the EMA teacher of :meth:`ema_source`; its
                :meth:`~graphmae2.ema.EMATeacher.targets` are the latent targets.
            mask: the encoder mask for this step.
            remasks: node indices to re-mask, one tensor per decoding view (ignored for
                ``remask_method: fixed``).
            sparse_input: run the first projection as a sparse product (exact; pays off
                for sparse features on the CPU).
            latent_nodes: where the latent loss is taken (default: ``model.latent_nodes``,
                the nodes the encoder saw unmasked or all nodes; mini-batches pass the ego
                centres).
            encoder_graph: the graph the online encoder runs on (default ``graph``);
                ``teacher_graph`` the teacher's. Two DropEdge views of ``graph``
                (:func:`graphmae2.dropedge.edge_views`, ``model.drop_edge_rate``); the
                decoder always runs on ``graph``, as the reference's does.

        Returns:
            ``{"loss", "rec", "latent"}`` scalars; ``loss = rec + lam * latent``.
        """
        if isinstance(x, feature_rows.SparseRows) and not sparse_input:
            raise ValueError("GraphMAE2.forward: features given as SparseRows need sparse_input=True")
        dev = x.device
        mask_nodes, keep = mask.mask_nodes.to(dev), mask.keep_nodes.to(dev)
        if latent_nodes is not None:
            latent_rows: Optional[Tensor] = latent_nodes.to(dev)
        else:
            latent_rows = None if self.cfg.latent_nodes == "all" else keep      # None: every node
        enc_graph = graph if encoder_graph is None else encoder_graph
        # x~_i = [MASK] for a masked node i (or another node's features), x_i otherwise
        x_in = self.sparse_masked_input(x, mask) if sparse_input else self.masked_input(x, mask)  # (N, F)
        if self.cfg.remask_method == "fixed" and self.fast_decode:
            online, recons = self.encode_decode_kept_rows(graph, enc_graph, x_in, mask_nodes, keep, latent_rows)
        else:
            h = self.encoder(enc_graph, x_in)                                   # (N, hidden)
            online = h if latent_rows is None else h[latent_rows]               # (n, hidden)
            recons = self.decode_views(graph, self.encoder_to_decoder(h), mask, remasks)  # views x (|M|, F)
        # L_rec = sum over views v of SCE(x_M, x^_M^(v))
        target = feature_rows.rows_of(x, mask_nodes)                            # (|M|, F)
        rec = sum(sce_loss(r, target, self.cfg.alpha_l) for r in recons)

        # L_latent = SCE_1(predictor(projector(h)), projector_ema(encoder_ema(x))), on the latent rows
        if self.cfg.lam > 0:
            with torch.no_grad():
                teacher_in = self._sparse_features(x) if sparse_input else x
                latent_target = teacher.targets(graph if teacher_graph is None else teacher_graph,
                                                teacher_in, latent_rows)        # (n, hidden)
            latent = self.latent_loss(online, latent_target)
            if self.training and self.latent_centre is not None:
                self.update_centre_(latent_target)
        else:
            latent = rec.new_zeros(())
        return {"loss": rec + self.cfg.lam * latent, "rec": rec, "latent": latent}

    # ------------------------------------------------------------------ the plain path
    def masked_input(self, x: Tensor, mask: EncoderMask) -> Tensor:
        """The encoder input: token nodes get ``enc_mask_token``, noise nodes another node's
        features, the rest their own: ``[N, F] -> [N, F]``."""
        is_token = token_rows(x.shape[0], mask, x.device, x.dtype)             # (N, 1)
        return masked_input(x, mask) + is_token * self.enc_mask_token

    def decode_views(self, graph: Graph, rep: Tensor, mask: EncoderMask,
                     remasks: Sequence[Tensor]) -> List[Tensor]:
        """Reconstructions at the encoder-masked nodes, one per decoding view: view ``v``
        decodes ``rep [N, hidden]`` with its re-masked rows set to ``dec_mask_token``
        (``random``) or the encoder-masked rows set to zero (``fixed``, one view).
        Returns ``views x [|M|, F]``. With ``fast_decode`` a GAT decoder decodes all
        views from one shared projection (:meth:`GAT.forward_views`)."""
        mask_nodes = mask.mask_nodes.to(rep.device)
        if self.cfg.remask_method == "fixed":
            nodes, token = [mask.mask_nodes], torch.zeros_like(self.dec_mask_token)
        else:
            nodes, token = list(remasks), self.dec_mask_token
        if self.fast_decode and hasattr(self.decoder, "forward_views"):
            return self.decoder.forward_views(graph, rep, nodes, token, rows=mask_nodes)
        return [self.decoder(graph, feature_rows.replace_rows(rep, n, token))[mask_nodes] for n in nodes]

    # ------------------------------------------------------------------ fast paths
    def sparse_masked_input(self, x: Tensor, mask: EncoderMask) -> feature_rows.SparseRows:
        """:meth:`masked_input` as :class:`~graphmae2.feature_rows.SparseRows`, gathered from
        the cached sparse features in a few index operations (exact; the first layer's
        projection becomes a sparse product, far cheaper for ~1 % dense features)."""
        is_token = token_rows(x.shape[0], mask, x.device, x.dtype)             # (N, 1)
        return self._sparse_features(x).take_rows(input_rows(x.shape[0], mask), is_token, self.enc_mask_token)

    def encode_decode_kept_rows(self, graph: Graph, enc_graph: Graph, x_in: Tensor, mask_nodes: Tensor,
                                keep: Tensor, latent_rows: Optional[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """The plain path's ``(online, recons)`` for ``remask_method: fixed``, computing only
        what is read: the decoder input is zero at every encoder-masked node, so only the
        kept rows of the encoder output (and the latent rows, when those differ) are
        computed, projected (:class:`~graphmae2.feature_rows.KeptRows`) and decoded into the
        masked rows. One view, ``[|M|, F]``. ``latent_rows is keep`` (the object) when the
        latent loss is taken at the kept nodes: they are then encoded once."""
        if latent_rows is None:
            online = self.encoder(enc_graph, x_in)                              # (N, hidden)
            kept = online[keep]
        elif latent_rows is keep:
            online = kept = self.encoder(enc_graph, x_in, rows=keep)            # (|K|, hidden)
        else:
            enc = self.encoder(enc_graph, x_in, rows=torch.cat([keep, latent_rows]))
            kept, online = enc[:keep.numel()], enc[keep.numel():]
        rep = feature_rows.KeptRows(self.encoder_to_decoder(kept), keep, x_in.shape[0])
        return online, [self.decoder(graph, rep, rows=mask_nodes)]

    def latent_pair(self, online: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
        """``(prediction, target)`` as the latent loss compares them (``model.latent_target``,
        see the module docstring): ``online`` ``[n, hidden]`` encoder rows and the teacher's
        ``target`` ``[n, hidden]`` at the same latent nodes -> two ``[n, hidden]``."""
        pred = self.predictor(self.projector(online))
        kind = self.cfg.latent_target
        if kind == "standardise":
            return standardise(pred), standardise(target)
        if kind == "whiten":
            return standardise(pred), whiten(target.detach(), self.cfg.whiten_shrinkage)
        if kind == "centre":
            return pred, target.float() - self.latent_centre
        return pred, target

    def latent_loss(self, online: Tensor, target: Tensor) -> Tensor:
        r"""The latent-prediction loss :math:`\mathrm{SCE}_1` of :meth:`latent_pair`."""
        return sce_loss(*self.latent_pair(online, target), 1.0)

    @torch.no_grad()
    def update_centre_(self, target: Tensor) -> None:
        """``c <- lambda * c + (1 - lambda) * mean_i t_i`` (``latent_target: centre``); the
        batch mean is averaged over DDP ranks, so every rank holds the same centre."""
        if self.latent_centre is None:
            raise ValueError(f"update_centre_ needs model.latent_target=centre, "
                             f"got {self.cfg.latent_target!r}")
        mean = target.float().mean(dim=0)                                       # (hidden,)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        lam = self.cfg.centre_momentum
        self.latent_centre.mul_(lam).add_(mean * (1.0 - lam))

    def _sparse_features(self, x: Tensor) -> feature_rows.SparseRows:
        """``SparseRows`` of ``x`` (the teacher's input, and the source of the masked
        input's rows), built once per feature tensor; ``x`` itself if it is one already
        (mini-batches gathered from sparse features)."""
        if isinstance(x, feature_rows.SparseRows):
            return x
        cached = self._sparse_cache
        if cached is None or cached[0] is not x or cached[1] != x._version:
            self._sparse_cache = (x, x._version, feature_rows.SparseRows.from_dense(x))
        return self._sparse_cache[2]

    @torch.no_grad()
    def encode(self, graph: Graph, x: Tensor) -> Tensor:
        """Encoder output on the unmasked graph, in eval mode: ``[N, F] -> [N, hidden]``."""
        with eval_mode(self):
            return self.encoder(graph, x)
