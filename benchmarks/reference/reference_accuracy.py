"""The official GraphMAE2 code's own accuracy on Cora or CiteSeer: its ``main_full_batch.py``
run unmodified with its own config and its own linear probe, one process per seed.

    make reference-venv                                   # the venv make bench-reference uses
    DGLBACKEND=pytorch OMP_NUM_THREADS=1 ~/.cache/graphmae2/dgl-reference-venv/bin/python \\
        benchmarks/reference/reference_accuracy.py --reference /path/to/THUDM-GraphMAE2 --seeds 0 1 --workers 2

``--reference`` is a checkout of https://github.com/THUDM/GraphMAE2 at commit bc473e8.
Each seed runs ``python main_full_batch.py --dataset D --use_cfg --device -1 --seeds S``
(``runpy``, in the checkout, so its ``configs/D.yaml`` -- for Cora 2000 epochs, fixed re-masking,
its EMA -- its DGL loading, model, probe every 200 epochs and final probe are what runs;
nothing is patched). The raw Planetoid files are linked where DGL's ``CoraGraphDataset``
reads them (``run_reference`` of ``reference_epoch_time.py``, shared with the
timing benchmark), so nothing downloads.

The script's final probe prints ``--- TestAcc: A, early-stopping-TestAcc: B, Best ValAcc:
C in epoch E ---``; the table reports C (validation at the probe's best epoch), B (test at
that epoch: the protocol of our own probe and of the paper) and A (test at the probe's
last epoch), per seed and as mean ± population std, with each run's full log and
``--out/results.json``. About 65 minutes a seed on the 2-core development CPU, one thread
each, two at a time (1.9 s an epoch).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

from reference_epoch_time import DEFAULT_PLANETOID, DEFAULT_STAGING, DGL_NAMES, run_reference

PROBE_LINE = re.compile(r"^--- TestAcc: ([\d.]+), early-stopping-TestAcc: ([\d.]+), "
                        r"Best ValAcc: ([\d.]+) in epoch (\d+) ---", re.MULTILINE)


def parse_final_probe(log: str) -> Dict[str, float]:
    """The last unmuted probe line of a reference log (the final probe; the every-200-epoch
    probes print ``# IGNORE:`` first and are skipped) as val / test / last-epoch test."""
    found = PROBE_LINE.findall(log)
    if not found:
        raise ValueError("no final '--- TestAcc: ..., early-stopping-TestAcc: ...' line in the reference log")
    last, estp, val, epoch = found[-1]
    return {"val_acc": float(val), "test_acc": float(estp), "test_acc_last_epoch": float(last),
            "probe_epoch": int(epoch)}


def run_seed(args: argparse.Namespace, seed: int) -> Dict[str, Any]:
    """One seed in its own process; its stdout and stderr go to ``--out/seed-S.log``."""
    log_path = args.out / f"seed-{seed}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(args.reference),
           str(args.planetoid), str(args.staging), str(seed), args.dataset]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DGLBACKEND": "pytorch"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"reference seed {seed} exited {proc.returncode}; see {log_path}")
    return {"seed": seed, "seconds": round(seconds, 1), **parse_final_probe(log_path.read_text())}


def table(rows: List[Dict[str, Any]]) -> str:
    """Per-seed rows, then mean ± population std over seeds."""
    lines = ["| seed | val acc | test acc (best val epoch) | test acc (last epoch) | probe epoch | seconds |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['val_acc']:.4f} | {r['test_acc']:.4f} | {r['test_acc_last_epoch']:.4f} | "
              f"{r['probe_epoch']} | {r['seconds']:.0f} |" for r in rows]

    def stat(key: str) -> str:
        vals = [r[key] for r in rows]
        return f"{statistics.mean(vals):.4f} ± {statistics.pstdev(vals):.4f}"

    lines.append(f"| mean ± std ({len(rows)} seeds) | {stat('val_acc')} | {stat('test_acc')} | "
                 f"{stat('test_acc_last_epoch')} | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, help="checkout of THUDM/GraphMAE2 at commit bc473e8")
    p.add_argument("--planetoid", type=Path, default=DEFAULT_PLANETOID, help="folder of the raw ind.<dataset>.* files")
    p.add_argument("--staging", type=Path, default=DEFAULT_STAGING, help="where the DGL-named links are made")
    p.add_argument("--dataset", choices=sorted(DGL_NAMES), default="cora",
                   help="the graph, with the official code's own configs/<dataset>.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--workers", type=int, default=1, help="seeds run at once, each its own process")
    p.add_argument("--out", type=Path, default=Path("runs/reference-accuracy"))
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        reference, planetoid, staging, seed, dataset = args.worker
        run_reference(Path(reference).resolve(), Path(planetoid).resolve(), Path(staging).resolve(), int(seed),
                      dataset)
        return
    if args.reference is None or not (args.reference / "main_full_batch.py").is_file():
        p.error(f"--reference {args.reference}: not a GraphMAE2 checkout (no main_full_batch.py); "
                "pass a checkout of THUDM/GraphMAE2 at bc473e8")
    if args.workers < 1:
        p.error(f"--workers {args.workers}: must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(lambda s: run_seed(args, s), args.seeds))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
