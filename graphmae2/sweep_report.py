"""A sweep's tables and plot: ``sweep.csv``, ``sweep.md`` and ``sweep.png``.

Rows are dicts: the swept keys (names with a dot) with their values, ``<metric>_mean``
and ``<metric>_std`` pairs, ``n_seeds``, ``n_failed`` and ``seconds_mean``. The best
point is the one with the highest mean **validation** accuracy (``val_acc``):
hyperparameters are chosen on validation data, and test accuracy is shown beside it,
never used to choose. Runs without a validation metric (``eval.mode: cluster``) star
nothing.
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

_logger = logging.getLogger(__name__)

#: The metric the best point is chosen by.
SELECT = "val_acc"


def format_value(value: Any) -> str:
    """Short text of a swept value: ``0.996``, ``1`` for 1.0, ``true``, ``gat``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _columns(rows: Sequence[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """Swept keys (the columns with a dot) and metric names (with ``_mean`` and ``_std``)."""
    cols = list(rows[0])
    keys = [c for c in cols if "." in c]
    metrics = [c[:-5] for c in cols if c.endswith("_mean") and f"{c[:-5]}_std" in cols]
    return keys, metrics


def best_index(rows: Sequence[Dict[str, Any]]) -> Optional[int]:
    """Index of the row with the highest mean validation accuracy; None when the rows
    have no validation metric or all its means are NaN."""
    if not rows or f"{SELECT}_mean" not in rows[0]:
        return None
    scores = [r[f"{SELECT}_mean"] for r in rows]
    finite = [i for i, s in enumerate(scores) if not math.isnan(s)]
    return max(finite, key=lambda i: scores[i]) if finite else None


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table of the rows: swept keys, ``mean ± std`` per metric, seeds, seconds.

    The point with the best mean validation accuracy is bold and starred (★) in the
    validation column; a line under the table says so.
    """
    if not rows:
        return "(empty sweep)"
    keys, metrics = _columns(rows)
    best = best_index(rows)
    paired = f"{SELECT}_diff" in rows[0] and len(rows) > 1
    header = keys + metrics + ([f"{SELECT} − first, paired"] if paired else []) + ["seeds", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for i, row in enumerate(rows):
        cells = [format_value(row[k]) for k in keys]
        cells += [_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        if i == best:
            col = len(keys) + metrics.index(SELECT)
            cells[col] = f"**{cells[col]}** ★"
        if paired:
            diff, se = row[f"{SELECT}_diff"], row[f"{SELECT}_diff_se"]
            cells.append("baseline" if i == 0 else "—" if math.isnan(diff) else
                         f"{diff:+.4f}" + ("" if math.isnan(se) else f" ± {se:.4f}"))
        seeds = f"{row['n_seeds']}" + (f" ({row['n_failed']} diverged)" if row.get("n_failed") else "")
        cells += [seeds, f"{row['seconds_mean']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if best is not None:
        lines += ["", f"★ best mean {SELECT} (chosen on validation; test accuracy is reported beside it, "
                      f"not used to choose)."]
    elif f"{SELECT}_mean" in rows[0]:
        lines += ["", f"— no {SELECT}: the dataset has no labels or no validation split, so no point "
                      f"is chosen (the monitor columns are still comparable)."]
    if paired:
        lines += [f"Paired: the mean over shared seeds of this point's {SELECT} minus the first point's, "
                  f"± its standard error."]
    return "\n".join(lines)


def _mean_std(mean: float, std: float) -> str:
    """``0.8123 ± 0.0040``, or ``—`` for a metric no seed produced (NaN)."""
    return "—" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def format_per_seed(rows: Sequence[Dict[str, Any]], per_seed: Sequence[Dict[str, Dict[str, Any]]]) -> str:
    """One line per point: ``seed: validation / test`` for every finished seed."""
    keys, _ = _columns(rows)
    lines = []
    for row, seeds in zip(rows, per_seed):
        point = " ".join(f"{k}={format_value(row[k])}" for k in keys)
        values = ", ".join(f"{s}: {r[SELECT]:.4f} / {r['test_acc']:.4f}" for s, r in seeds.items()
                           if SELECT in r and "test_acc" in r)
        lines.append(f"- {point}: {values or 'no validation / test accuracy'}")
    return "\n".join(["Per seed, validation / test accuracy:", ""] + lines)


def write_reports(rows: Sequence[Dict[str, Any]], sweep_dir: Path,
                  per_seed: Optional[Sequence[Dict[str, Dict[str, Any]]]] = None) -> None:
    """``sweep.csv``, ``sweep.md`` (with the per-seed values when given) and (with
    matplotlib) ``sweep.png`` in ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    with open(sweep_dir / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = format_table(rows) + ("\n\n" + format_per_seed(rows, per_seed) if per_seed else "")
    (sweep_dir / "sweep.md").write_text(text + "\n")
    plot_sweep(rows, sweep_dir / "sweep.png")


def plot_sweep(rows: Sequence[Dict[str, Any]], path: Path) -> bool:
    """Plot validation and test accuracy (mean ± std error bars; the first metric for
    other modes) against the first swept key, the best-validation point ringed.

    The x axis is categorical: the values sit evenly spaced, in increasing order for
    numbers, each tick labelled with its value. EMA momenta such as 0.99, 0.996, 0.999
    would overlap on a linear axis and ``0`` or ``1`` break a log axis of ``1 - m``;
    even spacing keeps every value readable. Further swept keys give one line per
    combination of their values. Returns False (with a warning) without matplotlib.
    """
    try:
        from matplotlib.figure import Figure  # optional extra; no pyplot, so no global backend
    except ImportError:
        _logger.warning("matplotlib is not installed, so %s was not written; "
                        "pip install graphmae2[plot] to get the plot", path)
        return False
    keys, metrics = _columns(rows)
    shown = [m for m in (SELECT, "test_acc") if m in metrics] or metrics[:1]
    x_key, line_keys = keys[0], keys[1:]
    xs = list(dict.fromkeys(r[x_key] for r in rows))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs):
        xs.sort()
    position = {v: i for i, v in enumerate(xs)}
    lines: Dict[Tuple[Any, ...], List[Dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault(tuple(row[k] for k in line_keys), []).append(row)

    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(xs)), 3.8), layout="constrained")
    ax = fig.add_subplot()
    for metric in shown:
        for combo, members in lines.items():
            members = sorted(members, key=lambda r: position[r[x_key]])
            label = ", ".join([metric] + [f"{k}={format_value(v)}" for k, v in zip(line_keys, combo)])
            ax.errorbar([position[r[x_key]] for r in members], [r[f"{metric}_mean"] for r in members],
                        yerr=[r[f"{metric}_std"] for r in members], marker="o", capsize=3, label=label)
    best = best_index(rows)
    if best is not None:
        ax.plot([position[rows[best][x_key]]], [rows[best][f"{SELECT}_mean"]], marker="o", markersize=14,
                markerfacecolor="none", color="black", linestyle="none", label=f"best {SELECT}")
    ax.set_xticks(range(len(xs)), [format_value(v) for v in xs])
    ax.set_xlabel(f"{x_key} (evenly spaced values)")
    n = max(r["n_seeds"] for r in rows)
    ax.set_ylabel(f"mean ± std, {n} seed{'s' if n != 1 else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return True
