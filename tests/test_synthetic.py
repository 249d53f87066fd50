"""Tests for graphmae2.datasets.synthetic: sizes, reproducibility, homophily, features, split."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphmae2.datasets.synthetic import _InverseCdf, synthetic_graph


def _edge_homophily(ds) -> float:
    src, dst = ds.graph.edges()
    off = src != dst
    return float((ds.y[src[off]] == ds.y[dst[off]]).float().mean())


def test_synthetic_graph_has_requested_sizes() -> None:
    ds = synthetic_graph(500, 2000, num_classes=5, num_features=32, seed=1)
    assert (ds.num_nodes, ds.num_features, ds.num_classes) == (500, 32, 5)
    assert ds.graph.num_edges == 2 * 2000 + 500  # both directions, one self-loop per node
    assert torch.bincount(ds.y).tolist() == [100] * 5  # balanced classes
    assert [int(m.sum()) for m in (ds.train_mask, ds.val_mask, ds.test_mask)] == [50, 50, 400]
    no_loops = synthetic_graph(500, 2000, num_classes=5, num_features=32, seed=1, self_loops=False)
    assert no_loops.graph.num_edges == 4000


def test_synthetic_graph_is_reproducible_from_its_seed() -> None:
    a, b = synthetic_graph(300, 1200, seed=7), synthetic_graph(300, 1200, seed=7)
    c = synthetic_graph(300, 1200, seed=8)
    assert a.graph.digest() == b.graph.digest() and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.equal(a.train_mask, b.train_mask)
    assert a.graph.digest() != c.graph.digest()


def test_feature_settings_do_not_move_the_graph() -> None:
    a = synthetic_graph(300, 1200, num_features=16, feature_density=0.1, seed=3)
    b = synthetic_graph(300, 1200, num_features=64, feature_density=0.3, seed=3)
    assert a.graph.digest() == b.graph.digest() and torch.equal(a.y, b.y)


@pytest.mark.parametrize("homophily", [0.2, 0.9])
def test_edge_homophily_is_near_the_requested_value(homophily: float) -> None:
    ds = synthetic_graph(3000, 15000, num_classes=4, homophily=homophily, seed=0)
    assert abs(_edge_homophily(ds) - homophily) < 0.03


def test_features_are_sparse_binary_and_class_correlated() -> None:
    ds = synthetic_graph(2000, 4000, num_classes=4, num_features=64, feature_density=0.1, seed=0)
    x = ds.x.numpy()
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    assert abs(x.mean() - 0.1) < 0.02  # about feature_density, a little less from repeats
    means = np.stack([x[ds.y.numpy() == c].mean(0) for c in range(4)])  # [C, F]
    # Each class's preferred 16 dimensions are on about 4 times as often as the rest.
    top = np.sort(means, axis=1)[:, -16:].mean(1)
    rest = np.sort(means, axis=1)[:, :-16].mean(1)
    assert (top > 3 * rest).all()


def test_degrees_are_heavy_tailed() -> None:
    ds = synthetic_graph(5000, 25000, power_law_exponent=2.2, seed=0, self_loops=False)
    deg = ds.graph.in_degrees().numpy()
    assert deg.max() > 10 * np.median(deg)


def test_inverse_cdf_matches_searchsorted() -> None:
    rng = np.random.default_rng(0)
    w = rng.pareto(1.5, 1000) + 1.0
    cdf = _InverseCdf(w)
    q = np.concatenate([[0.0, cdf.cum[0], cdf.cum[-1]], rng.random(5000) * cdf.cum[-1]])
    assert np.array_equal(cdf.index(q), np.searchsorted(cdf.cum, q, side="right"))


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="homophily must be in"):
        synthetic_graph(100, 200, homophily=1.5)
    with pytest.raises(ValueError, match="power_law_exponent must be > 2"):
        synthetic_graph(100, 200, power_law_exponent=2.0)
    with pytest.raises(ValueError, match=r"num_edges must be in \[0, 1237\]"):
        synthetic_graph(100, 5000)
