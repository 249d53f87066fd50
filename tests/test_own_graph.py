"""Your own graph: NodeDataset from arrays (labels optional), data.dataset=npz files, and the
one-line errors for features, node counts and splits that do not fit."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

import graphmae2
from graphmae2.cli import main
from graphmae2.config import Config, load_config
from graphmae2.datasets import NodeDataset, load_data, read_graph_file
from graphmae2.model import GraphMAE2
from graphmae2.pretrained import PretrainedEncoder


def ring(n=12, f=5, seed=0):
    """A ring of ``n`` nodes with random features, two labels and a 4/4/4 split."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.arange(n)
    arrays = {"x": torch.rand(n, f, generator=gen).numpy(),
              "edge_index": torch.stack([src, (src + 1) % n]).numpy(),
              "y": (torch.arange(n) % 2).numpy()}
    for i, key in enumerate(("train_mask", "val_mask", "test_mask")):
        arrays[key] = (np.arange(n) % 3) == i
    return arrays


# ------------------------------------------------------------- from arrays
def test_from_arrays_without_labels_gives_an_unlabelled_dataset():
    a = ring()
    data = NodeDataset.from_arrays(a["x"], a["edge_index"])
    assert data.y is None and data.num_classes is None and not data.has_labels and not data.has_splits
    assert (data.num_nodes, data.graph.num_edges) == (12, 2 * 12 + 12)  # both directions + self-loops


def test_from_arrays_takes_edge_index_or_a_src_dst_pair_alike():
    a = ring()
    one = NodeDataset.from_arrays(a["x"], a["edge_index"], y=a["y"], train_mask=a["train_mask"],
                                  val_mask=a["val_mask"], test_mask=a["test_mask"])
    two = NodeDataset.from_arrays(a["x"], (a["edge_index"][0], a["edge_index"][1]), y=a["y"][:, None],
                                  train_mask=a["train_mask"], val_mask=a["val_mask"], test_mask=a["test_mask"])
    assert one.graph.digest() == two.graph.digest() and torch.equal(one.y, two.y)
    assert one.num_classes == 2 and one.has_labels and one.has_splits


def test_edge_to_a_node_beyond_the_feature_rows_names_the_node_count():
    a = ring()
    a["edge_index"][1, 3] = 12
    with pytest.raises(ValueError, match=r"dataset 'custom': dst has 1 node index\(es\) outside \[0, 12\); "
                                         r"first at position 3: 12 \(the graph has 12 nodes, one per row of x\)"):
        NodeDataset.from_arrays(a["x"], a["edge_index"])


def test_badly_shaped_edges_are_refused():
    with pytest.raises(ValueError, match=r"edges must be a \[2, num_edges\] array .* got shape \(3, 2\)"):
        NodeDataset.from_arrays(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.int64))


def test_masks_without_labels_are_refused():
    a = ring()
    with pytest.raises(ValueError, match="train_mask given without labels y"):
        NodeDataset.from_arrays(a["x"], a["edge_index"], train_mask=a["train_mask"],
                                val_mask=a["val_mask"], test_mask=a["test_mask"])


def test_labels_with_some_masks_or_none_pretrain_and_say_why_not_evaluated():
    a = ring()
    some = NodeDataset.from_arrays(a["x"], a["edge_index"], y=a["y"], train_mask=a["train_mask"], name="mine")
    assert not some.has_splits
    assert some.why_not_evaluated == ("dataset 'mine' has labels but only train_mask; evaluation needs "
                                      "train_mask, val_mask and test_mask")
    none = NodeDataset.from_arrays(a["x"], a["edge_index"], y=a["y"], name="mine")
    assert none.why_not_evaluated.startswith("dataset 'mine' has labels but no split masks;")
    full = NodeDataset.from_arrays(a["x"], a["edge_index"], y=a["y"], train_mask=a["train_mask"],
                                   val_mask=a["val_mask"], test_mask=a["test_mask"])
    assert full.has_splits and full.why_not_evaluated is None


def test_a_partial_split_is_still_checked():
    a = ring()
    with pytest.raises(ValueError, match="train_mask must be bool"):
        NodeDataset.from_arrays(a["x"], a["edge_index"], y=a["y"], train_mask=a["train_mask"].astype(np.int64))


def test_integer_features_are_refused():
    with pytest.raises(ValueError, match="x must hold floating-point features, got torch.int64"):
        NodeDataset.from_arrays(np.ones((2, 2), np.int64), np.array([[0], [1]]))


