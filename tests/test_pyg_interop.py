"""PyTorch Geometric interop: our GAT/GCN layers against PyG's with the same weights, and
``Data`` objects in and out (graph, dataset, ``.pt`` file, ``embed``).

torch-geometric is part of the `test` extra (pure Python on top of torch), so `make test` runs
these; without it they are skipped.
"""
import logging

import numpy as np
import pytest
import torch

pyg_data = pytest.importorskip("torch_geometric.data")
pyg_nn = pytest.importorskip("torch_geometric.nn")

from crosscheck import ATOL, GAT_CASES, assert_same_outputs_and_grads, gat_case, max_diff, outputs_and_grads  # noqa: E402

from graphmae2 import embed  # noqa: E402
from graphmae2.config import Config  # noqa: E402
from graphmae2.datasets import as_node_dataset, load_data, read_graph_file  # noqa: E402
from graphmae2.datasets.planetoid.packaged import load_packaged  # noqa: E402
from graphmae2.graph import Graph  # noqa: E402
from graphmae2.layers import GATConv, GCNConv  # noqa: E402
from graphmae2.model import GraphMAE2  # noqa: E402
from graphmae2.pretrained import PretrainedEncoder  # noqa: E402


def planetoid_cora():
    """Cora as PyG's ``Planetoid`` hands it out: raw binary features, both edge directions,
    no self-loops, labels and the public split (built from the packaged arrays: no network)."""
    a = load_packaged("cora")
    edge_index = torch.from_numpy(np.stack([a["src"], a["dst"]]))
    return pyg_data.Data(x=torch.from_numpy(a["x"]), edge_index=edge_index, y=torch.from_numpy(a["y"]),
                         train_mask=torch.from_numpy(a["train_mask"]), val_mask=torch.from_numpy(a["val_mask"]),
                         test_mask=torch.from_numpy(a["test_mask"]))


# ---------------------------------------------------------------------------- GAT
def pyg_gat_like(ours: GATConv) -> "pyg_nn.GATConv":
    """A ``torch_geometric.nn.GATConv`` holding ``ours``' weights.

    PyG's conventions: ``lin.weight`` is ``[heads*out, in]`` (ours transposed); ``att_src`` /
    ``att_dst`` are ``[1, heads, out]``; the residual is always a bias-free ``res`` linear map
    added after the heads are merged (so an identity residual is copied as the identity
    matrix; with averaged heads the two parameterisations differ, so that case is not built).
    Self-loops come from the graph, as in ours (``add_self_loops=False``).
    """
    h, d = ours.num_heads, ours.out_dim
    theirs = pyg_nn.GATConv(ours.in_dim, d, heads=h, concat=ours.concat, negative_slope=ours.negative_slope,
                            add_self_loops=False, bias=ours.bias is not None, residual=ours.residual)
    theirs = theirs.to(ours.weight.dtype)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.weight.T)
        theirs.att_src.copy_(ours.att_src.view(1, h, d))
        theirs.att_dst.copy_(ours.att_dst.view(1, h, d))
        if ours.bias is not None:
            theirs.bias.copy_(ours.bias)
        if ours.residual:
            res = ours.res_weight.T if ours.res_weight is not None else torch.eye(ours.in_dim)
            theirs.res.weight.copy_(res)
    return theirs.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", GAT_CASES)
def test_gat_conv_matches_pyg_outputs_and_gradients(cora, case, dtype):
    x, ours = gat_case(cora, case, dtype)
    theirs = pyg_gat_like(ours)
    edge_index = cora.graph.to_pyg().edge_index
    assert_same_outputs_and_grads(lambda x: ours(cora.graph, x), lambda x: theirs(x, edge_index), x, dtype)


# ---------------------------------------------------------------------------- GCN
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_gcn_conv_matches_pyg_outputs_and_gradients(cora, dtype):
    """PyG normalises by in-degree on both ends, ours by out-degree of the source: the same
    on Cora's undirected graph. Self-loops are already in the graph."""
    torch.manual_seed(0)
    ours = GCNConv(cora.num_features, 16).to(dtype).eval()
    theirs = pyg_nn.GCNConv(cora.num_features, 16, add_self_loops=False).to(dtype).eval()
    with torch.no_grad():
        ours.bias.normal_()
        theirs.lin.weight.copy_(ours.weight.T)               # PyG [out, in], ours [in, out]
        theirs.bias.copy_(ours.bias)
    edge_index = cora.graph.to_pyg().edge_index
    x = cora.x.to(dtype)
    out, grad = outputs_and_grads(lambda x: ours(cora.graph, x), x)
    ref_out, ref_grad = outputs_and_grads(lambda x: theirs(x, edge_index), x)
    assert max_diff(out, ref_out) < ATOL[dtype], f"output max |diff| {max_diff(out, ref_out):.3g}"
    assert max_diff(grad, ref_grad) < ATOL[dtype], f"input-gradient max |diff| {max_diff(grad, ref_grad):.3g}"


