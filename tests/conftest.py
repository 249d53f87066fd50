"""Shared fixtures: tiny hand-built graphs and a cached Cora."""
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