# ------------------------------------------------------------------- files
def test_npz_file_loads_through_the_data_config(tmp_path):
    a = ring()
    np.savez(tmp_path / "my_graph.npz", **a)
    cfg = Config.from_dict({"data": {"dataset": "npz", "path": str(tmp_path / "my_graph.npz"),
                                     "feature_norm": "row"}})
    raw, scaled = load_data(cfg.data, scale=False), load_data(cfg.data)
    assert raw.name == "my_graph" and raw.num_classes == 2
    assert torch.equal(raw.x, torch.from_numpy(a["x"]))
    assert torch.allclose(scaled.x.sum(1), torch.ones(12))


def test_pt_file_of_a_dict_of_tensors_equals_the_npz(tmp_path):
    a = ring()
    np.savez(tmp_path / "g.npz", **a)
    torch.save({k: torch.from_numpy(v) for k, v in a.items()}, tmp_path / "g.pt")
    npz, pt = read_graph_file(tmp_path / "g.npz"), read_graph_file(tmp_path / "g.pt")
    assert npz.graph.digest() == pt.graph.digest() and torch.equal(npz.x, pt.x) and torch.equal(npz.y, pt.y)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(trian_mask=a.pop("train_mask")), r"unknown key\(s\) trian_mask; allowed: x, edge_index"),
    (lambda a: a.pop("x"), r"no 'x' \(node features \[N, F\]\); keys found: edge_index"),
    (lambda a: a.pop("edge_index"), r"no edges; add edge_index \[2, E\] or src and dst \[E\]"),
    (lambda a: a.update(src=a["edge_index"][0]), "give the edges once"),
    (lambda a: a.update(src=a.pop("edge_index")[0]), "src without dst; give both"),
    (lambda a: a.update(val_mask=a["train_mask"]), "train_mask and val_mask share"),
])
def test_bad_npz_file_gives_a_one_line_error_naming_the_file(tmp_path, change, message):
    a = ring()
    change(a)
    np.savez(tmp_path / "bad.npz", **a)
    with pytest.raises(ValueError, match=message) as info:
        read_graph_file(tmp_path / "bad.npz")
    assert "\n" not in str(info.value)
    assert "bad" in str(info.value)


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    a = ring()
    a["y"] = np.array([{"label": 1}] * 12, dtype=object)
    np.savez(tmp_path / "obj.npz", **a)
    with pytest.raises(ValueError, match=r"obj.npz: Object arrays cannot be loaded when allow_pickle=False"):
        read_graph_file(tmp_path / "obj.npz")


def test_data_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="data.dataset=npz: set data.path to your .npz or .pt graph file"):
        load_data(load_config(None, ["data.dataset=npz"]).data)
    with pytest.raises(ValueError, match=r"data.path=g.npz is read only with data.dataset=npz, not data.dataset=cora"):
        load_data(load_config(None, ["data.path=g.npz"]).data)
    with pytest.raises(FileNotFoundError, match="data.path=.*missing.npz: no such file"):
        load_data(load_config(None, ["data.dataset=npz", f"data.path={tmp_path / 'missing.npz'}"]).data)
    (tmp_path / "g.csv").write_text("0,1\n")
    with pytest.raises(ValueError, match=r"unknown file type '.csv'; allowed: .npz, .pt"):
        read_graph_file(tmp_path / "g.csv")


