"""The tests' torchrun launcher retries a rank killed by a signal once, and never a Python error."""
import os

import pytest
from conftest import run_torchrun

SCRIPT = """
import os, sys
from pathlib import Path
runs = Path(sys.argv[1]) / f"runs-{os.environ['RANK']}"
runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
if sys.argv[2] == "abort" and os.environ["RANK"] == "1" and len(runs.read_text()) == 1:
    os.abort()
if sys.argv[2] == "raise":
    raise ValueError("a bug")
"""


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "rank.py"
    path.write_text(SCRIPT)
    return path


def test_a_rank_killed_by_a_signal_is_retried_once(script, tmp_path):
    with pytest.warns(UserWarning, match="died by a signal"):
        run_torchrun([str(script), str(tmp_path), "abort"], cwd=tmp_path, env=os.environ)
    assert (tmp_path / "runs-1").read_text() == "xx"


def test_a_python_error_is_not_retried(script, tmp_path):
    with pytest.raises(AssertionError, match="a bug"):
        run_torchrun([str(script), str(tmp_path), "raise"], cwd=tmp_path, env=os.environ)
    assert (tmp_path / "runs-0").read_text() == "x"
