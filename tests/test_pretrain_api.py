"""graphmae2.pretrain: the CLI's training from Python, on datasets, PyG objects and files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

import graphmae2
from graphmae2.cli import main
from graphmae2.config import ConfigError
from graphmae2.datasets import NodeDataset
from graphmae2.manifest import state_digests, tensor_digest
from graphmae2.pretrained import PretrainedEncoder

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_overrides(**{"model.num_hidden": 16, "model.projector_hidden": 8, "train.max_epoch": 2,
                         "train.precision": "fp32"})


def community_graph(n=60, labelled=True):
    """Two communities with class-centred features; a 20/20/20 split when ``labelled``."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    src = torch.randint(0, n, (4 * n,), generator=gen)
    dst = (src + 2 * torch.randint(1, n // 2, (4 * n,), generator=gen)) % n  # same parity: same class
    x = torch.randn(n, 8, generator=gen) + 2.0 * y[:, None]
    if not labelled:
        return NodeDataset.from_arrays(x, (src, dst), name="unlabelled")
    part = torch.arange(n) % 3
    return NodeDataset.from_arrays(x, (src, dst), y=y, train_mask=part == 0, val_mask=part == 1,
                                   test_mask=part == 2, name="communities")


def test_pretrain_without_labels_trains_and_says_nothing_was_evaluated():
    result = graphmae2.pretrain(community_graph(labelled=False), overrides=TINY, device="cpu")
    assert isinstance(result.encoder, PretrainedEncoder) and not result.encoder.training
    assert result.metrics is None and not result.evaluated
    assert result.note == "dataset 'unlabelled' has no labels: pre-trained only, eval.mode=linear skipped"
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    assert result.embed().shape == (60, 16)
    assert result.config.data.dataset == "custom" and result.run_dir is None


def test_pyg_karate_club_with_only_a_train_mask_pretrains_and_says_why_it_is_not_evaluated():
    """PyG's bundled KarateClub has labels and a train_mask, no validation or test mask:
    pre-training needs none of them."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    assert data.train_mask is not None and getattr(data, "val_mask", None) is None
    result = graphmae2.pretrain(data, overrides=TINY, device="cpu")
    assert result.metrics is None and result.embed().shape == (34, 16)
    assert result.note == ("dataset 'pyg' has labels but only train_mask; evaluation needs train_mask, val_mask "
                           "and test_mask: pre-trained only, eval.mode=linear skipped")


def test_pretrain_takes_a_known_dataset_name_where_a_path_goes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file called "cora" here
    result = graphmae2.pretrain("cora", config=None, overrides=TINY, device="cpu")
    assert result.config.data.dataset == "cora" and result.data.num_nodes == 2708
    assert 0.0 <= result.metrics["test_acc_mean"] <= 1.0


def test_pretrain_with_labels_evaluates_every_seed_and_writes_the_cli_run_directory(tmp_path):
    result = graphmae2.pretrain(community_graph(), seeds=[0, 1], overrides=TINY, device="cpu", out=tmp_path)
    assert [r.seed for r in result.seeds] == [0, 1] and result.metrics["n_seeds"] == 2
    assert 0.0 <= result.metrics["test_acc_mean"] <= 1.0
    run = result.run_dir
    assert run.parent == tmp_path and run.name.startswith("communities-")
    assert json.loads((run / "metrics.json").read_text())["test_acc_mean"] == result.metrics["test_acc_mean"]
    manifest = json.loads((run / "seed-1" / "manifest.json").read_text())
    assert manifest["embedding_digest"] == tensor_digest(result.embed())  # the last seed's encoder
    loaded = graphmae2.load_encoder(run)  # the last seed's checkpoint: the same encoder
    assert torch.equal(graphmae2.embed(loaded, result.data.graph, result.data.x),
                       graphmae2.embed(result.encoder, result.data.graph, result.data.x))


def test_pretrain_repeats_the_cli_bitwise(tmp_path):
    """Same config and seed through train.py and through pretrain: identical manifests' digests."""
    assert main(["--config", "cora.yaml", "--out", str(tmp_path / "cli"), "--quiet", "--set", *TINY]) == 0
    cli = json.loads(next((tmp_path / "cli").iterdir()).joinpath("seed-0", "manifest.json").read_text())
    api = graphmae2.pretrain(None, overrides=TINY, device="cpu", out=tmp_path / "api")
    ours = json.loads((api.run_dir / "seed-0" / "manifest.json").read_text())
    for key in ("initial_params", "first_mask_digest", "loss_trace", "final_params", "teacher_params",
                "embedding_digest"):
        assert ours[key] == cli[key], key
    assert api.losses == cli["loss_trace"]


def test_pretrain_on_a_pyg_cora_equals_the_packaged_cora_bitwise():
    pytest.importorskip("torch_geometric")
    from test_pyg_interop import planetoid_cora

    packaged = graphmae2.pretrain(None, overrides=TINY, device="cpu")
    pyg = graphmae2.pretrain(planetoid_cora(), overrides=TINY, device="cpu")
    assert pyg.losses == packaged.losses
    assert state_digests(pyg.encoder) == state_digests(packaged.encoder)
    assert state_digests(pyg.teacher.module) == state_digests(packaged.teacher.module)
    assert pyg.metrics["test_acc_mean"] == packaged.metrics["test_acc_mean"]


def test_pretrain_reads_a_graph_file_path(tmp_path):
    data = community_graph()
    src, dst = data.graph.edges()
    np.savez(tmp_path / "g.npz", x=data.x.numpy(), src=src.numpy(), dst=dst.numpy(), y=data.y.numpy(),
             train_mask=data.train_mask.numpy(), val_mask=data.val_mask.numpy(), test_mask=data.test_mask.numpy())
    from_file = graphmae2.pretrain(tmp_path / "g.npz", overrides=TINY, device="cpu")
    in_memory = graphmae2.pretrain(data, overrides=TINY, device="cpu")
    assert from_file.config.data.dataset == "npz" and from_file.data.name == "g"
    assert from_file.losses == in_memory.losses


def test_pretrain_refuses_bad_input_in_one_line():
    with pytest.raises(TypeError, match="cannot pre-train on a dict; expected a NodeDataset"):
        graphmae2.pretrain({"x": 1}, overrides=TINY)
    with pytest.raises(ConfigError, match="unknown key 'train.max_epochs'"):
        graphmae2.pretrain(community_graph(), overrides=["train.max_epochs=2"])


@pytest.mark.parametrize("extra", [[], ["--pyg"]], ids=["arrays", "pyg"])
def test_own_graph_example_runs_on_a_small_generated_graph(extra):
    if extra:
        pytest.importorskip("torch_geometric")
    proc = subprocess.run([sys.executable, "examples/own_graph.py", "--nodes", "80", "--epochs", "3",
                           "--hidden", "16", *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "has no labels: pre-trained only" in lines[0]
    assert lines[-1].startswith("test_acc: ") and "16-d embeddings" in lines[-1]


def test_pretrain_runs_minibatch_mode_on_an_own_graph(tmp_path):
    result = graphmae2.pretrain(community_graph(), device="cpu", overrides=[
        *TINY, "data.mode=minibatch", "data.batch_size=16", "data.ego_k=8", f"data.root={tmp_path}"])
    assert len(result.losses) == 2 and 0.0 <= result.metrics["test_acc_mean"] <= 1.0
