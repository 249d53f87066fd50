"""The command line as a user runs it: run directory contents, final line, errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphmae2.cli import main

from conftest import tiny_overrides

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
