import pytest
import torch

from graphmae2.graph import Graph


def test_from_edges_sorts_by_destination_and_merges_duplicates():
    g = Graph.from_edges(torch.tensor([2, 0, 1, 0]), torch.tensor([0, 1, 0, 1]), 3)
    assert g.indptr.tolist() == [0, 2, 3, 3]
    assert g.indices.tolist() == [1, 2, 0]
    assert g.dst.tolist() == [0, 0, 1]


def test_keep_duplicates_when_not_coalescing():
    g = Graph.from_edges(torch.tensor([0, 0]), torch.tensor([1, 1]), 2, coalesce=False)
    assert g.num_edges == 2


def test_self_loops_and_symmetrize():
    g = Graph.from_edges(torch.tensor([0, 1, 1]), torch.tensor([1, 2, 1]), 4)
    sym = g.symmetrize()
    assert set(zip(*[t.tolist() for t in sym.edges()])) == {(0, 1), (1, 0), (1, 2), (2, 1), (1, 1)}
    looped = sym.add_self_loops()
    src, dst = looped.edges()
    assert int((src == dst).sum()) == 4  # exactly one per node, the old one replaced
    assert looped.remove_self_loops().num_edges == 4


def test_degrees(small_graph):
    assert small_graph.in_degrees().tolist() == [3, 2, 2, 2, 1]
    assert small_graph.out_degrees().tolist() == [2, 2, 2, 2, 2]


def test_reverse_layout_groups_edges_by_source(random_graph):
    indptr, dst_by_src, perm = random_graph.reverse
    src = random_graph.indices[perm]
    assert torch.all(src[1:] >= src[:-1])
    assert torch.equal(dst_by_src, random_graph.dst[perm])
    assert torch.equal(indptr[1:] - indptr[:-1], random_graph.out_degrees())


def test_subgraph_relabels_and_keeps_internal_edges():
    g = Graph.from_edges(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0]), 4)
    sub = g.subgraph(torch.tensor([1, 2, 3]))
    assert sub.num_nodes == 3
    assert sorted(zip(*[t.tolist() for t in sub.edges()])) == [(0, 1), (1, 2)]


def test_from_edge_index_matches_from_edges():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    a, b = Graph.from_edge_index(ei, 3), Graph.from_edges(ei[0], ei[1], 3)
    assert torch.equal(a.indptr, b.indptr) and torch.equal(a.indices, b.indices)


@pytest.mark.parametrize("src,dst,match", [
    (torch.tensor([0, 5]), torch.tensor([1, 1]),
     r"src has 1 node index\(es\) outside \[0, 3\); first at position 1: 5"),
    (torch.tensor([0, -1]), torch.tensor([1, 1]), r"src has 1 node index"),
    (torch.tensor([0.0, 1.0]), torch.tensor([1, 1]), r"src must be an integer tensor"),
    (torch.tensor([0, 1]), torch.tensor([1]), r"same length"),
])
def test_invalid_edges_raise_with_the_offending_index(src, dst, match):
    with pytest.raises(ValueError, match=match):
        Graph.from_edges(src, dst, 3)


def test_edge_index_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \[2, num_edges\]"):
        Graph.from_edge_index(torch.zeros(3, 4, dtype=torch.long), 5)


def test_digest_depends_on_structure():
    a = Graph.from_edges(torch.tensor([0]), torch.tensor([1]), 2)
    b = Graph.from_edges(torch.tensor([1]), torch.tensor([0]), 2)
    assert a.digest() == Graph.from_edges(torch.tensor([0]), torch.tensor([1]), 2).digest()
    assert a.digest() != b.digest()


def test_from_sources_keeps_only_those_sources_renamed_in_edge_order():
    g = Graph.from_edges(torch.tensor([0, 1, 2, 3, 1, 3]), torch.tensor([1, 0, 1, 1, 3, 2]), 4)
    sub, edges = g.from_sources(torch.tensor([3, 1]))
    src, dst = g.edges()
    expected = [(int(s), int(d)) for s, d in zip(src, dst) if int(s) in (1, 3)]
    new_src, new_dst = sub.edges()
    assert [(int(torch.tensor([3, 1])[s]), int(d)) for s, d in zip(new_src, new_dst)] == expected
    assert sub.num_src == 2 and sub.num_nodes == 4
    assert torch.equal(g.indices[edges], torch.tensor([3, 1])[sub.indices])
