"""A large graph from end to end in one command, phase by phase: the graph, every
ego-graph, a fixed number of pre-training steps, the embeddings of every node (written
to a memory-mapped ``.npy``), and the linear probe on them against the same probe on the
raw features.

    python benchmarks/scaling/end_to_end.py --config synthetic-1m.yaml --out runs/e2e-1m

Each phase's time and the process's peak RSS after it (``VmHWM``; forked ego-graph
workers are reported separately) go to ``--out/phases.json`` as the phase ends, and the
table is printed at the end. Phases resume: ego-graphs come from their cache, training
continues from its checkpoint, finished embeddings and probes are read back, so a run
cut short repeats at most the phase it was in.
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

from graphmae2.batches.ego import EgoBatches, ego_embeddings
from graphmae2.config import load_config
from graphmae2.datasets import feature_matrix, load_data
from graphmae2.evaluation import linear_probe
from graphmae2.trainer import train_seed

CPU = torch.device("cpu")


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children_peak_rss_mib() -> float:
    """The largest peak RSS of any finished child process (the ego-graph workers), MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class Phases:
    """Times phases and appends each to ``phases.json`` as it ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = json.loads(path.read_text()) if path.exists() else []

    def run(self, name: str, fn: Callable[[], Any], note: Callable[[Any], str] = lambda _: "") -> Any:
        tic = time.perf_counter()
        out = fn()
        row = {"phase": name, "seconds": round(time.perf_counter() - tic, 1), "peak_rss_mib": round(peak_rss_mib()),
               "children_peak_rss_mib": round(children_peak_rss_mib()), "note": note(out)}
        self.rows.append(row)
        self.path.write_text(json.dumps(self.rows, indent=1))
        print(f"{name}: {row['seconds']} s, peak RSS {row['peak_rss_mib']} MiB {row['note']}", flush=True)
        return out

    def table(self) -> str:
        lines = ["| phase | seconds | peak RSS (MiB) | largest worker (MiB) | note |",
                 "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['phase']} | {r['seconds']} | {r['peak_rss_mib']} | {r['children_peak_rss_mib']} "
                  f"| {r['note']} |" for r in self.rows]
        return "\n".join(lines)


def probe(x: Any, data: Any, cfg: Any) -> Dict[str, float]:
    result = linear_probe(torch.as_tensor(np.asarray(x)), data.y, data.train_mask, data.val_mask, data.test_mask,
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
    p.add_argument("--embed-batch", type=int, default=512, help="ego-graphs per inference batch")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.data.mode != "minibatch":
        p.error(f"{args.config}: data.mode={cfg.data.mode}; this benchmark is for minibatch configs")
    args.out.mkdir(parents=True, exist_ok=True)
    phases = Phases(args.out / "phases.json")
    phases.rows = []  # times are of this invocation; earlier ones stay in git or the log

    data = phases.run("graph", lambda: load_data(cfg.data),
                      lambda d: f"{d.num_nodes:,} nodes, {d.graph.num_edges:,} directed edges")
    source = phases.run("ego-graphs", lambda: EgoBatches.from_config(cfg, data, CPU),
                        lambda s: f"{len(s.egos):,} ego-graphs of at most {cfg.data.ego_k} nodes")
    steps = cfg.train.max_epoch * source.steps_per_epoch
    run = phases.run("pre-training", lambda: train_seed(cfg, source, args.seed, CPU, args.out / f"seed-{args.seed}",
                                                        resume=True),
                     lambda r: f"{steps} steps of {cfg.data.batch_size} ego-graphs, final loss {r.losses[-1]:.4f}")
    emb_path = args.out / "embeddings.npy"

    def embed() -> np.ndarray:
        if emb_path.exists():
            return np.load(emb_path, mmap_mode="r")
        partial = emb_path.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                        shape=(len(source.egos), cfg.model.num_hidden))
        ego_embeddings(run.model, data.graph, source.features, source.egos, CPU, args.embed_batch, out=out,
                       progress=True)
        out.flush()
        del out
        partial.rename(emb_path)
        return np.load(emb_path, mmap_mode="r")

    emb = phases.run("embeddings", embed, lambda e: f"{e.shape[0]:,} x {e.shape[1]} float32 to {emb_path.name}")
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
