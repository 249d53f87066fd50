"""CUDA determinism: run on a machine with a GPU (`pytest -m cuda`); skipped without one."""
import pytest
import torch
from conftest import tiny_overrides

from graphmae2.config import load_config
from graphmae2.manifest import read_manifest
from graphmae2.trainer import train_seed

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_two_cuda_runs_are_bitwise_identical(cora, tmp_path):
    cfg = load_config(None, tiny_overrides(**{"model.num_hidden": 64, "model.num_heads": 4,
                                               "train.max_epoch": 10}))
    dev = torch.device("cuda")
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    a = train_seed(cfg, cora, 0, dev, a_dir, progress=False)
    b = train_seed(cfg, cora, 0, dev, b_dir, progress=False)
    assert a.losses == b.losses
    for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(p, q)
    g, x = cora.graph.to(dev), cora.x.to(dev)
    assert torch.equal(a.model.encode(g, x), b.model.encode(g, x))
    ma, mb = read_manifest(a_dir), read_manifest(b_dir)
    assert ma["final_params"] == mb["final_params"] and ma["embedding_digest"] == mb["embedding_digest"]


def test_cuda_ops_are_deterministic_under_the_flag(random_graph):
    from graphmae2 import ops

    torch.use_deterministic_algorithms(True)
    try:
        g = random_graph.to("cuda")
        x0 = torch.randn(g.num_nodes, 4, 32, device="cuda")
        w0 = torch.rand(g.num_edges, 4, device="cuda")
        grads = []
        for _ in range(3):
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            ops.spmm(g, x, w).pow(2).sum().backward()
            grads.append((x.grad, w.grad))
        assert all(torch.equal(a, b) for g1, g2 in zip(grads, grads[1:]) for a, b in zip(g1, g2))
    finally:
        torch.use_deterministic_algorithms(False)
