"""Tests for graphmae2.sampling: push-method PPR against a dense solve, ego-graph order,
batch/worker invariance and the on-disk cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphmae2.graph import Graph
from graphmae2.sampling import EgoGraphs, approximate_ppr, cache_key, ego_graphs
from graphmae2.sampling import ppr as ppr_mod


def _undirected(edges, num_nodes: int) -> Graph:
    e = torch.tensor(edges)
    return Graph.from_edges(e[:, 0], e[:, 1], num_nodes).symmetrize()


@pytest.fixture
def barbell() -> Graph:
    """Two 4-cliques {0..3} and {5..8} joined through node 4, plus a tail 8-9."""
    clique = lambda a: [(a + i, a + j) for i in range(4) for j in range(i + 1, 4)]  # noqa: E731
    return _undirected(clique(0) + clique(5) + [(3, 4), (4, 5), (8, 9)], 10).add_self_loops()


def _exact_ppr(graph: Graph, alpha: float) -> np.ndarray:
    """``[N, N]`` row s = PPR of seed s, from ``pi (I - (1 - alpha) D^-1 A) = alpha e_s``."""
    n = graph.num_nodes
    a = np.zeros((n, n))
    src, dst = (t.numpy() for t in graph.edges())
    a[dst, src] = 1.0  # walks go from a node to the sources of its incoming edges
    w = a / np.maximum(a.sum(1, keepdims=True), 1)
    return alpha * np.linalg.inv(np.eye(n) - (1 - alpha) * w)


def _dense(indptr: np.ndarray, nodes: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((indptr.size - 1, n))
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    out[rows, nodes] = scores
    return out


@pytest.mark.parametrize("eps", [1e-2, 1e-4])
def test_approximate_ppr_error_within_eps_times_degree(random_graph: Graph, eps: float) -> None:
    exact = _exact_ppr(random_graph, 0.15)
    approx = _dense(*approximate_ppr(random_graph, eps=eps), random_graph.num_nodes)
    err = exact - approx
    deg = random_graph.in_degrees().numpy()
    assert err.min() >= -1e-12
    assert (err <= eps * deg[None, :] + 1e-12).all()
    assert err.max() > 0  # the bound is exercised, not trivially met by an exact solve


def test_approximate_ppr_nodes_ascend_per_seed(barbell: Graph) -> None:
    indptr, nodes, _ = approximate_ppr(barbell, seeds=[0, 9], eps=1e-3)
    for i in range(2):
        row = nodes[indptr[i]:indptr[i + 1]]
        assert (np.diff(row) > 0).all()


def test_ego_graph_top_k_matches_exact_ppr_where_scores_are_separated(random_graph: Graph) -> None:
    eps, k = 1e-5, 6
    exact = _exact_ppr(random_graph, 0.15)
    slack = eps * random_graph.in_degrees().numpy().max()
    ego = ego_graphs(random_graph, k=k, eps=eps, progress=False)
    checked = 0
    for s in range(random_graph.num_nodes):
        others = np.delete(np.arange(random_graph.num_nodes), s)
        ranked = others[np.argsort(-exact[s, others], kind="stable")]
        gap = exact[s, ranked[k - 2]] - exact[s, ranked[k - 1]]
        if gap > 2 * slack:
            assert set(ego[s][1:].tolist()) == set(ranked[:k - 1].tolist())
            checked += 1
    assert checked > random_graph.num_nodes // 2


def test_ego_graph_starts_with_its_seed_and_has_at_most_k_distinct_nodes(barbell: Graph) -> None:
    seeds = np.array([4, 0, 9, 9])
    ego = ego_graphs(barbell, seeds=seeds, k=5, progress=False)
    assert isinstance(ego, EgoGraphs) and len(ego) == 4
    assert ego.indptr.dtype == np.int64 and ego.nodes.dtype == np.int32  # node_dtype: half of int64
    assert ego.seeds.tolist() == seeds.tolist()
    for i in range(len(ego)):
        assert ego[i][0] == seeds[i]
        assert len(set(ego[i].tolist())) == ego[i].size <= 5


def test_ego_graph_of_barbell_end_stays_in_its_clique(barbell: Graph) -> None:
    ego = ego_graphs(barbell, seeds=[0], k=4, eps=1e-6, progress=False)
    assert ego[0].tolist() == [0, 3, 1, 2]  # 3 (the bridge end, degree 5) scores highest


def test_degree_rank_prefers_low_degree_nodes_over_the_bridge(barbell: Graph) -> None:
    # With self-loops nodes 3, 5 and 8 have degree 5, the other clique nodes 4.
    kw = dict(seeds=[0, 9], k=4, eps=1e-6, progress=False)
    score, degree = ego_graphs(barbell, **kw), ego_graphs(barbell, rank="degree", **kw)
    assert score[0].tolist() == [0, 3, 1, 2] and degree[0].tolist() == [0, 1, 2, 3]
    assert score[1].tolist() == [9, 8, 5, 6] and degree[1].tolist() == [9, 8, 6, 7]


def test_degree_rank_matches_exact_ppr_over_degree_where_separated(random_graph: Graph) -> None:
    eps, k = 1e-5, 6
    deg = random_graph.in_degrees().numpy()
    weight = np.minimum(1.0, 1.0 / np.maximum(deg, 1))
    exact = _exact_ppr(random_graph, 0.15) * weight[None, :]
    slack = eps  # the score's error eps * deg(v), times the weight 1 / deg(v)
    ego = ego_graphs(random_graph, k=k, eps=eps, progress=False, rank="degree")
    checked = 0
    for s in range(random_graph.num_nodes):
        others = np.delete(np.arange(random_graph.num_nodes), s)
        ranked = others[np.argsort(-exact[s, others], kind="stable")]
        if exact[s, ranked[k - 2]] - exact[s, ranked[k - 1]] > 2 * slack:
            assert set(ego[s][1:].tolist()) == set(ranked[:k - 1].tolist())
            checked += 1
    assert checked > random_graph.num_nodes // 2


def test_degree_rank_is_bitwise_the_same_for_any_batch_and_worker_count(random_graph: Graph) -> None:
    one = ego_graphs(random_graph, k=8, progress=False, rank="degree", batch_size=1)
    two = ego_graphs(random_graph, k=8, progress=False, rank="degree", batch_size=5, workers=2)
    assert np.array_equal(one.indptr, two.indptr) and np.array_equal(one.nodes, two.nodes)


def test_ego_graph_ties_go_to_smaller_node_id() -> None:
    star = _undirected([(0, leaf) for leaf in range(1, 8)], 8)
    assert ego_graphs(star, seeds=[0], k=4, progress=False)[0].tolist() == [0, 1, 2, 3]


def test_ego_graph_seed_pushes_even_above_its_threshold() -> None:
    star = _undirected([(0, leaf) for leaf in range(1, 21)], 21)
    # eps * deg(0) = 2 > 1 = r(0): ACL would stop before the first push.
    assert ego_graphs(star, seeds=[0], k=3, eps=0.1, progress=False)[0].tolist() == [0, 1, 2]


def test_ego_graph_walks_against_edge_direction() -> None:
    g = Graph.from_edges(torch.tensor([0]), torch.tensor([1]), 2)  # 0 -> 1 only
    ego = ego_graphs(g, k=2, progress=False)
    assert ego[0].tolist() == [0] and ego[1].tolist() == [1, 0]


def test_ego_graphs_are_deterministic(random_graph: Graph) -> None:
    a = ego_graphs(random_graph, k=8, progress=False)
    b = ego_graphs(random_graph, k=8, progress=False)
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.nodes, b.nodes)


def test_batch_result_equals_per_seed_result(random_graph: Graph) -> None:
    seeds = np.arange(random_graph.num_nodes)
    batch = ego_graphs(random_graph, k=8, batch_size=7, progress=False)
    for s in seeds:
        assert np.array_equal(batch[s], ego_graphs(random_graph, seeds=[s], k=8, progress=False)[0])
    indptr, nodes, scores = approximate_ppr(random_graph, eps=1e-3)
    for s in (0, 13, 39):
        i, v, x = approximate_ppr(random_graph, seeds=[s], eps=1e-3)
        assert np.array_equal(v, nodes[indptr[s]:indptr[s + 1]])
        assert np.array_equal(x, scores[indptr[s]:indptr[s + 1]])  # bitwise


def test_two_workers_equal_one_worker(random_graph: Graph) -> None:
    one = ego_graphs(random_graph, k=8, batch_size=3, progress=False)
    two = ego_graphs(random_graph, k=8, batch_size=3, workers=2, progress=False)
    assert np.array_equal(one.indptr, two.indptr) and np.array_equal(one.nodes, two.nodes)


def test_cache_hit_returns_same_arrays_without_recomputing(random_graph: Graph, tmp_path,
                                                          monkeypatch) -> None:
    first = ego_graphs(random_graph, k=8, cache_dir=tmp_path, progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    key = cache_key(random_graph, np.arange(random_graph.num_nodes), 8, 0.15, 1e-4)
    assert files == [f"ego-{key}.npz"]  # no temporary file left behind

    def fail(*args, **kwargs):
        raise AssertionError("recomputed despite a cache hit")

    monkeypatch.setattr(ppr_mod, "_compute", fail)
    again = ego_graphs(random_graph, k=8, cache_dir=tmp_path, progress=False)
    assert np.array_equal(first.indptr, again.indptr) and np.array_equal(first.nodes, again.nodes)
    with pytest.raises(AssertionError, match="recomputed"):
        ego_graphs(random_graph, k=9, cache_dir=tmp_path, progress=False)


def test_cache_key_changes_with_every_input(random_graph: Graph, barbell: Graph) -> None:
    seeds = np.arange(10)
    base = cache_key(random_graph, seeds, 8, 0.15, 1e-4)
    assert base == cache_key(random_graph, seeds.copy(), 8, 0.15, 1e-4)
    assert len({base, cache_key(random_graph, seeds, 9, 0.15, 1e-4),
                cache_key(random_graph, seeds, 8, 0.2, 1e-4),
                cache_key(random_graph, seeds, 8, 0.15, 1e-3),
                cache_key(random_graph, seeds[::-1], 8, 0.15, 1e-4),
                cache_key(barbell, seeds, 8, 0.15, 1e-4),
                cache_key(random_graph, seeds, 8, 0.15, 1e-4, rank="degree")}) == 7
    assert base == cache_key(random_graph, seeds, 8, 0.15, 1e-4, rank="score")  # old caches still hit


def test_unreadable_cache_file_is_recomputed(random_graph: Graph, tmp_path) -> None:
    first = ego_graphs(random_graph, k=4, cache_dir=tmp_path, progress=False)
    path = next(tmp_path.iterdir())
    path.write_bytes(b"not a zip")
    again = ego_graphs(random_graph, k=4, cache_dir=tmp_path, progress=False)
    assert np.array_equal(first.nodes, again.nodes)


def test_bad_arguments_name_the_problem(barbell: Graph) -> None:
    with pytest.raises(ValueError, match=r"seeds has 1 id\(s\) outside \[0, 10\)"):
        ego_graphs(barbell, seeds=[0, 10], progress=False)
    with pytest.raises(ValueError, match="alpha"):
        ego_graphs(barbell, alpha=1.0, progress=False)
    with pytest.raises(ValueError, match="k \\(ego-graph size\\)"):
        ego_graphs(barbell, k=0, progress=False)
    with pytest.raises(ValueError, match="workers"):
        ego_graphs(barbell, workers=0, progress=False)
    with pytest.raises(ValueError, match="rank must be one of 'score', 'degree', got 'ppr'"):
        ego_graphs(barbell, rank="ppr", progress=False)
