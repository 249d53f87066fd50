"""A large graph from end to end in one command, phase by phase: the graph, every
ego-graph, a fixed number of pre-training steps, the embeddings of every node (written
to a memory-mapped ``.npy``), and the linear probe on them against the same probe on the
raw features.

    python benchmarks/scaling/end_to_end.py --config synthetic-1m.yaml --out runs/e2e-1m
    python benchmarks/scaling/end_to_end.py --config synthetic-10m.yaml --write-synthetic 10000000 50000000 \
        --out runs/e2e-10m

The 10M-node graph is written once to the config's ``data.path`` folder (CSR, labels
and 128 dense float32 features per node, memory-mapped when read; 5.6 GB).

Each phase's time, the process's peak RSS after it (``VmHWM``; forked ego-graph
workers are reported separately) and its resident memory split into anonymous memory and
pages of mapped files (memory-mapped features and embeddings, which the kernel can
drop) go to ``--out/phases.json`` as the phase ends, and the table is printed at the end.
Phases resume: the written graph is kept, ego-graphs come from their cache, training
continues from its checkpoint and the embedding pass that ends it from the last rows it
recorded (once a minute), finished embeddings and probes are read back, so a run cut
short repeats at most a minute of embeddings or the other phase it was in.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch

from graphmae2.batches.ego import EgoBatches
from graphmae2.config import load_config
from graphmae2.datasets import feature_matrix, load_data
from graphmae2.datasets.synthetic import write_synthetic_graph
from graphmae2.evaluation import linear_probe
from graphmae2.trainer import train_seed

CPU = torch.device("cpu")


def status_mib(key: str) -> float:
    """A ``/proc/self/status`` memory line, MiB: ``VmHWM`` (peak resident set), ``RssAnon``
    (resident process memory), ``RssFile`` (resident pages of mapped files, such as
    memory-mapped features: the kernel can drop them under pressure)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_peak_rss_mib() -> float:
    """The largest peak RSS of any finished child process, MiB: the ego-graph workers up
    to that phase; after it, a child forked later (the manifest's environment probe)
    reports the size this process had when it forked, not memory of its own."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class Phases:
    """Times this invocation's phases and rewrites ``phases.json`` as each ends (times of
    earlier invocations stay in their logs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list = []

    def run(self, name: str, fn: Callable[[], Any], note: Callable[[Any], str] = lambda _: "") -> Any:
        tic = time.perf_counter()
        out = fn()
        row = {"phase": name, "seconds": round(time.perf_counter() - tic, 1),
               "peak_rss_mib": round(status_mib("VmHWM")), "rss_anon_mib": round(status_mib("RssAnon")),
               "rss_file_mib": round(status_mib("RssFile")),
               "children_peak_rss_mib": round(children_peak_rss_mib()), "note": note(out)}
        self.rows.append(row)
        self.path.write_text(json.dumps(self.rows, indent=1))
        print(f"{name}: {row['seconds']} s, peak RSS {row['peak_rss_mib']} MiB {row['note']}", flush=True)
        return out

    def table(self) -> str:
        lines = ["| phase | seconds | peak RSS (MiB) | at its end: anonymous / mapped files (MiB) "
                 "| largest worker (MiB) | note |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['phase']} | {r['seconds']} | {r['peak_rss_mib']} | {r['rss_anon_mib']} / "
                  f"{r['rss_file_mib']} | {r['children_peak_rss_mib']} | {r['note']} |" for r in self.rows]
        return "\n".join(lines)


def probe(x: Any, data: Any, cfg: Any) -> Dict[str, float]:
    """The linear probe on the labelled nodes' rows only (on a graph that labels 3 % of
    10M nodes, the rest of ``x`` is never read)."""
    labelled = (data.train_mask | data.val_mask | data.test_mask).numpy()
    rows = torch.from_numpy(np.flatnonzero(labelled))
    z = torch.as_tensor(np.asarray(x[rows] if isinstance(x, torch.Tensor) else x[rows.numpy()]))
    result = linear_probe(z, data.y[rows], data.train_mask[rows], data.val_mask[rows], data.test_mask[rows],
                          lr=cfg.eval.lr, weight_decay=cfg.eval.weight_decay, max_epoch=cfg.eval.max_epoch,
                          seed=0, ties=cfg.eval.ties)
    return {"val_acc": result.val_acc, "test_acc": result.test_acc}


def cached(path: Path, compute: Callable[[], Dict[str, float]]) -> Dict[str, float]:
    if path.exists():
        return json.loads(path.read_text())
    out = compute()
    path.write_text(json.dumps(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-synthetic", nargs=2, type=int, metavar=("NODES", "EDGES"),
                   help="first write a synthetic graph of NODES nodes and EDGES undirected edges, dense "
                        "features, to the config's data.path folder (unless it is there)")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.data.mode != "minibatch":
        p.error(f"{args.config}: data.mode={cfg.data.mode}; this benchmark is for minibatch configs")
    if args.write_synthetic and (cfg.data.dataset != "npz" or cfg.data.path is None):
        p.error("--write-synthetic writes the folder data.path names: the config needs data.dataset: npz and data.path")
    args.out.mkdir(parents=True, exist_ok=True)
    phases = Phases(args.out / "phases.json")

    if args.write_synthetic:
        folder = Path(cfg.data.path).expanduser()
        nodes, edges = args.write_synthetic
        phases.run("write graph", lambda: folder.exists() or write_synthetic_graph(folder, nodes, edges),
                   lambda _: f"{folder} ({sum(f.stat().st_size for f in folder.iterdir()) / 2**30:.1f} GiB)")
    data = phases.run("graph", lambda: load_data(cfg.data),
                      lambda d: f"{d.num_nodes:,} nodes, {d.graph.num_edges:,} directed edges")
    source = phases.run("ego-graphs", lambda: EgoBatches.from_config(cfg, data, CPU),
                        lambda s: f"{len(s.egos):,} ego-graphs of at most {cfg.data.ego_k} nodes")
    steps = cfg.train.max_epoch * source.steps_per_epoch
    seed_dir = args.out / f"seed-{args.seed}"
    emb_path = seed_dir / "embeddings.npy"

    def pretrain() -> str:
        if (seed_dir / "manifest.json").exists() and emb_path.exists():
            return "done earlier"
        # Checkpoints every epoch, and the embeddings of every node streamed to seed_dir/embeddings.npy.
        run = train_seed(cfg, source, args.seed, CPU, seed_dir, resume=True)
        return (f"{steps} steps of {cfg.data.batch_size} ego-graphs in {run.seconds:.0f} s (final loss "
                f"{run.losses[-1]:.4f}), then every node's embedding to {emb_path.name}")

    phases.run("pre-training, embeddings", pretrain, lambda note: note)
    emb = np.load(emb_path, mmap_mode="r")
    ours = phases.run("probe, embeddings", lambda: cached(args.out / "probe.json", lambda: probe(emb, data, cfg)),
                      lambda r: f"val {r['val_acc']:.4f} test {r['test_acc']:.4f}")
    raw_features = feature_matrix(cfg.data, data)
    raw = phases.run("probe, raw features",
                     lambda: cached(args.out / "probe_raw.json", lambda: probe(raw_features, data, cfg)),
                     lambda r: f"val {r['val_acc']:.4f} test {r['test_acc']:.4f}")
    print(phases.table())
    print(f"linear probe test accuracy: embeddings {ours['test_acc']:.4f}, raw features {raw['test_acc']:.4f}")


if __name__ == "__main__":
    main()
