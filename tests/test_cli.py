"""The command line as a user runs it: run directory contents, final line, errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_overrides

from graphmae2.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_writes_run_directory_and_final_line(tmp_path, capsys):
    rc = main(["--config", "cora.yaml", "--seeds", "0", "1", "--out", str(tmp_path), "--quiet",
               "--set", *tiny_overrides()])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test_acc: ") and last.endswith("over 2 seeds (linear)")
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("cora-")
    for name in ("config.yaml", "metrics.json", "checkpoint.pt", "seed-0/checkpoint.pt",
                 "seed-0/manifest.json", "seed-1/result.json"):
        assert (run / name).is_file(), name
    assert list((run / "seed-0").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["seeds"]) == {"0", "1"}
    for seed in metrics["seeds"].values():
        assert {"test_acc", "val_acc", "epochs", "seconds"} <= set(seed)
    assert f"{metrics['test_acc_mean']:.4f}" in last
    assert "max_epoch: 3" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("args,message", [
    (["--config", "nope.yaml"], "config file 'nope.yaml' not found; available in"),
    (["--config", "cora.yaml", "--set", "train.max_epch=3"], "did you mean 'train.max_epoch'"),
    (["--config", "cora.yaml", "--set", "model.mask_rate=2"], "model.mask_rate: 2.0 is out of range"),
    (["--config", "cora.yaml", "--set", "data.dataset=arxiv"], "data.dataset: 'arxiv' is not allowed"),
    (["--resume", "/nonexistent/run"], "no config.yaml there"),
    (["--config", "cora.yaml", "--jobs", "2"], "--jobs 2: only sweeps run in parallel"),
    (["--config", "cora.yaml", "--sweep", "ema.momentum=0,1", "--jobs", "0"], "--jobs 0: give at least 1"),
])
def test_user_errors_are_one_line_with_exit_status_2(args, message, capsys, tmp_path):
    assert main(args + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_train_py_subprocess_reports_error_without_traceback():
    proc = subprocess.run([sys.executable, "train.py", "--config", "cora.yaml", "--set", "ema.momentum=2"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "ema.momentum: 2.0 is out of range; allowed: float >= 0.0 and <= 1.0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_config_keys():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "model.mask_rate" in proc.stdout and "--seeds" in proc.stdout


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_unknown_or_unsupported_device_is_one_line_exit_2(capsys, tmp_path):
    for name, message in (("tpu", "--device tpu: not a device name; allowed: auto, cpu, cuda or cuda:N"),
                          ("meta", "--device meta: graphmae2 runs on the CPU or CUDA")):
        assert main(["--config", "cora.yaml", "--device", name, "--out", str(tmp_path)]) == 2
        assert message in _one_line_error(capsys)


def test_out_naming_an_existing_file_is_one_line_exit_2(capsys, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    assert main(["--config", "cora.yaml", "--out", str(tmp_path / "taken"), "--set", *tiny_overrides()]) == 2
    assert f"--out {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file, not a directory" in _one_line_error(capsys)
    assert (tmp_path / "taken").read_text() == "keep me"


def test_config_that_is_not_utf8_names_the_file(capsys, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("train:\n  max_epoch: 3  # caf\xe9\n".encode("latin-1"))
    assert main(["--config", str(bad), "--out", str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert f"{bad}: not UTF-8 text (byte 0xe9 at offset" in err and "save the config as UTF-8" in err


def test_failed_download_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    import graphmae2.datasets.loader as loader
    from graphmae2.datasets import DownloadError

    def offline(name, root):
        raise DownloadError(f"could not download ind.{name}.x; place the Planetoid files in {root} by hand")

    monkeypatch.setattr(loader, "fetch_planetoid", offline)
    assert main(["--config", "cora.yaml", "--set", "data.dataset=pubmed", "--out", str(tmp_path)]) == 2
    assert "could not download ind.pubmed.x; place the Planetoid files" in _one_line_error(capsys)


SYNTHETIC = ["data.dataset=synthetic", "data.synthetic_nodes=300", "data.synthetic_edges=1500",
             "data.synthetic_features=16"]


def test_sweep_and_embed_work_on_every_dataset_the_schema_allows(tmp_path, capsys):
    """Regression: --sweep and --embed loaded data by Planetoid name only, so the
    synthetic and ogbn-* datasets failed with 'unknown dataset'."""
    sets = [*tiny_overrides(**{"train.max_epoch": 1}), *SYNTHETIC]
    assert main(["--config", "cora.yaml", "--sweep", "ema.momentum=0,0.99", "--out", str(tmp_path / "sweep"),
                 "--quiet", "--set", *sets]) == 0
    assert "sweep: 2 points x 1 seeds" in capsys.readouterr().out
    assert main(["--config", "cora.yaml", "--out", str(tmp_path / "run"), "--quiet", "--set", *sets]) == 0
    (run,) = (tmp_path / "run").iterdir()
    assert main(["--embed", "--checkpoint", str(run / "checkpoint.pt"), "--output", str(tmp_path / "z.npy")]) == 0
    import numpy as np

    assert np.load(tmp_path / "z.npy").shape == (300, 32)


def test_a_sweep_writes_each_point_file_once(tmp_path, monkeypatch, cora):
    """Regression: each point's config.yaml and metrics.json were written by the run and
    then overwritten by the sweep."""
    import torch

    from graphmae2.config import load_config
    from graphmae2.sweep import parse_sweep, run_sweep

    writes = []
    real = Path.write_text

    def counting(self, *args, **kwargs):
        writes.append(self.relative_to(tmp_path).as_posix())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", counting)
    run_sweep(load_config(None, tiny_overrides(**{"train.max_epoch": 1})), parse_sweep(["ema.momentum=0,1"]),
              [0, 1], tmp_path, torch.device("cpu"), data=cora, progress=False)
    for point in ("ema.momentum=0", "ema.momentum=1"):
        for name in ("config.yaml", "metrics.json"):
            assert writes.count(f"{point}/{name}") == 1, (point, name, writes)
    metrics = json.loads((tmp_path / "ema.momentum=1" / "metrics.json").read_text())
    assert metrics["point"] == {"ema.momentum": 1.0} and metrics["n_failed"] == 0 and metrics["n_seeds"] == 2
