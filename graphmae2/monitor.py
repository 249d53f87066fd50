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

SVDs run in float64 on the CPU: ``O(N D^2)``, about a second for Cora at ``D = 1024``,
so call :func:`collapse_stats` every few hundred steps, not every step.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Warn when the online effective rank is below this fraction of the embedding width.
RANK_FRACTION = 0.01

#: Warn when the embedding std is below ``STD_THRESHOLD / sqrt(D)``, i.e. below 10% of
#: the healthy random-direction scale ``1/sqrt(D)``. Why 0.1: rows spread evenly over
#: ``k`` of the ``D`` coordinate axes have a mean std of ``sqrt(k) / D = sqrt(k/D) /
#: sqrt(D)``, so 0.1 = sqrt(RANK_FRACTION) flags the same 1%-of-dimensions collapse as the
#: rank test, and it also flags rows that all crowd into one narrow cone. A healthy
#: 30-epoch Cora run at D = 64 measured 0.064 = 0.51/sqrt(D): five times the threshold.
STD_THRESHOLD = 0.1

STAT_KEYS = ("std", "eff_rank_online", "eff_rank_target", "param_cosine")

#: :func:`collapse_stats` also reports these, of the teacher's output (no warning on them
#: there; :func:`check_target_collapse` warns on the targets as the loss sees them).
TARGET_CONTEXT_KEYS = ("eff_rank_target_centred", "cos_to_mean_target")


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
        :data:`STAT_KEYS` and :data:`TARGET_CONTEXT_KEYS` (centred rank and cosine to the
        mean of ``target``).
    """
    return {"std": embedding_std(online), "eff_rank_online": effective_rank(online),
            "eff_rank_target": effective_rank(target), "param_cosine": parameter_cosine(student, teacher),
            "eff_rank_target_centred": centred_effective_rank(target),
            "cos_to_mean_target": cosine_to_mean(target)}


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
            f"teacher {stats['eff_rank_target']:.2f}; embedding std {stats['std']:.4f} "
            f"(warn below {std_floor:.4f}); teacher-student parameter cosine "
            f"{stats['param_cosine']:.4f}. Usually helps: raise model.mask_rate or model.remask_rate, "
            f"lower model.lam, or change ema.momentum (e.g. 0.99-0.999)")
