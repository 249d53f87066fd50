"""Graphs larger than memory: a folder of .npy arrays with memory-mapped features
(graphmae2.datasets.graph_dir) and the synthetic graph written that way."""
import numpy as np
import pytest
import torch

import graphmae2
from graphmae2.cli import main
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.datasets.graph_dir import read_graph_dir, write_graph_dir
from graphmae2.datasets.node_dataset import _non_finite
from graphmae2.datasets.synthetic import synthetic_graph, write_synthetic_graph
from graphmae2.manifest import tensor_digest


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("graphs") / "syn"
    write_synthetic_graph(path, 3000, 12000, num_features=16, seed=3)
    return path


def test_written_synthetic_graph_has_the_in_memory_graphs_structure_and_labels(folder):
    disk, memory = read_graph_dir(folder), synthetic_graph(3000, 12000, num_features=16, seed=3)
    assert torch.equal(disk.graph.indptr, memory.graph.indptr)
    assert torch.equal(disk.graph.indices, memory.graph.indices)
    assert torch.equal(disk.y, memory.y) and disk.num_features == 16
    assert [int(m.sum()) for m in (disk.train_mask, disk.val_mask, disk.test_mask)] == [30, 30, 30]
    assert not bool((disk.train_mask & disk.test_mask).any())


def test_written_features_are_dense_seeded_and_carry_the_class(folder, tmp_path):
    disk = read_graph_dir(folder)
    assert float((disk.x != 0).float().mean()) == 1.0  # dense, as papers100M's
    write_synthetic_graph(tmp_path / "again", 3000, 12000, num_features=16, seed=3)
    assert np.array_equal(np.load(folder / "x.npy"), np.load(tmp_path / "again" / "x.npy"))
    means = torch.stack([disk.x[disk.y == c].mean(0) for c in range(disk.num_classes)])
    assert float(means.std(0).mean()) > 0.05  # class means differ (feature_signal 0.1; noise averages out)


def test_features_are_memory_mapped_not_loaded(folder):
    data = read_graph_dir(folder)
    mapped = np.load(folder / "x.npy", mmap_mode="r")
    assert torch.equal(data.x, torch.from_numpy(np.array(mapped)))
    assert not data.x.numpy().flags["OWNDATA"]  # a view of the file's map, not a copy
    data.x[0, 0] = 1e6  # copy-on-write: the file is never changed
    assert np.load(folder / "x.npy")[0, 0] != 1e6


def test_a_dataset_written_and_read_back_is_the_same(cora, tmp_path):
    path = write_graph_dir(tmp_path / "cora", cora.graph, cora.x, y=cora.y.numpy(), train_mask=cora.train_mask.numpy(),
                           val_mask=cora.val_mask.numpy(), test_mask=cora.test_mask.numpy(), block=1000)
    back = read_graph_dir(path)
    assert back.graph.digest() == cora.graph.digest() and torch.equal(back.x, cora.x)
    assert torch.equal(back.y, cora.y) and torch.equal(back.test_mask, cora.test_mask)
    assert np.load(path / "indices.npy").dtype == np.int32
    with pytest.raises(FileExistsError, match="exists"):
        write_graph_dir(path, cora.graph, cora.x)


def test_the_data_config_and_pretrain_read_a_folder(folder, tmp_path):
    cfg = load_config(None, ["data.dataset=npz", f"data.path={folder}"])
    assert load_data(cfg.data).num_nodes == 3000
    run = graphmae2.pretrain(str(folder), overrides=["train.max_epoch=2", "model.num_hidden=8", "model.num_heads=2",
                                                    "model.projector_hidden=8", "train.precision=fp32"],
                             progress=False)
    assert run.evaluated and 0.0 <= run.summary["test_acc_mean"] <= 1.0


@pytest.mark.parametrize("change,message", [
    (lambda p: (p / "x.npy").unlink(), r"no x.npy; a graph folder needs indptr.npy, indices.npy and x.npy"),
    (lambda p: np.save(p / "feats.npy", np.zeros(3)), r"unknown file\(s\) feats.npy"),
    (lambda p: np.save(p / "indptr.npy", np.arange(5)), r"indptr.npy must be 1-D integer of size num_nodes \+ 1"),
    (lambda p: np.save(p / "indices.npy", np.full(np.load(p / "indices.npy").size, 99999)),
     r"indices.npy holds node ids outside \[0, 3000\)"),
    (lambda p: np.save(p / "x.npy", np.load(p / "x.npy").astype(np.float64)), "x.npy must be float32"),
    (lambda p: np.save(p / "y.npy", np.load(p / "y.npy").astype(np.float32)), "y.npy must hold integer class labels"),
])
def test_a_bad_folder_gives_a_one_line_error_naming_it(folder, tmp_path, change, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in folder.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    change(bad)
    with pytest.raises(ValueError, match=message) as info:
        read_graph_dir(bad)
    assert "\n" not in str(info.value) and "bad" in str(info.value)


def test_cli_exits_2_on_a_bad_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--config", "cora.yaml", "--set", "data.dataset=npz", f"data.path={tmp_path / 'empty'}",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no indptr.npy, indices.npy, x.npy" in err[0]


def test_non_finite_features_are_found_across_blocks():
    x = torch.zeros(10, 3)
    x[7, 2], x[9, 0] = float("nan"), float("inf")
    assert _non_finite(x, block=4) == (2, (7, 2))
    assert _non_finite(torch.zeros(5, 2), block=2) == (0, (-1, -1))


def test_digest_reads_a_large_tensor_in_chunks_as_one(monkeypatch):
    import graphmae2.manifest as manifest

    t = torch.arange(1000, dtype=torch.float32).reshape(100, 10)
    whole = tensor_digest(t)
    monkeypatch.setattr(manifest, "_DIGEST_CHUNK", 64)
    assert manifest.tensor_digest(t) == whole
