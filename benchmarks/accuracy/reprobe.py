"""Re-run the linear probe of finished runs with other probe settings, without
pre-training again: one row per setting, mean ± std over the runs' seeds.

    python benchmarks/accuracy/reprobe.py runs/cora-20261126-005400 \
        --variants "" "eval.ties=last" "eval.lr=0.025 eval.ties=last"
    python benchmarks/accuracy/reprobe.py runs/citeseer-20261125-145255 --grids "[0.01]" "[1e-3, 0.01, 0.05, 0.1]"

Each ``seed-*/checkpoint.pt`` under the given run directories is loaded with
``load_encoder`` (raw features, scaled as the run was trained), embedded once, and probed
with the run's ``eval`` settings changed by each variant: a space-separated list of
``eval.KEY=VALUE`` overrides (``""`` is the run's own settings). ``--grids G`` is short for
the variant ``eval.weight_decay_grid=G``.
"""
import argparse
import copy
import glob
import json
import shlex
import statistics
from pathlib import Path

from graphmae2 import embed, load_dataset, load_encoder
from graphmae2.config import parse_override, set_value
from graphmae2.evaluation import probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (holding seed-*/checkpoint.pt)")
    p.add_argument("--variants", nargs="+", default=[], help="eval overrides, e.g. 'eval.lr=0.025 eval.ties=last'")
    p.add_argument("--grids", nargs="+", default=[], help="weight-decay lists, YAML, e.g. '[1e-4, 1e-3]'")
    args = p.parse_args()
    if not args.variants and not args.grids:
        p.error("give --variants and/or --grids")
    overrides = {v: [parse_override(item) for item in shlex.split(v)] for v in args.variants}
    overrides.update({f"eval.weight_decay_grid={g}": [parse_override(f"eval.weight_decay_grid={g}")]
                      for g in args.grids})
    for v, items in overrides.items():
        bad = [key for key, _ in items if not key.startswith("eval.")]
        if bad:
            p.error(f"variant {v!r}: only eval.* keys can change without pre-training again, got {bad}")
    checkpoints = sorted(c for run in args.runs for c in glob.glob(str(Path(run) / "seed-*" / "checkpoint.pt")))
    if not checkpoints:
        raise SystemExit(f"no seed-*/checkpoint.pt under {', '.join(args.runs)}")
    results = {v: [] for v in overrides}
    datasets = {}
    for ckpt in checkpoints:
        encoder = load_encoder(ckpt)
        key = (encoder.config.data.dataset, encoder.config.data.root)
        if key not in datasets:
            datasets[key] = load_dataset(*key)
        data = datasets[key]
        emb = embed(encoder, data.graph, data.x)
        seed = int(Path(ckpt).parent.name.split("-")[1])
        for v, items in overrides.items():
            cfg = copy.deepcopy(encoder.config)
            for dotted, value in items:
                set_value(cfg, dotted, value)
            r = probe(cfg.eval, emb, data, seed)
            results[v].append({"seed": seed, "test_acc": r["test_acc"], "val_acc": r["val_acc"],
                               "weight_decay": r["probe_weight_decay"]})
    print("| probe variant | test acc (mean ± std) | val acc (mean) | per seed (test acc @ weight decay) |")
    print("| --- | --- | --- | --- |")
    for v, rows in results.items():
        accs = [r["test_acc"] for r in rows]
        per_seed = ", ".join(f"{r['seed']}: {r['test_acc']:.3f} @ {r['weight_decay']:g}" for r in rows)
        print(f"| {v or '(run settings)'} | {statistics.mean(accs):.4f} ± {statistics.pstdev(accs):.4f} | "
              f"{statistics.mean(r['val_acc'] for r in rows):.4f} | {per_seed} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
