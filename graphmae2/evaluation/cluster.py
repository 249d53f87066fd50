"""Node clustering: k-means on the embeddings, scored against the labels by NMI and ARI."""
from __future__ import annotations

import logging
from typing import Dict, Union

import numpy as np
import torch
from torch import Tensor

from ..seeding import derive_seed
from .checks import check_embeddings, check_labels, check_positive_int

_logger = logging.getLogger(__name__)


def cluster(embeddings: Tensor, labels: Tensor, num_classes: int, *, seed: int,
            n_init: int = 10) -> Dict[str, Union[float, int]]:
    """K-means with ``num_classes`` clusters over all nodes; NMI and ARI against ``labels``.

    Rows are L2-normalised first (zero rows stay zero): GraphMAE2 trains with a cosine
    error, so the direction of an embedding carries the signal and its norm mostly
    does not; without this, a few large-norm nodes dominate the k-means objective.

    K-means runs single-threaded with ``random_state = derive_seed(seed, "probe",
    "kmeans") % 2**32``: scikit-learn's multi-threaded Lloyd step sums per-thread
    partial centres in completion order, which can change the last bits and, near a
    tie, an assignment; one thread makes repeated calls bitwise identical.

    Nodes with a negative (missing) label are clustered but left out of the scores.

    Returns:
        ``{"nmi", "ari", "n_init", "seed"}`` so reports state how the numbers were made.

    Raises:
        ValueError: on mis-shaped or non-finite embeddings, bad labels, or
            ``num_classes`` / ``n_init`` outside ``[1, num_nodes]`` / ``>= 1``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from threadpoolctl import threadpool_limits

    n_init = check_positive_int("n_init", n_init)
    num_classes = check_positive_int("num_classes", num_classes)
    num_nodes = embeddings.shape[0] if embeddings.dim() >= 1 else 0
    check_embeddings(embeddings, num_nodes)
    if num_classes > num_nodes:
        raise ValueError(f"num_classes={num_classes} exceeds the number of nodes ({num_nodes}); "
                         f"k-means needs at least one node per cluster")
    y = check_labels(labels, num_nodes).cpu().numpy()

    z = embeddings.detach().to("cpu", torch.float64).numpy()
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.where(norms > 0, norms, 1.0)

    random_state = derive_seed(seed, "probe", "kmeans") % 2**32
    kmeans = KMeans(n_clusters=num_classes, n_init=n_init, random_state=random_state)
    with threadpool_limits(limits=1):
        pred = kmeans.fit_predict(z)
    labelled = y >= 0
    if not labelled.any():
        raise ValueError("labels has no non-negative entry; nothing to score the clusters against")
    y, pred = y[labelled], pred[labelled]
    out = {"nmi": float(normalized_mutual_info_score(y, pred)),
           "ari": float(adjusted_rand_score(y, pred)), "n_init": n_init, "seed": int(seed)}
    _logger.info("cluster: nmi=%.4f ari=%.4f (k=%d, n_init=%d)", out["nmi"], out["ari"],
                 num_classes, n_init)
    return out
