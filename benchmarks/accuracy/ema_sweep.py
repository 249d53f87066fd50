"""Table and plot of an ``ema.momentum`` x ``model.latent_target`` sweep (docs/teacher.md).

    python train.py --config cora.yaml --sweep ema.momentum=0,0.9,0.99,0.996,0.999,1 \\
        --sweep model.latent_target=reference,standardise --seeds 0 1 2 3 4 \\
        --set model.remask_method=random train.max_epoch=100 train.monitor_every=25
    python benchmarks/accuracy/ema_sweep.py runs/cora-sweep-* --plot docs/ema_sweep.png

For every point and seed it reads ``result.json`` (probe accuracies and the trainer's
collapse monitor: the teacher output's centred rank during training) and, from the
seed's final ``checkpoint.pt``, computes :func:`graphmae2.monitor.latent_stats` on the
full graph: ranks of the pair the latent loss compares and the teacher information.
Those are cached in ``<seed>/latent_stats.json``. From the seed's TensorBoard events it
reads the last logged ``loss/rec`` and ``loss/latent`` (the last step's; one step per
epoch in full batch): the reconstruction loss equal across momenta while the latent loss
moves says the teacher changes what the latent branch fits, not what the encoder
reconstructs. The monitor's last cosine between the teacher's and the student's weights
says how far apart the momentum lets them get (at m = 1: how far the student has moved
from its initial weights). Rows are ranked by validation accuracy
(never test). Prints a Markdown table; ``--plot`` draws accuracy and centred target rank
against the momentum, one line per latent target, seed std as error bars.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import yaml

from graphmae2.checkpoint import load_checkpoint
from graphmae2.config import Config
from graphmae2.datasets import NodeDataset, load_data
from graphmae2.ema import EMATeacher
from graphmae2.model import GraphMAE2
from graphmae2.monitor import latent_stats

_logger = logging.getLogger("ema_sweep")


def final_latent_stats(seed_dir: Path, data_cache: Dict[str, NodeDataset]) -> Dict[str, float]:
    """:func:`latent_stats` of the seed's final checkpoint on every node, cached on disk."""
    cache = seed_dir / "latent_stats.json"
    if cache.exists():
        return json.loads(cache.read_text())
    state = load_checkpoint(seed_dir / "checkpoint.pt")
    cfg = Config.from_dict(state["config"], str(seed_dir))
    key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
    if key not in data_cache:
        data_cache[key] = load_data(cfg.data)
    data = data_cache[key]
    model = GraphMAE2(state["in_dim"], cfg.model)
    model.load_state_dict(state["model"])
    teacher = EMATeacher(model.ema_source(), cfg.ema)
    teacher.load_state_dict(state["teacher"])
    stats = latent_stats(model, teacher, data.graph, data.x)
    cache.write_text(json.dumps(stats, indent=1))
    return stats


