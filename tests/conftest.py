"""Shared fixtures: tiny hand-built graphs and a cached Cora; benchmark scripts as modules."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from graphmae2.graph import Graph


@pytest.fixture
def small_graph() -> Graph:
    """5 nodes: a directed cycle 0->1->2->3->0, an edge 4->0, self-loops on all."""
    src = torch.tensor([0, 1, 2, 3, 4])
    dst = torch.tensor([1, 2, 3, 0, 0])
    return Graph.from_edges(src, dst, 5).add_self_loops()


@pytest.fixture
def random_graph() -> Graph:
    g = torch.Generator().manual_seed(0)
    n = 40
    src = torch.randint(0, n, (160,), generator=g)
    dst = torch.randint(0, n, (160,), generator=g)
    return Graph.from_edges(src, dst, n).symmetrize().add_self_loops()


@pytest.fixture(scope="session")
def cora():
    from graphmae2 import load_dataset

    return load_dataset("cora")


def tiny_overrides(**extra):
    """`--set` items for a model small enough to train in seconds on 2 cores."""
    items = {"model.num_hidden": 32, "model.num_heads": 2, "model.projector_hidden": 16,
             "model.num_remask": 2, "train.max_epoch": 3, "train.checkpoint_every": 1,
             "eval.max_epoch": 20}
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def fail_forward_from(monkeypatch, first, error=None):
    """``GraphMAE2.forward`` calls after the ``first`` ones give a NaN latent loss, or raise ``error``."""
    from graphmae2.model import GraphMAE2

    real = GraphMAE2.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > first:
            if error is not None:
                raise error
            out["latent"] = out["latent"] * float("nan")
            out["loss"] = out["rec"] + out["latent"]
        return out

    monkeypatch.setattr(GraphMAE2, "forward", forward)


def run_torchrun(args, *, cwd, env, nproc=2, timeout=600):
    """``torchrun --standalone --nproc_per_node nproc <args>``, with ``PYTHONFAULTHANDLER`` set
    so a rank that aborts prints its Python stack.

    gloo's TCP transport can kill a rank with a signal while the ranks connect (seen once in
    CI on 2026-12-04: rank 1 SIGABRT, rank 0 then SIGTERM'd; not reproduced in 30 local
    runs, with and without both cores loaded; pytorch/pytorch#188266 reports a SIGABRT in
    gloo's connection set-up). When the launcher names a signal as the first failure, the
    launch is retried once, with a warning carrying the first attempt's output; a Python
    error (exit code 1) or a wrong result is never retried.
    """
    import re
    import subprocess
    import sys
    import warnings

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               *args]
    env = dict(env, PYTHONFAULTHANDLER="1")
    for attempt in (1, 2):
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
        root_cause = done.stderr.rpartition("Root Cause")[2]
        signal = re.search(r"exitcode\s*:\s*-\d+", root_cause)
        if done.returncode == 0 or signal is None or attempt == 2:
            break
        warnings.warn(f"torchrun: a rank died by a signal ({signal.group(0)}), retrying once; "
                      f"its output:\n{done.stderr[:4000]}", stacklevel=2)
    assert done.returncode == 0, f"{done.stderr[:4000]}\n...\n{done.stderr[-1500:]}"
    return done


def load_benchmark(name: str, folder_name: str = "benchmarks") -> ModuleType:
    """``<name>.py`` under ``benchmarks/`` (any task folder) or ``<folder_name>/``,
    imported as a module (the folder is not a package; it goes on ``sys.path`` as it does
    when a script there runs, so scripts can import their neighbours)."""
    root = Path(__file__).resolve().parents[1] / folder_name
    path = next(root.rglob(f"{name}.py"))
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