# ------------------------------------------------------------------- conversion
def test_from_pyg_keeps_duplicates_self_loops_and_isolated_nodes():
    edge_index = torch.tensor([[3, 0, 2, 0, 4, 4, 1], [0, 1, 2, 1, 4, 4, 3]])
    ours = Graph.from_pyg(pyg_data.Data(edge_index=edge_index, num_nodes=6))
    assert (ours.num_nodes, ours.num_edges) == (6, 7)
    back = ours.to_pyg()
    assert isinstance(back, pyg_data.Data) and back.num_nodes == 6
    pairs = lambda ei: sorted(map(tuple, ei.T.tolist()))  # noqa: E731
    assert pairs(back.edge_index) == pairs(edge_index)


def test_from_pyg_refuses_hetero_data_and_missing_edge_index():
    with pytest.raises(TypeError, match=r"got HeteroData; convert it with data.to_homogeneous\(\)"):
        Graph.from_pyg(pyg_data.HeteroData())
    with pytest.raises(ValueError, match="has no edge_index"):
        Graph.from_pyg(pyg_data.Data(x=torch.zeros(3, 2)))


def test_planetoid_shaped_pyg_cora_gives_the_packaged_cora_bitwise(cora):
    """Same graph (CSR, bitwise), features, labels and split: so the same pre-training."""
    data = as_node_dataset(planetoid_cora())
    assert data.graph.digest() == cora.graph.digest()
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(data, key), getattr(cora, key)), key
    assert data.num_classes == cora.num_classes and data.name == "pyg"


def test_dataset_round_trip_through_pyg_data(cora):
    pyg = cora.to_pyg()
    assert set(pyg.keys()) == {"x", "edge_index", "y", "train_mask", "val_mask", "test_mask", "num_nodes"}
    back = as_node_dataset(pyg, name="cora")
    assert back.graph.digest() == cora.graph.digest() and torch.equal(back.x, cora.x)


def test_unlabelled_pyg_graph_and_graph_x_pair_become_datasets_without_labels():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    x = torch.rand(4, 3)
    for source in (pyg_data.Data(x=x, edge_index=edge_index),
                   (pyg_data.Data(edge_index=edge_index, num_nodes=4), x)):
        data = as_node_dataset(source)
        assert data.y is None and data.train_mask is None and data.num_classes is None
        assert data.graph.num_edges == 2 * 3 + 4 and torch.equal(data.x, x)


def test_pyg_graph_without_features_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"dataset 'pyg': no node features; set data.x or pass \(graph, x\)"):
        as_node_dataset(pyg_data.Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2))


def test_load_data_scales_a_pyg_source_once(cora):
    cfg = Config.from_dict({"data": {"feature_norm": "row"}})
    data = load_data(cfg.data, source=planetoid_cora())
    assert torch.allclose(data.x.sum(1), torch.ones(cora.num_nodes))


def test_pt_file_of_a_pyg_data_loads_with_only_pyg_classes_allowed(tmp_path, cora):
    path = tmp_path / "cora_pyg.pt"
    torch.save(planetoid_cora(), path)
    data = read_graph_file(path)
    assert data.name == "cora_pyg" and data.graph.digest() == cora.graph.digest()
    assert torch.equal(data.y, cora.y)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pt_file_with_other_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    data = planetoid_cora()
    data.payload = _Evil()
    torch.save(data, path)
    with pytest.raises(ValueError, match=r"refused to load builtins.print.*could run code"):
        read_graph_file(path)


def test_embed_accepts_a_pyg_data_and_uses_its_features(cora):
    cfg = Config.from_dict({"model": {"num_hidden": 16, "num_heads": 2, "projector_hidden": 8}})
    torch.manual_seed(0)
    encoder = PretrainedEncoder(GraphMAE2(cora.num_features, cfg.model).encoder, cfg)
    pyg = cora.to_pyg()
    z = embed(encoder, pyg)
    assert z.shape == (cora.num_nodes, 16)
    assert torch.equal(z, embed(encoder, cora.graph, cora.x))
    assert torch.equal(encoder.eval()(pyg, cora.x), z)


def test_embed_warns_when_a_pyg_graph_lacks_self_loops(cora, caplog):
    cfg = Config.from_dict({"model": {"num_hidden": 16, "num_heads": 2, "projector_hidden": 8}})
    encoder = PretrainedEncoder(GraphMAE2(cora.num_features, cfg.model).encoder, cfg)
    with caplog.at_level(logging.WARNING, logger="graphmae2.pretrained"):
        embed(encoder, planetoid_cora())
    assert "2708 of 2708 nodes have no self-loop" in caplog.text

