"""Collapse monitor: is the latent branch squeezing the embeddings into a few directions?

The latent-prediction loss matches the online encoder to an EMA teacher. With a badly
tuned ``ema.momentum`` (or a large ``model.lam``) both can agree on a constant or
low-dimensional output, which makes that loss small while the embeddings become useless.
Three cheap signals catch it:

* **effective rank** (Roy & Vetterli, 2007): ``exp(H(p))`` with ``p_i = s_i / sum_j s_j``
  over the singular values of the ``N x D`` embedding matrix; ``D`` for an isotropic
  cloud, ``k`` for ``k`` equal directions, 1 for a rank-one (e.g. constant) output;
* **embedding std** (as in SimSiam, Chen & He 2021): the per-dimension std across nodes
  of the L2-normalised rows, averaged over dimensions; ``~1/sqrt(D)`` when the rows point
  in random directions, 0 when they all point the same way;
* **teacher-student parameter cosine**: near 1 means the teacher tracks the student
  closely (small momentum); it is reported for context, not used to warn.

The latent targets can collapse on their own while the online embeddings stay healthy:
GraphMAE2's teacher output is often dominated by its projector's bias, so every node's
target points the same way (uncentred rank ~1, cosine to the mean target ~1) and the
latent loss teaches one direction. :func:`latent_stats` measures that on the pair the
loss compares (:meth:`~graphmae2.model.GraphMAE2.latent_pair`):

* **centred effective rank** (:func:`centred_effective_rank`): the effective rank of
  the rows minus their mean, i.e. of how the targets *differ* between nodes;
* **cosine to the mean** (:func:`cosine_to_mean`);
* **teacher information** (:func:`teacher_information`): ``1 - cos(g, g_mean)`` between
  the latent loss's gradient on the encoder parameters with the real targets (``g``) and
  with every target replaced by their mean (``g_mean``). 0 means the teacher passes only
  the mean direction; larger means node-level information reaches the encoder.

:func:`check_target_collapse` warns on the first two.

SVDs run in float64 on the CPU: ``O(N D^2)``, about a second for Cora at ``D = 1024``,
so call :func:`collapse_stats` every few hundred steps, not every step.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import eval_mode

if TYPE_CHECKING:
    from .ema import EMATeacher
    from .graph import Graph
    from .model import GraphMAE2

#: Warn when the online effective rank is below this fraction of the embedding width.
RANK_FRACTION = 0.01

#: Warn when the embedding std is below ``STD_THRESHOLD / sqrt(D)``, i.e. below 10% of
#: the healthy random-direction scale ``1/sqrt(D)``. Why 0.1: rows spread evenly over
#: ``k`` of the ``D`` coordinate axes have a mean std of ``sqrt(k) / D = sqrt(k/D) /
#: sqrt(D)``, so 0.1 = sqrt(RANK_FRACTION) flags the same 1%-of-dimensions collapse as the
#: rank test, and it also flags rows that all crowd into one narrow cone. A healthy
#: 30-epoch Cora run at D = 64 measured 0.064 = 0.51/sqrt(D): five times the threshold.
STD_THRESHOLD = 0.1

STAT_KEYS = ("std", "eff_rank_online", "teacher_eff_rank", "param_cosine")

#: :func:`collapse_stats` also reports these, of the teacher's own output (``teacher_*``:
#: no warning on them; :func:`check_target_collapse` warns on ``target_*``, the targets as
#: the latent loss compares them, after ``model.latent_target``).
TEACHER_OUTPUT_KEYS = ("teacher_eff_rank_centred", "teacher_cos_to_mean")

#: Warn when the centred effective rank of the latent targets is below this fraction of
#: their width. Measured on Cora (1024 wide, 100 epochs, docs/teacher.md): the
#: reference target's centred rank is 3-9 from epoch 25 on (0.3-0.9 %); in the first
#: epochs it is ~150, and the cosine test below catches those.
TARGET_RANK_FRACTION = 0.01

#: Warn when the mean cosine of the targets to their mean exceeds this: the targets then
#: share one direction and differ by less than ``sqrt(1 - 0.99**2) ~ 14 %`` of their norm
#: (the reference's measured 0.9997 is 2.4 %).
TARGET_COSINE = 0.99

#: What :func:`target_stats` returns (``pred_*`` the same for the predictions).
TARGET_STAT_KEYS = ("target_eff_rank", "target_eff_rank_centred", "target_cos_to_mean",
                    "pred_eff_rank", "pred_eff_rank_centred", "pred_cos_to_mean")


def _matrix(z: Tensor, name: str) -> Tensor:
    """``z`` as a float64 CPU ``(N, D)`` matrix, detached; other shapes are an error."""
    if z.dim() != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty (num_nodes, dim) matrix, got shape {tuple(z.shape)}")
    return z.detach().to("cpu", torch.float64)


def effective_rank(z: Tensor) -> float:
    """``exp`` of the Shannon entropy of the normalised singular values of ``z`` (N x D).

    Between 1 and ``min(N, D)``; exactly ``k`` when ``z`` has ``k`` equal non-zero
    singular values. An all-zero matrix has effective rank 0.
    """
    s = torch.linalg.svdvals(_matrix(z, "effective_rank"))              # (min(N, D),)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def centred_effective_rank(z: Tensor) -> float:
    """:func:`effective_rank` of ``z`` minus its mean row: the number of directions in
    which the rows *differ*. A matrix of constant rows plus small noise has uncentred
    rank near 1 (the shared direction dominates) and a centred rank set by the noise;
    constant rows have centred rank 0."""
    m = _matrix(z, "centred_effective_rank")
    return effective_rank(m - m.mean(dim=0, keepdim=True))


def cosine_to_mean(z: Tensor) -> float:
    """Mean over rows of ``cos(z_i, mean_j z_j)``: 1 when every row points the way of the
    mean row (collapsed to one direction), about 0 for rows centred at the origin.
    0 when the mean row is zero."""
    m = _matrix(z, "cosine_to_mean")
    centre = m.mean(dim=0)                                                # (D,)
    return float(F.cosine_similarity(m, centre.expand_as(m), dim=1).mean())


def embedding_std(z: Tensor) -> float:
    """Mean over dimensions of the std across nodes of the L2-normalised rows of ``z``.

    0 when every row points the same way; about ``1/sqrt(D)`` for random directions.
    Population std (ddof=0); all-zero rows stay zero.
    """
    unit = F.normalize(_matrix(z, "embedding_std"), p=2, dim=1)         # (N, D)
    return float(unit.std(dim=0, correction=0).mean())


def parameter_cosine(a: nn.Module, b: nn.Module) -> float:
    """Cosine similarity of the concatenated floating parameters of ``a`` and ``b``.

    Parameters are matched by name (teacher vs student). If either vector is all zeros
    the cosine is undefined: 1.0 is returned when the two are equal, else 0.0.

    Raises:
        ValueError: the modules' floating parameter names differ (the first few named).
    """
    pa = {n: p for n, p in a.named_parameters() if p.is_floating_point()}
    pb = {n: p for n, p in b.named_parameters() if p.is_floating_point()}
    if pa.keys() != pb.keys():
        odd = sorted(set(pa) ^ set(pb))
        raise ValueError(f"parameter_cosine: the modules differ in parameters {odd[:5]}; "
                         f"compare a teacher with the student it was copied from")
    if not pa:
        raise ValueError("parameter_cosine: the modules have no floating-point parameters")
    va = torch.cat([pa[n].detach().to("cpu", torch.float64).flatten() for n in pa])
    vb = torch.cat([pb[n].detach().to("cpu", torch.float64).flatten() for n in pa])
    norms = va.norm() * vb.norm()
    if norms == 0:
        return 1.0 if torch.equal(va, vb) else 0.0
    return float(va @ vb / norms)


def collapse_stats(online: Tensor, target: Tensor, student: nn.Module,
                   teacher: nn.Module) -> Dict[str, float]:
    """All monitor signals for one step.

    Args:
        online: ``(N, D)`` student encoder output.
        target: ``(N, D')`` teacher output for the same nodes.
        student: the modules the teacher tracks (``model.ema_source()``).
        teacher: the teacher's copy of them (``EMATeacher.module``).

    Returns:
        :data:`STAT_KEYS` and :data:`TEACHER_OUTPUT_KEYS` (centred rank and cosine to the
        mean of ``target``).
    """
    return {"std": embedding_std(online), "eff_rank_online": effective_rank(online),
            "teacher_eff_rank": effective_rank(target), "param_cosine": parameter_cosine(student, teacher),
            "teacher_eff_rank_centred": centred_effective_rank(target),
            "teacher_cos_to_mean": cosine_to_mean(target)}


def target_stats(pred: Tensor, target: Tensor) -> Dict[str, float]:
    """Rank and direction statistics of latent predictions and targets.

    Args:
        pred: ``(n, D)`` predictions at the latent nodes, as the loss compares them.
        target: ``(n, D)`` targets at the same nodes, as the loss compares them.

    Returns:
        :data:`TARGET_STAT_KEYS`: for each of ``target`` and ``pred`` the uncentred and
        centred effective rank and the mean cosine to its mean row.
    """
    if pred.shape != target.shape:
        raise ValueError(f"target_stats: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         f"must have the same shape (the same latent nodes)")
    out: Dict[str, float] = {}
    for name, z in (("target", target), ("pred", pred)):
        out[f"{name}_eff_rank"] = effective_rank(z)
        out[f"{name}_eff_rank_centred"] = centred_effective_rank(z)
        out[f"{name}_cos_to_mean"] = cosine_to_mean(z)
    return out


def _flat_grad(loss: Tensor, params: list, retain_graph: bool) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).detach().to("cpu", torch.float64).flatten()
                      for p, g in zip(params, grads)])


def teacher_information(model: "GraphMAE2", teacher: "EMATeacher", graph: "Graph", x: Tensor,
                        rows: Optional[Tensor] = None) -> float:
    r"""How much more than the mean target the teacher tells the encoder.

    :math:`1 - \cos(g, \bar g)` with :math:`g = \nabla_\theta L(p, t)` and
    :math:`\bar g = \nabla_\theta L(p, \bar t)`, :math:`\theta` the encoder's parameters,
    :math:`L` the latent loss (:meth:`~graphmae2.model.GraphMAE2.latent_loss`, so the
    ``model.latent_target`` transform included), :math:`t` the teacher's targets at
    ``rows`` (default: every node) and :math:`\bar t` their mean row repeated. Both
    gradients share the encoder's Jacobian, so 0 means the real targets move the encoder
    exactly as one shared target would. Computed exactly (not from a cheaper proxy such
    as the gradient on the encoder output, whose cosine need not equal this one): one
    encoder forward and two backward passes on the unmasked graph, about one training
    step, paid every ``train.monitor_every`` epochs. Student and teacher run in eval
    mode (no dropout, no draw from any RNG) and are put back in their modes.

    When :math:`\bar g = 0` (e.g. ``latent_target: standardise``, where a shared target
    standardises to 0) the result is 1 if :math:`g \ne 0`, and 0 when both vanish.
    """
    with eval_mode(model, teacher.module):
        params = [p for p in model.encoder.parameters() if p.requires_grad]
        with torch.enable_grad():
            enc = model.encoder(graph, x, rows=rows)                               # (n, hidden)
            target = teacher.targets(graph, x, rows)                               # (n, hidden)
            shared = target.mean(dim=0, keepdim=True).expand_as(target)
            g = _flat_grad(model.latent_loss(enc, target), params, retain_graph=True)
            g_mean = _flat_grad(model.latent_loss(enc, shared), params, retain_graph=False)
    norms = g.norm() * g_mean.norm()
    if norms == 0:
        return 0.0 if g.norm() == 0 else 1.0
    return float(1.0 - g @ g_mean / norms)


@torch.no_grad()
def latent_stats(model: "GraphMAE2", teacher: "EMATeacher", graph: "Graph", x: Tensor,
                 rows: Optional[Tensor] = None) -> Dict[str, float]:
    """:func:`target_stats` of the latent pair the loss compares, and
    ``teacher_information``, on the unmasked graph at ``rows`` (default: every node;
    mini-batches pass the batch's latent nodes), both networks in eval mode.

    Returns:
        :data:`TARGET_STAT_KEYS` and ``"teacher_information"``.
    """
    with eval_mode(model, teacher.module):
        online = model.encoder(graph, x, rows=rows)                                # (n, hidden)
        pred, target = model.latent_pair(online, teacher.targets(graph, x, rows))
    return {**target_stats(pred, target),
            "teacher_information": teacher_information(model, teacher, graph, x, rows)}


#: Monitor values a run reports once more at the top level of its ``result.json`` (the last
#: monitor record's), so sweep tables carry them as columns (mean ± std over seeds).
SWEEP_KEYS = ("target_eff_rank_centred", "target_cos_to_mean", "teacher_information")


def final_stats(records: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """The :data:`SWEEP_KEYS` of the last monitor record that has them (``{}`` if none)."""
    for record in reversed(records):
        if all(k in record for k in SWEEP_KEYS):
            return {k: float(record[k]) for k in SWEEP_KEYS}
    return {}


def check_target_collapse(stats: Mapping[str, float], dim: int, epoch: int) -> Optional[str]:
    """One warning line if the latent targets have collapsed at ``epoch``, else None.

    Collapsed means a centred effective rank below ``TARGET_RANK_FRACTION * dim`` or a
    mean cosine to the mean target above :data:`TARGET_COSINE`.

    Args:
        stats: :func:`target_stats` or :func:`latent_stats` output.
        dim: the target width.
        epoch: named in the message.

    Raises:
        ValueError: ``dim < 1`` or ``stats`` lacks a target key.
    """
    if dim < 1:
        raise ValueError(f"check_target_collapse: dim={dim} must be >= 1 (the target width)")
    need = ("target_eff_rank", "target_eff_rank_centred", "target_cos_to_mean")
    missing = [k for k in need if k not in stats]
    if missing:
        raise ValueError(f"check_target_collapse: stats lack {', '.join(missing)}; pass target_stats(...)")
    floor = TARGET_RANK_FRACTION * dim
    rank, cos = stats["target_eff_rank_centred"], stats["target_cos_to_mean"]
    if rank >= floor and cos <= TARGET_COSINE:
        return None
    info = stats.get("teacher_information")
    info_text = ("" if info is None
                 else f"; teacher information {info:.4f} (0: only the mean target reaches the encoder)")
    return (f"latent targets collapsed at epoch {epoch}: centred effective rank {rank:.2f} of {dim} "
            f"(warn below {floor:.2f}), uncentred {stats['target_eff_rank']:.2f}; cosine to the mean "
            f"target {cos:.4f} (warn above {TARGET_COSINE}){info_text}. The teacher passes little more "
            f"than one direction. Usually helps: model.latent_target=standardise (or batchnorm, centre); "
            f"then ema.momentum matters: sweep it on validation (--sweep ema.momentum=0,0.9,0.99,0.996,0.999)")


def std_threshold(dim: int) -> float:
    """The embedding-std warning level for width ``dim``: ``STD_THRESHOLD / sqrt(dim)``."""
    return STD_THRESHOLD / math.sqrt(dim)


def check_collapse(stats: Mapping[str, float], dim: int, epoch: int) -> Optional[str]:
    """One warning line if the online embeddings look collapsed at ``epoch``, else None.

    Collapsed means an effective rank below ``RANK_FRACTION * dim`` or an embedding std
    below :func:`std_threshold` ``(dim)``.

    Raises:
        ValueError: ``dim < 1`` or ``stats`` lacks one of :data:`STAT_KEYS`.
    """
    if dim < 1:
        raise ValueError(f"check_collapse: dim={dim} must be >= 1 (the embedding width)")
    missing = [k for k in STAT_KEYS if k not in stats]
    if missing:
        raise ValueError(f"check_collapse: stats lack {', '.join(missing)}; pass collapse_stats(...)")
    rank_floor, std_floor = RANK_FRACTION * dim, std_threshold(dim)
    if stats["eff_rank_online"] >= rank_floor and stats["std"] >= std_floor:
        return None
    return (f"possible representation collapse at epoch {epoch}: "
            f"effective rank {stats['eff_rank_online']:.2f} of {dim} (warn below {rank_floor:.2f}), "
            f"teacher {stats['teacher_eff_rank']:.2f}; embedding std {stats['std']:.4f} "
            f"(warn below {std_floor:.4f}); teacher-student parameter cosine "
            f"{stats['param_cosine']:.4f}. Usually helps: raise model.mask_rate or model.remask_rate, "
            f"lower model.lam, or change ema.momentum (e.g. 0.99-0.999)")