def test_cli_trains_and_probes_an_npz_graph(tmp_path, capsys):
    """train.py on a labelled npz file: a run directory named npz-..., the headline, a probe."""
    a = ring(n=60, f=8)
    np.savez(tmp_path / "g.npz", **a)
    out = tmp_path / "runs"
    assert main(["--config", "cora.yaml", "--out", str(out), "--quiet", "--set",
                 *tiny_overrides(**{"data.dataset": "npz", "data.path": str(tmp_path / "g.npz"),
                                    "model.num_hidden": 8, "model.projector_hidden": 8})]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("test_acc: ")
    run = next(out.iterdir())
    assert run.name.startswith("npz-")
    assert 0.0 <= json.loads((run / "metrics.json").read_text())["test_acc_mean"] <= 1.0


# ------------------------------------------------------------ encoder input
@pytest.fixture(scope="module")
def encoder(cora):
    cfg = Config.from_dict({"model": {"num_hidden": 16, "num_heads": 2, "projector_hidden": 8}})
    torch.manual_seed(0)
    return PretrainedEncoder(GraphMAE2(cora.num_features, cfg.model).encoder, cfg).eval()


def test_features_of_the_wrong_width_name_both_widths(encoder, cora):
    with pytest.raises(ValueError, match=r"features have 100 columns but the encoder was trained on 1433 "
                                         r"\(data.dataset=cora\)"):
        graphmae2.embed(encoder, cora.graph, cora.x[:, :100])


def test_features_for_the_wrong_node_count_name_both_counts(encoder, cora):
    with pytest.raises(ValueError, match="the graph has 2708 nodes but x has 2000 feature rows"):
        encoder(cora.graph, cora.x[:2000])


def test_embed_takes_a_dataset_and_its_features(encoder, cora):
    assert torch.equal(graphmae2.embed(encoder, cora), graphmae2.embed(encoder, cora.graph, cora.x))


def test_cli_trains_an_npz_graph_in_minibatch_mode(tmp_path, capsys):
    a = ring(n=60, f=8)
    np.savez(tmp_path / "g.npz", **a)
    assert main(["--config", "cora.yaml", "--out", str(tmp_path / "runs"), "--quiet", "--set",
                 *tiny_overrides(**{"data.dataset": "npz", "data.path": str(tmp_path / "g.npz"),
                                    "data.mode": "minibatch", "data.batch_size": 16, "data.ego_k": 8,
                                    "data.root": str(tmp_path / "cache"), "model.num_hidden": 8,
                                    "model.projector_hidden": 8, "train.max_epoch": 2})]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("test_acc: ")


def test_cli_pretrains_an_unlabelled_npz_graph_and_exports_its_embeddings(tmp_path, capsys):
    a = ring(n=60, f=8)
    np.savez(tmp_path / "u.npz", x=a["x"], edge_index=a["edge_index"])
    out = tmp_path / "runs"
    assert main(["--config", "cora.yaml", "--out", str(out), "--quiet", "--set",
                 *tiny_overrides(**{"data.dataset": "npz", "data.path": str(tmp_path / "u.npz"),
                                    "model.num_hidden": 8, "model.projector_hidden": 8})]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("no evaluation: ")
    run = next(out.iterdir())
    assert main(["--embed", "--checkpoint", str(run), "--output", str(tmp_path / "emb.npy")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote (60, 8) embeddings to {tmp_path / 'emb.npy'}"
    z = np.load(tmp_path / "emb.npy")
    assert z.shape == (60, 8) and not (tmp_path / "labels.npy").exists()
    data = read_graph_file(tmp_path / "u.npz")
    assert np.array_equal(z, graphmae2.embed(graphmae2.load_encoder(run), data).numpy())


def test_cli_sweeps_over_an_npz_graph(tmp_path, capsys):
    a = ring(n=60, f=8)
    np.savez(tmp_path / "g.npz", **a)
    assert main(["--config", "cora.yaml", "--out", str(tmp_path / "sweeps"), "--quiet",
                 "--sweep", "train.lr=0.001,0.01", "--set",
                 *tiny_overrides(**{"data.dataset": "npz", "data.path": str(tmp_path / "g.npz"),
                                    "model.num_hidden": 8, "model.projector_hidden": 8, "train.max_epoch": 2})]) == 0
    out = capsys.readouterr().out
    assert "sweep: 2 points x 1 seeds" in out and next((tmp_path / "sweeps").iterdir()).name.startswith("npz-sweep-")


def test_usage_five_line_example_writes_a_graph_file_that_loads(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    section = readme[readme.index("**3. From a file.**"):]
    code = section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python") + 9)]
    assert len(code.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/usage.md", "exec"), {})
    data = read_graph_file(tmp_path / "my_graph.npz")
    assert (data.num_nodes, data.num_features, data.num_classes) == (100, 16, 3) and data.has_splits


def test_readme_python_example_runs(monkeypatch):
    """The README's three-line own-graph example, with a small x and edge_index and a tiny
    model (its config is cora.yaml; the overrides only shrink it)."""
    import graphmae2

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```python", readme.index("## Python")) + len("```python")
    code = readme[start:readme.index("```\n", start)]
    real = graphmae2.pretrain
    monkeypatch.setattr(graphmae2, "pretrain", lambda data, config, overrides=(): real(
        data, config, device="cpu",
        overrides=[*overrides, *tiny_overrides(**{"model.num_hidden": 8, "train.max_epoch": 1})]))
    a = ring()
    scope = {"x": a["x"], "edge_index": a["edge_index"]}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["z"].shape == (12, 8) and scope["result"].metrics is None
