"""Faults: NaN losses, interrupted writes, existing run directories."""
import os

import pytest
import torch
from conftest import fail_forward_from, tiny_overrides

import graphmae2.checkpoint as checkpoint
import graphmae2.experiment as experiment
from graphmae2.cli import main
from graphmae2.config import load_config
from graphmae2.trainer import NonFiniteLossError, train_seed

CPU = torch.device("cpu")


def nan_from_epoch(monkeypatch, epoch):
    fail_forward_from(monkeypatch, epoch)


def test_nan_loss_stops_naming_epoch_and_part_and_keeps_checkpoint(cora, tmp_path, monkeypatch):
    nan_from_epoch(monkeypatch, 2)
    cfg = load_config(None, tiny_overrides(**{"train.max_epoch": 5}))
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 2 step 2 \(seed 0\): latent = nan"):
        train_seed(cfg, cora, 0, CPU, tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_nan_loss_exits_non_zero_from_the_cli(monkeypatch, tmp_path, capsys):
    nan_from_epoch(monkeypatch, 1)
    assert main(["--config", "cora.yaml", "--out", str(tmp_path), "--quiet", "--set", *tiny_overrides()]) == 1
    err = capsys.readouterr().err
    assert "non-finite loss at epoch 1" in err and "last good checkpoint" in err


def test_nan_loss_skip_mode_continues(cora, monkeypatch):
    nan_from_epoch(monkeypatch, 1)
    cfg = load_config(None, tiny_overrides(**{"train.on_nan": "skip"}))
    result = train_seed(cfg, cora, 0, CPU, progress=False)
    assert len(result.losses) == 3 and all(v != v for v in result.losses[1:])


def test_interrupted_checkpoint_write_keeps_the_last_good_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"config": {}, "in_dim": 1, "seed": 0, "epoch": 1, "model": {}, "teacher": {}}
    checkpoint.save_checkpoint(good, path)

    def dies_half_way(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint({**good, "epoch": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind


def test_existing_run_directory_needs_force(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment.time, "strftime", lambda fmt: "20260101-000000")
    first = experiment.new_run_dir(tmp_path, "cora")
    (first / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="already exists; pass --force"):
        experiment.new_run_dir(tmp_path, "cora")
    assert (first / "keep.txt").exists()
    assert experiment.new_run_dir(tmp_path, "cora", force=True) == first
    assert not (first / "keep.txt").exists()


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"nope.pt: no such checkpoint file"):
        checkpoint.load_checkpoint(tmp_path / "nope.pt")


def test_cuda_out_of_memory_gives_sizes_and_what_to_change(monkeypatch, tmp_path, capsys):
    import graphmae2.experiment as exp

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(exp, "train_seed", oom)
    assert main(["--config", "cora.yaml", "--out", str(tmp_path), "--quiet", "--set", *tiny_overrides()]) == 1
    err = capsys.readouterr().err
    assert "CUDA out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in err
    assert "num_hidden=32" in err and "model.num_remask=1" in err and "--device cpu" in err
    assert len(err.strip().splitlines()) == 1