def final_losses(seed_dir: Path) -> Dict[str, float]:
    """The last logged ``loss/rec`` and ``loss/latent`` of a seed (its TensorBoard events;
    NaN where the run wrote none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {"rec": math.nan, "latent": math.nan}
    for events in sorted(seed_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 1})  # keeps the last
        acc.Reload()
        for name in out:
            if f"loss/{name}" in acc.Tags()["scalars"]:
                out[name] = acc.Scalars(f"loss/{name}")[-1].value
    return out


def _mean_std(values: List[float]) -> str:
    if not values:
        return ""
    return f"{statistics.fmean(values):.4f} ± {statistics.pstdev(values):.4f}"


def collect(sweep_dirs: List[Path]) -> List[Dict[str, Any]]:
    """One row per (momentum, latent target), pooling the finished seeds of every sweep
    directory given (a point may be split over several, e.g. seeds 0-1 and 2-4)."""
    data_cache: Dict[str, NodeDataset] = {}
    pooled: Dict[Tuple[float, str], Dict[str, Any]] = {}
    for sweep_dir in sweep_dirs:
        spec = json.loads((sweep_dir / "sweep.json").read_text())
        for point in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
            cfg = Config.from_dict(yaml.safe_load((point / "config.yaml").read_text()), str(point))
            row = pooled.setdefault((cfg.ema.momentum, cfg.model.latent_target), {
                "momentum": cfg.ema.momentum, "target": cfg.model.latent_target, "seeds": [],
                **{k: [] for k in ("val", "test", "teacher_rank", "teacher_cos", "online_rank",
                                   "loss_rank", "info", "param_cos", "rec", "latent")}})
            for seed in spec["seeds"]:
                seed_dir = point / f"seed-{seed}"
                if not ((seed_dir / "result.json").exists() and (seed_dir / "checkpoint.pt").exists()):
                    continue
                if seed in row["seeds"]:
                    raise ValueError(f"{seed_dir}: seed {seed} of ema.momentum={cfg.ema.momentum:g}, "
                                     f"model.latent_target={cfg.model.latent_target} is in two sweep directories")
                result = json.loads((seed_dir / "result.json").read_text())
                final = final_latent_stats(seed_dir, data_cache)
                last = result["monitor"][-1]  # the trainer's monitor at the last epoch
                row["seeds"].append(seed)
                row["val"].append(result["val_acc"])
                row["test"].append(result["test_acc"])
                row["teacher_rank"].append(last["teacher_eff_rank_centred"])   # the teacher's own output
                row["teacher_cos"].append(last["teacher_cos_to_mean"])
                row["online_rank"].append(last["eff_rank_online"])
                row["loss_rank"].append(final["target_eff_rank_centred"])    # the target as compared
                row["info"].append(final["teacher_information"])
                row["param_cos"].append(last["param_cosine"])  # how far the teacher is from the student
                losses = final_losses(seed_dir)
                row["rec"].append(losses["rec"])
                row["latent"].append(losses["latent"])
    return [r for r in pooled.values() if r["seeds"]]


# (header, row key, format) of the per-seed means after val_acc and test_acc
_MEAN_COLUMNS = (("centred rank, teacher output", "teacher_rank", ".1f"),
                 ("cos to mean, teacher output", "teacher_cos", ".4f"),
                 ("centred rank, target as compared", "loss_rank", ".1f"),
                 ("teacher information", "info", ".3f"),
                 ("teacher-student weight cosine", "param_cos", ".4f"),
                 ("online rank", "online_rank", ".0f"),
                 ("final rec loss", "rec", ".4f"),
                 ("final latent loss", "latent", ".4f"))


def table(rows: List[Dict[str, Any]]) -> str:
    """Markdown, sorted by target then momentum; the best validation row of each target starred."""
    best = {}
    for r in rows:
        if r["target"] not in best or statistics.fmean(r["val"]) > statistics.fmean(best[r["target"]]["val"]):
            best[r["target"]] = r
    header = ["model.latent_target", "ema.momentum", "val_acc", "test_acc",
              *(name for name, _, _ in _MEAN_COLUMNS), "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (r["target"], r["momentum"])):
        star = " ★" if best[r["target"]] is r else ""
        cells = [r["target"], f"{r['momentum']:g}", _mean_std(r["val"]) + star, _mean_std(r["test"]),
                 *(format(statistics.fmean(r[key]), fmt) for _, key, fmt in _MEAN_COLUMNS), str(len(r["seeds"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: List[Dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in rows})
    momenta = sorted({r["momentum"] for r in rows})
    pos = {m: i for i, m in enumerate(momenta)}  # evenly spaced: 0.99-1 would crowd a linear axis
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    panels = [("val", "validation accuracy"), ("test", "test accuracy"),
              ("loss_rank", "centred rank of the target as compared (log)"),
              ("info", "teacher information")]
    for ax, (key, label) in zip(axes, panels):
        for t in targets:
            pts = sorted((r for r in rows if r["target"] == t), key=lambda r: r["momentum"])
            xs = [pos[r["momentum"]] for r in pts]
            ys = [statistics.fmean(r[key]) for r in pts]
            es = [statistics.pstdev(r[key]) for r in pts]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=t)
        ax.set_xticks(range(len(momenta)), [f"{m:g}" for m in momenta])
        ax.set_xlabel("ema.momentum")
        ax.set_title(label, fontsize=10)
        if key == "loss_rank":
            ax.set_yscale("log")
    axes[0].legend(title="model.latent_target", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+",
                        help="sweep directories (several: their points are pooled)")
    parser.add_argument("--plot", type=Path, help="write the figure here")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_grad_enabled(True)
    rows = collect(args.sweep_dirs)
    _logger.info("%s", table(rows))
    if args.plot:
        plot(rows, args.plot, args.title)
        _logger.info("wrote %s", args.plot)


if __name__ == "__main__":
    main()
