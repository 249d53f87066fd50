"""Re-run the linear probe of finished runs with other probe settings, without
pre-training again: one row per setting, mean ± std over the runs' seeds.

    python benchmarks/reprobe.py runs/citeseer-20261125-145255 --grids "[0.01]" "[1e-3, 0.01, 0.05, 0.1]"

Each ``seed-*/checkpoint.pt`` under the given run directories is loaded with
``load_encoder`` (raw features, scaled as the run was trained), embedded, and probed
with the run's ``eval`` settings except ``eval.weight_decay_grid``, which each
``--grids`` value replaces (the weight decay with the best validation accuracy wins).
"""
import argparse
import copy
import glob
import json
import statistics
from pathlib import Path

from graphmae2 import embed, load_dataset, load_encoder
from graphmae2.config import load_config
from graphmae2.experiment import probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (holding seed-*/checkpoint.pt)")
    p.add_argument("--grids", nargs="+", required=True, help="weight-decay lists, YAML, e.g. '[1e-4, 1e-3]'")
    args = p.parse_args()
    checkpoints = sorted(c for run in args.runs for c in glob.glob(str(Path(run) / "seed-*" / "checkpoint.pt")))
    if not checkpoints:
        raise SystemExit(f"no seed-*/checkpoint.pt under {', '.join(args.runs)}")
    grids = {g: load_config(None, [f"eval.weight_decay_grid={g}"]).eval.weight_decay_grid for g in args.grids}
    results = {g: [] for g in args.grids}
    datasets = {}
    for ckpt in checkpoints:
        encoder = load_encoder(ckpt)
        cfg = copy.deepcopy(encoder.config)
        key = (cfg.data.dataset, cfg.data.root)
        if key not in datasets:
            datasets[key] = load_dataset(cfg.data.dataset, root=cfg.data.root)
        data = datasets[key]
        emb = embed(encoder, data.graph, data.x)
        seed = int(Path(ckpt).parent.name.split("-")[1])
        for g, weight_decays in grids.items():
            cfg.eval.weight_decay_grid = weight_decays
            r = probe(cfg, emb, data, seed)
            results[g].append({"seed": seed, "test_acc": r["test_acc"], "weight_decay": r["probe_weight_decay"]})
    print("| weight-decay grid | test acc (mean ± std) | per seed (test acc @ chosen weight decay) |")
    print("| --- | --- | --- |")
    for g, rows in results.items():
        accs = [r["test_acc"] for r in rows]
        per_seed = ", ".join(f"{r['seed']}: {r['test_acc']:.3f} @ {r['weight_decay']:g}" for r in rows)
        print(f"| {g} | {statistics.mean(accs):.4f} ± {statistics.pstdev(accs):.4f} | {per_seed} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
