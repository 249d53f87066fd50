"""A DGL graph as training input: converted to the packaged Cora bitwise, and pre-trained to
the same parameters. Runs only where DGL is installed (`make test-dgl`)."""
import importlib.util
import os

import pytest

_spec = importlib.util.find_spec("dgl")  # see test_dgl_interop.py for why not importorskip alone
if _spec is None or _spec.origin is None:
    pytest.skip("DGL is not installed; `make test-dgl` runs these tests", allow_module_level=True)
os.environ.setdefault("DGLBACKEND", "pytorch")
dgl = pytest.importorskip("dgl")

import torch  # noqa: E402

import graphmae2  # noqa: E402
from graphmae2.datasets import as_node_dataset  # noqa: E402
from graphmae2.datasets.planetoid.packaged import load_packaged  # noqa: E402
from graphmae2.manifest import state_digests  # noqa: E402


def dgl_cora():
    """Cora as DGL's ``CoraGraphDataset`` lays it out: both edge directions, no self-loops,
    ``ndata`` feat / label / train_mask / val_mask / test_mask (raw features here, built from
    the packaged arrays: no network)."""
    a = load_packaged("cora")
    g = dgl.graph((torch.from_numpy(a["src"]), torch.from_numpy(a["dst"])), num_nodes=a["x"].shape[0])
    g.ndata["feat"] = torch.from_numpy(a["x"])
    g.ndata["label"] = torch.from_numpy(a["y"])
    for key in ("train_mask", "val_mask", "test_mask"):
        g.ndata[key] = torch.from_numpy(a[key])
    return g


def test_dgl_cora_gives_the_packaged_cora_bitwise(cora):
    data = as_node_dataset(dgl_cora())
    assert data.name == "dgl" and data.graph.digest() == cora.graph.digest()
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(data, key), getattr(cora, key)), key


def test_dataset_round_trip_through_a_dgl_graph(cora):
    g = cora.to_dgl()
    assert set(g.ndata) == {"feat", "label", "train_mask", "val_mask", "test_mask"}
    back = as_node_dataset(g)
    assert back.graph.digest() == cora.graph.digest() and torch.equal(back.x, cora.x)
    assert as_node_dataset((g, cora.x[:, :10])).num_features == 10  # (graph, x): x replaces ndata


def test_heterogeneous_dgl_graph_is_refused_with_the_fix():
    g = dgl.heterograph({("a", "r", "b"): ([0], [0])})
    with pytest.raises(TypeError, match=r"convert it with dgl.to_homogeneous\(g\)"):
        as_node_dataset(g)


def test_pretraining_on_dgl_cora_equals_the_packaged_cora_bitwise():
    """graphmae2.pretrain, same seed, same tiny config: identical loss trace, parameter digests
    and probe."""
    tiny = ["model.num_hidden=16", "model.num_heads=2", "model.projector_hidden=8", "train.max_epoch=2",
            "train.precision=fp32", "eval.max_epoch=20"]
    packaged, ours = (graphmae2.pretrain(source, overrides=tiny, device="cpu") for source in (None, dgl_cora()))
    assert ours.losses == packaged.losses
    assert state_digests(ours.encoder) == state_digests(packaged.encoder)
    assert state_digests(ours.teacher.module) == state_digests(packaged.teacher.module)
    assert ours.metrics["test_acc_mean"] == packaged.metrics["test_acc_mean"]
