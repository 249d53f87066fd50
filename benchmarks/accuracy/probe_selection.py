"""How much of a reported validation accuracy is the maximum over probe epochs: the
linear probe's validation accuracy at its selected epoch against a held-out one, for the
finished runs of a sweep, paired by seed. Nothing is pre-trained again.

    python benchmarks/accuracy/probe_selection.py runs/cora-sweep-1 --halvings 20

The probe reports ``val_acc`` at the epoch of best validation accuracy, so ``val_acc`` is
the maximum of a noisy curve: it is biased upwards, and more so for a curve that wanders
(the winner's curse). Ranking configs on it uses the same validation nodes twice, once to
pick the epoch and once to score. The held-out estimate splits the validation nodes into
two random halves A and B, picks the epoch on A (``eval.ties`` as the run had it), scores
B at that epoch, and the other way round; the mean over both directions and
``--halvings`` random halvings is the validation accuracy of the probe's own procedure on
nodes that did not choose its epoch. Test accuracy at the same selected epochs is
reported beside it; it takes no part in any choice.

Each ``<point>/seed-<s>/checkpoint.pt`` under the sweep directory (``train.py --sweep``)
is loaded with ``load_encoder``, embedded once, and
probed once with the run's ``eval`` settings (``eval.weight_decay_grid`` is not
supported); the probe's own ``val_acc``/``test_acc`` must equal the run's ``result.json``,
or the script stops.
"""
import argparse
import glob
import json
import math
import statistics
from pathlib import Path
from typing import Dict, List

import torch

from graphmae2 import embed, load_dataset, load_encoder
from graphmae2.evaluation import BestValidation, probe_curves


def select(chooser: torch.Tensor, scored: torch.Tensor, ties: str) -> float:
    """``scored`` at the epoch ``chooser`` is best on (``ties`` as in the probe)."""
    tracker = BestValidation(ties)
    for epoch, (a, b) in enumerate(zip(chooser.tolist(), scored.tolist()), start=1):
        tracker.update(epoch, a, b)
    return tracker.test_acc


