"""Using a pre-trained encoder: load_encoder, --embed, evaluation modes, the example."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

import graphmae2
from graphmae2.checkpoint import CheckpointError
from graphmae2.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["--config", "cora.yaml", "--out", str(out), "--quiet", "--set", *tiny_overrides()]) == 0
    return next(out.iterdir())


def test_public_api_is_exported_with_docstrings():
    for name in ("GraphMAE2", "Graph", "load_dataset", "seed_everything", "load_encoder", "embed",
                 "pretrain", "Pretrained"):
        assert getattr(graphmae2, name).__doc__, name
    assert set(graphmae2.__all__) == {"GraphMAE2", "Graph", "load_dataset", "seed_everything",
                                      "load_encoder", "embed", "pretrain", "Pretrained"}


def test_load_encoder_embeds_like_the_trained_model(run_dir, cora):
    encoder = graphmae2.load_encoder(run_dir / "checkpoint.pt")
    assert not encoder.training and encoder.config.model.num_hidden == 32 and encoder.out_dim == 32
    z = graphmae2.embed(encoder, cora.graph, cora.x)
    assert z.shape == (cora.num_nodes, 32) and torch.isfinite(z).all()
    assert torch.equal(z, graphmae2.load_encoder(run_dir).forward(cora.graph, cora.x))
    seed_dir = run_dir / "seed-0"
    manifest = json.loads((seed_dir / "manifest.json").read_text())
    from graphmae2.manifest import tensor_digest

    assert tensor_digest(z) == manifest["embedding_digest"]


def test_embed_cli_writes_npy_and_labels(run_dir, tmp_path, capsys):
    out = tmp_path / "emb.npy"
    assert main(["--embed", "--checkpoint", str(run_dir / "checkpoint.pt"), "--output", str(out)]) == 0
    z = np.load(out)
    assert z.shape == (2708, 32)
    assert np.load(tmp_path / "labels.npy").shape == (2708,)
    assert main(["--embed", "--checkpoint", str(run_dir), "--output", str(tmp_path / "emb.pt")]) == 0
    assert torch.equal(torch.load(tmp_path / "emb.pt", weights_only=True), torch.from_numpy(z))
    assert main(["--embed", "--checkpoint", str(run_dir), "--output", str(tmp_path / "e.csv")]) == 2
    assert "must end in .npy or .pt" in capsys.readouterr().err


@pytest.mark.parametrize("mode,key", [("finetune", "test_acc"), ("cluster", "nmi")])
def test_evaluation_modes_report_their_mode_last(mode, key, tmp_path, capsys):
    args = ["--config", "cora.yaml", "--out", str(tmp_path), "--quiet", "--eval", mode,
            "--set", *tiny_overrides(**{"eval.finetune_max_epoch": 5})]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"{key}: ") and last.endswith(f"({mode})")
    metrics = json.loads(next(tmp_path.iterdir()).joinpath("metrics.json").read_text())
    assert metrics["mode"] == mode and f"{key}_mean" in metrics


def test_cluster_numbers_repeat(run_dir, cora):
    from graphmae2.evaluation import cluster

    z = graphmae2.embed(graphmae2.load_encoder(run_dir), cora.graph, cora.x)
    assert cluster(z, cora.y, cora.num_classes, seed=0) == cluster(z, cora.y, cora.num_classes, seed=0)


def test_example_script_runs_on_a_tiny_checkpoint(run_dir):
    proc = subprocess.run([sys.executable, "examples/node_classification.py", str(run_dir / "checkpoint.pt"),
                           "--epochs", "5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("val_acc: ")


def test_corrupted_checkpoint_gives_one_line_error(tmp_path, run_dir):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes((run_dir / "checkpoint.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: not a readable graphmae2 checkpoint") as info:
        graphmae2.load_encoder(bad)
    assert "\n" not in str(info.value)
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="not a graphmae2 checkpoint"):
        graphmae2.load_encoder(bad)


def test_checkpoint_whose_config_does_not_match_its_weights(tmp_path, run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["config"]["model"]["num_hidden"] = 64
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="weights do not match the stored config"):
        graphmae2.load_encoder(tmp_path / "checkpoint.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "graphmae2-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable graphmae2 checkpoint"):
        graphmae2.load_encoder(path)


def test_row_feature_norm_is_applied_in_training_and_by_the_loaded_encoder(tmp_path, cora):
    """With data.feature_norm=row the encoder trains on scaled features, and the loaded
    encoder scales raw input the same way (bitwise: same embeddings as at the end of training)."""
    from graphmae2.manifest import tensor_digest

    assert main(["--config", "cora.yaml", "--out", str(tmp_path), "--quiet", "--set",
                 *tiny_overrides(**{"data.feature_norm": "row", "train.max_epoch": 2})]) == 0
    run = next(tmp_path.iterdir())
    encoder = graphmae2.load_encoder(run)
    z = graphmae2.embed(encoder, cora.graph, cora.x)
    manifest = json.loads((run / "seed-0" / "manifest.json").read_text())
    assert tensor_digest(z) == manifest["embedding_digest"]
    with torch.no_grad():
        unscaled = encoder.encoder(cora.graph, cora.x)
    assert not torch.allclose(z, unscaled)
