"""Mini-batch pre-training on ego-graphs, and torchrun with 2 CPU processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_torchrun

from graphmae2.batches.ego import EgoBatches, EgoCollate, ego_embeddings, induced_union, shard_rows
from graphmae2.cli import main
from graphmae2.config import load_config
from graphmae2.datasets import load_data
from graphmae2.datasets.synthetic import synthetic_graph
from graphmae2.ema import EMATeacher
from graphmae2.feature_rows import SparseRows, mostly_zero
from graphmae2.manifest import tensor_digest
from graphmae2.masking import draw_ego_masks
from graphmae2.sampling import ego_graphs
from graphmae2.trainer import build_model, train_seed

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_induced_union_equals_per_ego_subgraphs(random_graph):
    egos = [np.array([0, 3, 5, 7]), np.array([3, 1, 2]), np.array([10, 11])]
    union = induced_union(random_graph.indptr.numpy(), random_graph.indices.numpy(), egos)
    offset, expected = 0, set()
    for e in egos:
        sub = random_graph.subgraph(torch.from_numpy(e)).add_self_loops()
        expected |= {(int(s) + offset, int(d) + offset) for s, d in zip(*sub.edges())}
        offset += len(e)
    assert set(zip(*[t.tolist() for t in union.edges()])) == expected
    scratch = np.full(random_graph.num_nodes, -1, dtype=np.int32)
    again = induced_union(random_graph.indptr.numpy(), random_graph.indices.numpy(), egos, scratch)
    assert torch.equal(again.indptr, union.indptr) and torch.equal(again.indices, union.indices)
    assert (scratch == -1).all()  # left as found, ready for the next batch


@pytest.fixture(scope="module")
def small():
    cfg = load_config("synthetic-small.yaml")
    data = synthetic_graph(cfg.data.synthetic_nodes, cfg.data.synthetic_edges,
                           num_features=cfg.data.synthetic_features)
    egos = ego_graphs(data.graph, k=cfg.data.ego_k, progress=False)
    return cfg, data, egos


def test_masks_of_an_ego_do_not_depend_on_its_batch(small):
    cfg, data, egos = small
    collate = EgoCollate(egos, data.graph, data.x)
    one, two = collate([5]), collate([7, 5])
    alone = draw_ego_masks(cfg.model, 0, 3, one.sizes, one.ego_ids)[0].mask_nodes
    together = draw_ego_masks(cfg.model, 0, 3, two.sizes, two.ego_ids)[0]
    size7 = len(egos[7])
    in_batch = together.mask_nodes[together.mask_nodes >= size7] - size7
    assert torch.equal(alone, in_batch)


def test_minibatch_pretraining_learns_and_embeds_every_node(small, tmp_path):
    cfg, data, egos = small
    result = train_seed(cfg, EgoBatches(cfg, data.graph, data.x, egos, CPU), 0, CPU, tmp_path, progress=False)
    assert len(result.losses) == cfg.train.max_epoch and all(np.isfinite(result.losses))
    assert result.losses[-1] < result.losses[0]
    z = ego_embeddings(result.model, data.graph, data.x, egos, CPU, batch_size=300)
    assert z.shape == (data.num_nodes, cfg.model.num_hidden) and torch.isfinite(z).all()


def test_memory_mapped_features_give_the_same_run(small, tmp_path):
    cfg, data, egos = small
    path = tmp_path / "x.npy"
    np.save(path, data.x.numpy())
    a = train_seed(cfg, EgoBatches(cfg, data.graph, data.x, egos, CPU), 0, CPU, progress=False)
    b = train_seed(cfg, EgoBatches(cfg, data.graph, np.load(path, mmap_mode="r"), egos, CPU), 0, CPU, progress=False)
    assert a.losses == b.losses


def test_loader_workers_give_the_same_run(small):
    cfg, data, egos = small
    workers = load_config("synthetic-small.yaml", ["data.num_workers=2"])
    a = train_seed(cfg, EgoBatches(cfg, data.graph, data.x, egos, CPU), 0, CPU, progress=False)
    b = train_seed(workers, EgoBatches(workers, data.graph, data.x, egos, CPU), 0, CPU, progress=False)
    assert a.losses == b.losses
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_minibatch_cli_run(tmp_path, capsys):
    assert main(["--config", "synthetic-small.yaml", "--out", str(tmp_path), "--quiet",
                 "--set", f"data.root={tmp_path / 'cache'}"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    acc = float(last.split()[1])
    assert acc > 0.3, last  # 10 classes: chance is 0.1
    assert list((tmp_path / "cache" / "ego").glob("ego-*.npz"))


@pytest.mark.slow
def test_torchrun_two_processes_agree_with_one(tmp_path):
    """Two gloo ranks: teacher digests equal across ranks, and the loss trace equals one
    process on the same global batches to 1e-4 relative. Same ego-graphs and per-ego
    masks; what differs is that each rank averages its own shard (ego-graphs of unequal
    size weigh nodes slightly differently than one global mean) and the order of the
    gradient sum. Dropout off so the draws match."""
    sets = [f"data.root={tmp_path / 'cache'}", "model.in_drop=0", "model.attn_drop=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, "train.py", "--config", "synthetic-small.yaml", "--quiet",
                             "--out", str(tmp_path / "one"), "--set", *sets],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = run_torchrun(["train.py", "--config", "synthetic-small.yaml", "--quiet",
                          "--out", str(tmp_path / "two"), "--set", *sets], cwd=ROOT, env=env)
    one = json.loads(next((tmp_path / "one").glob("*/seed-0/manifest.json")).read_text())
    seed_dir = next((tmp_path / "two").glob("*/seed-0"))
    two = json.loads((seed_dir / "manifest.json").read_text())
    assert two["world_size"] == 2 and len(set(two["teacher_digest_by_rank"])) == 1
    assert np.allclose(one["loss_trace"], two["loss_trace"], rtol=1e-4, atol=0)
    assert multi.stdout.count("test_acc:") == 1  # only rank 0 reports
    # The embedding pass was split between the ranks (2000 nodes: rows 0-1023 and 1024-1999),
    # bitwise what one process computes from the final weights.
    written = np.load(seed_dir / "embeddings.npy")
    assert not list(seed_dir.glob("*.partial.npy"))
    assert tensor_digest(torch.from_numpy(written)) == two["embedding_digest"]
    cfg = load_config("synthetic-small.yaml", sets)
    data = load_data(cfg.data)
    model = build_model(cfg, data.num_features, 0)
    model.load_state_dict(torch.load(seed_dir / "checkpoint.pt", weights_only=True)["model"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks ran
    try:
        assert np.array_equal(EgoBatches.from_config(cfg, data, CPU).embeddings(model).numpy(), written)
    finally:
        torch.set_num_threads(threads)


def test_embedding_shards_are_whole_batches_and_equal_one_pass(small):
    """Each rank's rows are whole batches of the one-process pass, so the shards written
    into one array equal that pass bitwise."""
    cfg, data, egos = small
    assert shard_rows(2000, 512, 0, 2) == (0, 1024) and shard_rows(2000, 512, 1, 2) == (1024, 2000)
    assert shard_rows(100, 512, 0, 3) == (0, 0) and shard_rows(100, 512, 2, 3) == (0, 100)
    model = build_model(cfg, data.num_features, 0)
    whole = ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300).numpy()
    out = np.full_like(whole, np.nan)
    for rank in range(3):
        rows = shard_rows(len(egos), 300, rank, 3)
        ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300, out=out, rows=rows)
    assert np.array_equal(out, whole)


def test_an_embedding_pass_cut_short_resumes_where_it_left_off(small, tmp_path, monkeypatch):
    """A pass into a file that dies mid-way continues, with ``resume``, from the rows it
    had recorded, and the file equals an uninterrupted pass bitwise; other weights (or
    no ``resume``) start over."""
    import graphmae2.batches.ego as ego

    cfg, data, egos = small
    source = EgoBatches(cfg, data.graph, data.x, egos, CPU)
    model = build_model(cfg, data.num_features, 0)
    monkeypatch.setattr(ego, "FLUSH_SECONDS", 0.0)  # record after every batch
    monkeypatch.setattr(ego, "EMBED_BATCH", 300)  # 2000 nodes: 7 batches
    whole = source.embeddings(model, spill=tmp_path / "whole.npy").numpy().copy()
    calls = []
    real_forward = type(model.encoder).forward

    def dies_at_batch_4(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_forward(self, *args, **kwargs)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real_forward(self, *args, **kwargs)

    spill = tmp_path / "cut" / "embeddings.npy"
    spill.parent.mkdir()
    monkeypatch.setattr(type(model.encoder), "forward", dies_at_batch_4)
    with pytest.raises(KeyboardInterrupt):
        source.embeddings(model, spill=spill)
    assert not spill.exists() and json.loads(spill.with_name("embeddings.partial.rank0-of-1.json").read_text()) == {
        "next": 900}
    calls.clear()
    monkeypatch.setattr(type(model.encoder), "forward", counted)
    resumed = source.embeddings(model, spill=spill, resume=True)
    assert len(calls) == 4  # batches 4-7 only
    assert np.array_equal(resumed.numpy(), whole) and sorted(p.name for p in spill.parent.iterdir()) == [
        "embeddings.npy"]
    # Other weights: the partial file is not theirs, so the pass starts over.
    spill.unlink()
    calls.clear()
    monkeypatch.setattr(type(model.encoder), "forward", dies_at_batch_4)
    with pytest.raises(KeyboardInterrupt):
        source.embeddings(model, spill=spill)
    calls.clear()
    monkeypatch.setattr(type(model.encoder), "forward", counted)
    other = build_model(cfg, data.num_features, 1)
    fresh = source.embeddings(other, spill=spill, resume=True).numpy()
    assert len(calls) == 7
    assert np.array_equal(fresh, source.embeddings(other).numpy())


def test_sparse_rows_gather_equals_dense_indexing():
    x = torch.zeros(50, 30)
    x[torch.randint(0, 50, (60,), generator=torch.Generator().manual_seed(0)),
      torch.randint(0, 30, (60,), generator=torch.Generator().manual_seed(1))] = torch.rand(60)
    rows = torch.tensor([4, 0, 49, 4, 17])
    sparse = SparseRows.from_dense(x)
    assert torch.equal(sparse.dense_rows(rows), x[rows])
    assert torch.equal(sparse.take_rows(rows).dense_rows(torch.arange(5)), x[rows])
    assert mostly_zero(x) and not mostly_zero(torch.ones(50, 30))
    assert mostly_zero(x.numpy(), max_rows=7)  # evenly spaced rows of a large matrix


def test_sparse_ego_batches_equal_the_dense_path_in_float64(cora):
    """Mini-batches of sparse features (gathered as SparseRows, first projection sparse)
    against the same batch densified: the same losses and gradients."""
    cfg = load_config("cora.yaml", ["data.mode=minibatch", "model.num_hidden=32", "model.num_heads=2",
                                    "data.ego_k=16", "train.precision=fp32"])
    egos = ego_graphs(cora.graph, k=16, progress=False)
    ids = list(range(0, 40, 3))
    sparse = EgoCollate(egos, cora.graph, cora.x.double(), sparse=True)(ids)
    dense = EgoCollate(egos, cora.graph, cora.x.double())(ids)
    assert isinstance(sparse.x, SparseRows) and torch.equal(sparse.x.dense_rows(torch.arange(len(dense.x))), dense.x)
    model = build_model(cfg, cora.num_features, 0).double().eval()  # no dropout: paths comparable
    teacher = EMATeacher(model.ema_source())
    mask, remasks = draw_ego_masks(cfg.model, 0, 0, dense.sizes, dense.ego_ids)

    def loss_and_grads(x, sparse_input):
        model.zero_grad(set_to_none=True)
        out = model(dense.graph, x, teacher, mask, remasks, sparse_input, latent_nodes=dense.centres)
        out["loss"].backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (out_s, grad_s), (out_d, grad_d) = loss_and_grads(sparse.x, True), loss_and_grads(dense.x, False)
    for k in out_d:
        assert torch.allclose(out_s[k], out_d[k], rtol=0, atol=1e-10), k
    assert grad_s.keys() == grad_d.keys()
    for n in grad_d:
        assert torch.allclose(grad_s[n], grad_d[n], rtol=0, atol=1e-10 * max(1.0, float(grad_d[n].abs().max()))), n
    with pytest.raises(ValueError, match="sparse_input"):
        model(dense.graph, sparse.x, teacher, mask, remasks, False)


def test_steps_per_epoch_caps_an_epoch_at_the_first_batches_of_its_order(small):
    cfg, data, egos = small
    full = EgoBatches(cfg, data.graph, data.x, egos, CPU)
    capped_cfg = load_config("synthetic-small.yaml", ["data.steps_per_epoch=2"])
    capped = EgoBatches(capped_cfg, data.graph, data.x, egos, CPU)
    assert full.steps_per_epoch > 2 and capped.steps_per_epoch == 2
    a, b = list(full.batches(0, 1)), list(capped.batches(0, 1))
    assert [x.step for x in b] == [2, 3]  # global steps of epoch 1 at two steps an epoch
    for capped_batch, full_batch in zip(b, a[:2]):  # the same ego-graphs: the epoch's order is unchanged
        assert torch.equal(capped_batch.graph.indptr, full_batch.graph.indptr)
        assert torch.equal(capped_batch.graph.indices, full_batch.graph.indices)


def test_ego_embeddings_fill_a_memory_map_as_they_go(small, tmp_path):
    cfg, data, egos = small
    model = build_model(cfg, data.num_features, 0)
    whole = ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300)
    out = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=np.float32, shape=tuple(whole.shape))
    assert ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300, out=out) is out
    out.flush()
    assert np.array_equal(np.load(tmp_path / "z.npy"), whole.numpy())
    assert torch.equal(ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300, num_workers=2), whole)


def test_a_minibatch_run_streams_every_nodes_embeddings_to_its_directory(small, tmp_path):
    """The manifest's embedding pass is written to seed_dir/embeddings.npy (a large graph's
    embeddings need not fit in memory) and is the evaluation's input, digest and all."""
    cfg, data, egos = small
    source = EgoBatches(cfg, data.graph, data.x, egos, CPU)
    run = train_seed(cfg, source, 0, CPU, tmp_path, progress=False)
    stored = np.load(tmp_path / "embeddings.npy")
    assert np.array_equal(stored, run.embeddings.numpy()) and not (tmp_path / "embeddings.partial.npy").exists()
    assert np.array_equal(stored, source.embeddings(run.model).numpy())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["embedding_digest"] == tensor_digest(torch.from_numpy(stored))


def test_ego_embeddings_compute_the_centres_as_the_whole_ego_does(small):
    cfg, data, egos = small
    model = build_model(cfg, data.num_features, 0).eval()
    z = ego_embeddings(model, data.graph, data.x, egos, CPU, batch_size=300)
    batch = EgoCollate(egos, data.graph, data.x)(list(range(len(egos))))
    with torch.no_grad():
        whole = model.encoder(batch.graph, batch.x)[batch.centres]
    assert torch.allclose(z, whole, atol=1e-5)
