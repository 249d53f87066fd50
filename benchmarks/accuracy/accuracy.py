"""Linear-probe accuracy of the shipped configs over several seeds, with wall time.

    python benchmarks/accuracy/accuracy.py --datasets cora citeseer --seeds 0 1 2 3 4
    python benchmarks/accuracy/accuracy.py --datasets cora --seeds 0 1 2 3 4 --set train.max_epoch=500

Each dataset runs `configs/<dataset>.yaml` (plus any --set overrides) through the same code
path as `python train.py`, into `--out` (default runs/accuracy), and prints one Markdown
row per dataset: dataset, mean ± std test accuracy, seeds, epochs, wall time, run directory.
"""
import argparse
import json
import logging
import time
from pathlib import Path

import torch

from graphmae2.config import load_config
from graphmae2.experiment import new_run_dir, run_experiment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["cora", "citeseer"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/accuracy")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = []
    for name in args.datasets:
        cfg = load_config(f"{name}.yaml", [*args.overrides, f"train.seeds={args.seeds}"])
        run_dir = new_run_dir(Path(args.out), name)
        tic = time.perf_counter()
        m = run_experiment(cfg, run_dir, torch.device(args.device), progress=True).summary
        wall = time.perf_counter() - tic
        rows.append(f"| {name} | {m['test_acc_mean']:.4f} ± {m['test_acc_std']:.4f} | "
                    f"{' '.join(map(str, args.seeds))} | {cfg.train.max_epoch} | {wall / 60:.1f} min | `{run_dir}` |")
        per_seed = {s: round(r["test_acc"], 4) for s, r in m["seeds"].items()}
        print(json.dumps({"dataset": name, "per_seed_test_acc": per_seed, "wall_s": wall}))
    print("| dataset | test acc (mean ± std) | seeds | epochs | wall time | run |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