def halves(val_mask: torch.Tensor, halvings: int, seed: int) -> List[torch.Tensor]:
    """``halvings`` random splits of the validation nodes, as ``[A_0, B_0, A_1, B_1, ...]`` masks."""
    nodes = val_mask.nonzero().flatten()
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for _ in range(halvings):
        order = nodes[torch.randperm(nodes.numel(), generator=generator)]
        for part in (order[: nodes.numel() // 2], order[nodes.numel() // 2:]):
            mask = torch.zeros_like(val_mask)
            mask[part] = True
            masks.append(mask)
    return masks


def measure(checkpoint: Path, halvings: int, split_seed: int, datasets: Dict) -> Dict[str, float]:
    """One run: the probe's own (selected) validation and test accuracy, the held-out
    validation accuracy, and the test accuracy at the held-out selections."""
    encoder = load_encoder(checkpoint)
    cfg = encoder.config
    if cfg.eval.weight_decay_grid:
        raise SystemExit(f"{checkpoint}: eval.weight_decay_grid is set; this script probes one weight decay")
    key = (cfg.data.dataset, cfg.data.root)
    if key not in datasets:
        datasets[key] = load_dataset(*key)
    data = datasets[key]
    seed = int(checkpoint.parent.name.split("-")[1])
    parts = halves(data.val_mask, halvings, split_seed)
    masks = {"val": data.val_mask, "test": data.test_mask, **{f"part{i}": m for i, m in enumerate(parts)}}
    curves = probe_curves(embed(encoder, data.graph, data.x), data.y, data.train_mask, masks, lr=cfg.eval.lr,
                          weight_decay=cfg.eval.weight_decay, max_epoch=cfg.eval.max_epoch, seed=seed)
    ties = cfg.eval.ties
    held, test_at = [], []
    for i in range(0, len(parts), 2):
        a, b = curves[f"part{i}"], curves[f"part{i + 1}"]
        held += [select(a, b, ties), select(b, a, ties)]
        test_at += [select(a, curves["test"], ties), select(b, curves["test"], ties)]
    own_val, own_test = select(curves["val"], curves["val"], ties), select(curves["val"], curves["test"], ties)
    recorded = json.loads((checkpoint.parent / "result.json").read_text())
    if (own_val, own_test) != (recorded["val_acc"], recorded["test_acc"]):
        raise SystemExit(f"{checkpoint}: probing again gave val {own_val} / test {own_test}, the run recorded "
                         f"{recorded['val_acc']} / {recorded['test_acc']}: not the run's embeddings or probe")
    return {"val": own_val, "test": own_test, "held": statistics.mean(held), "test_held": statistics.mean(test_at),
            "last_val": float(curves["val"][-1]), "last_test": float(curves["test"][-1])}


def _mean_std(xs: List[float]) -> str:
    return f"{statistics.mean(xs):.4f} ± {statistics.pstdev(xs):.4f}"


def _paired(xs: List[float], base: List[float]) -> str:
    d = [x - y for x, y in zip(xs, base)]
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return f"{statistics.mean(d):+.4f} (SE {se:.4f})"


def table(found: Dict[str, Dict[int, Dict[str, float]]], base: str = "") -> str:
    """Markdown: per variant, the probe's own and the held-out validation accuracy, the
    optimism (own − held-out), paired differences to ``base`` (default: the first
    variant) over the seeds every variant finished, test beside."""
    base = base or next(iter(found))
    names = [base] + [n for n in found if n != base]
    seeds = sorted(set.intersection(*(set(found[n]) for n in names)))
    col = {n: {k: [found[n][s][k] for s in seeds] for k in ("val", "held", "test", "test_held")} for n in names}
    lines = [f"Seeds {' '.join(map(str, seeds))} (those every variant finished).", "",
             "| variant | val acc (probe's own) | held-out val acc | optimism (own − held-out) | "
             f"own val − {base} | held-out val − {base} | test acc | test at held-out selections | "
             "per seed own/held-out val |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in names:
        c = col[n]
        optimism = [v - h for v, h in zip(c["val"], c["held"])]
        vs_val = "—" if n == base else _paired(c["val"], col[base]["val"])
        vs_held = "—" if n == base else _paired(c["held"], col[base]["held"])
        per_seed = ", ".join(f"{v:.3f}/{h:.4f}" for v, h in zip(c["val"], c["held"]))
        lines.append(f"| {n} | {_mean_std(c['val'])} | {_mean_std(c['held'])} | {_mean_std(optimism)} | {vs_val} | "
                     f"{vs_held} | {_mean_std(c['test'])} | {_mean_std(c['test_held'])} | {per_seed} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="a sweep directory (train.py --sweep ... --out)")
    p.add_argument("--halvings", type=int, default=20, help="random halvings of the validation nodes")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the halvings (the same for every run)")
    p.add_argument("--base", default="", help="the point the others are paired with (default: first by name)")
    args = p.parse_args()
    if args.halvings < 1:
        p.error(f"--halvings {args.halvings}: need at least 1")
    found: Dict[str, Dict[int, Dict[str, float]]] = {}
    datasets: Dict = {}
    for ckpt in sorted(glob.glob(str(args.sweep / "*" / "seed-*" / "checkpoint.pt"))):
        ckpt = Path(ckpt)
        if not (ckpt.parent / "result.json").is_file():
            continue  # unfinished: the checkpoint of a run still pre-training
        variant = ckpt.parents[1].name
        found.setdefault(variant, {})[int(ckpt.parent.name.split("-")[1])] = measure(
            ckpt, args.halvings, args.split_seed, datasets)
    if not found:
        raise SystemExit(f"no finished <point>/seed-*/checkpoint.pt under {args.sweep}")
    if args.base and args.base not in found:
        p.error(f"--base {args.base}: no finished runs of it; points found: {', '.join(sorted(found))}")
    print(table(found, args.base))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
