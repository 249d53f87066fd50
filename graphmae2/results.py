"""Results summarised in one place: which metric each evaluation mode reports and is
chosen by, the mean and std over seeds, and the final line.

Hyperparameters are chosen on validation data and judged once on test; ``HEADLINE``
names the metric printed and reported beside the choice.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

#: The metric each evaluation mode reports on the final line.
HEADLINE = {"linear": "test_acc", "finetune": "test_acc", "cluster": "nmi"}

#: Metrics a sweep table shows per mode: the headline first, then the rest.
METRICS: Dict[str, Tuple[str, ...]] = {"linear": ("test_acc", "val_acc"), "finetune": ("test_acc", "val_acc"),
                                       "cluster": ("nmi", "ari")}


def summarize(per_seed: Dict[str, Dict[str, Any]], mode: str) -> Dict[str, Any]:
    """Mean and population std (ddof=0) over seeds of every numeric metric."""
    out: Dict[str, Any] = {"mode": mode, "seeds": per_seed, "n_seeds": len(per_seed)}
    keys = sorted({k for r in per_seed.values() for k, v in r.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for k in keys:
        vals = np.array([r[k] for r in per_seed.values() if k in r], dtype=float)
        out[f"{k}_mean"] = float(vals.mean())
        out[f"{k}_std"] = float(vals.std())
    return out


def headline(metrics: Dict[str, Any]) -> str:
    """The final line: ``test_acc: 0.8450 ± 0.0060 over 5 seeds (linear)``; for data
    without labels, ``no evaluation: ...``."""
    key = HEADLINE[metrics["mode"]]
    n = metrics["n_seeds"]
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if f"{key}_mean" not in metrics:
        why = metrics.get("note", "the dataset has no labels or no split")
        return f"no evaluation: {why} (pre-trained {seeds})"
    return f"{key}: {metrics[f'{key}_mean']:.4f} ± {metrics[f'{key}_std']:.4f} over {seeds} ({metrics['mode']})"
