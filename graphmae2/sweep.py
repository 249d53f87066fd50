"""Hyperparameter sweeps: a grid of config values, each point run over the same seeds.

``--sweep ema.momentum=0,0.9,0.99,0.996,0.999,1`` runs one experiment per value; several
``--sweep`` flags form their Cartesian product. Every value is checked against the config
schema before any data is loaded. A sweep directory holds::

    sweep.json        swept keys, values and seeds (what ``--resume SWEEP_DIR`` rebuilds)
    base.yaml         the config every point starts from
    <point>/          one run directory per grid point, e.g. ``ema.momentum=0.996/``,
                      with ``seed-<s>/`` subdirectories, merged ``metrics.json`` and ``config.yaml``
    sweep.csv         one row per point: swept keys, metric mean/std, n_seeds, seconds
    sweep.md          the same as a Markdown table, the point with the best mean validation
                      accuracy starred (test accuracy beside it, never used to choose)
    sweep.png         validation and test accuracy against the first swept key (needs
                      ``graphmae2[plot]``); tables and plot are :mod:`graphmae2.sweep_report`

Resuming skips every (point, seed) with a ``result.json`` and continues the others from
their checkpoints, so an interrupted sweep costs at most one partial run.

``--jobs N`` runs N (point, seed) pairs at a time, each in its own process with its share
of the CPU threads, seed by seed (every point's seed ``s`` is started before any point's
seed ``s + 1``), so a sweep cut short leaves every point with the same seeds. The table
then compares each point with the first one on validation accuracy **paired by seed**
(mean difference over the seeds both have, ± its standard error): with the run-to-run
spread of a few tenths of a point on Cora, a paired difference resolves what two
independent means cannot.
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml
from tqdm import tqdm

from .config import Config, ConfigError, load_config, set_value, to_yaml, validate
from .datasets import NodeDataset, load_data
from .experiment import finished_result, run_experiment
from .monitor import SWEEP_KEYS
from .results import METRICS
from .sweep_report import format_value, write_reports

_logger = logging.getLogger(__name__)

#: ``[(key, [values, ...]), ...]`` in the order the ``--sweep`` flags were given.
Sweeps = List[Tuple[str, List[Any]]]

SPEC_FILE = "sweep.json"
BASE_FILE = "base.yaml"
SPEC_VERSION = 1

#: Keys that define what a sweep compares, so they are fixed for the whole sweep: the
#: dataset is loaded once, seeds are the repetitions, and the evaluation mode sets the metric.
UNSWEEPABLE = {
    "data.dataset": "the dataset is loaded once per sweep; run one sweep per dataset",
    "data.root": "the dataset is loaded once per sweep",
    "train.seeds": "seeds are the repetitions of every point; use --seeds",
    "eval.mode": "the evaluation mode sets the compared metric; run one sweep per mode",
}

_FORM = "expected section.key=v1,v2,..., e.g. ema.momentum=0.99,0.996,0.999"


# ====== parsing and the grid ======

def parse_sweep(items: Sequence[str], base: Optional[Config] = None) -> Sweeps:
    """``["section.key=v1,v2", ...]`` -> ``[(key, [v1, v2]), ...]``, every value checked.

    Each value is YAML-parsed and applied with :func:`~graphmae2.config.set_value` to a
    copy of ``base`` (default: the defaults), so it is stored as the schema's type
    (``ema.momentum=1`` becomes ``1.0``) and a bad one fails with the schema's message.

    Raises:
        ConfigError: one line naming the item, for a missing ``=``, an empty value, a
            repeated value or key, a key that cannot be swept, or a value the schema refuses.
    """
    probe = copy.deepcopy(base) if base is not None else Config()
    sweeps: Sweeps = []
    seen: Dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--sweep {item!r}: no '='; {_FORM}")
        key, raw = (part.strip() for part in item.split("=", 1))
        if not key:
            raise ConfigError(f"--sweep {item!r}: missing key before '='; {_FORM}")
        if not raw:
            raise ConfigError(f"--sweep {item!r}: empty value list; {_FORM}")
        if key in UNSWEEPABLE:
            raise ConfigError(f"--sweep {item!r}: {key} cannot be swept: {UNSWEEPABLE[key]}")
        if key in seen:
            raise ConfigError(f"--sweep {item!r}: key {key} is already swept by --sweep {seen[key]!r}; "
                              f"give all its values in one flag, {_FORM}")
        values: List[Any] = []
        for text in raw.split(","):
            if not text.strip():
                raise ConfigError(f"--sweep {item!r}: empty value between commas; {_FORM}")
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ConfigError(f"--sweep {item!r}: value {text.strip()!r} is not valid YAML") from None
            set_value(probe, key, parsed, source="--sweep")
            value = getattr(getattr(probe, key.split(".", 1)[0]), key.split(".", 1)[1])
            if value in values:
                raise ConfigError(f"--sweep {item!r}: value {value!r} is given twice")
            values.append(value)
        seen[key] = item
        sweeps.append((key, values))
    return sweeps


def grid(base: Config, sweeps: Sweeps) -> List[Tuple[Dict[str, Any], Config]]:
    """Every grid point as ``(values, config)``, the last swept key varying fastest.

    Each config is a deep copy of ``base`` with the point's values set and the
    cross-key checks of :func:`~graphmae2.config.validate` passed.

    Raises:
        ConfigError: a value refused by the schema, a point that fails validation, or
            two points whose directory names coincide.
    """
    keys = [key for key, _ in sweeps]
    points: List[Tuple[Dict[str, Any], Config]] = []
    names: Dict[str, Dict[str, Any]] = {}
    for combo in itertools.product(*(values for _, values in sweeps)):
        values = dict(zip(keys, combo))
        cfg = copy.deepcopy(base)
        for key, value in values.items():
            set_value(cfg, key, value, source="--sweep")
        validate(cfg, f"--sweep point {point_name(values)}")
        name = point_name(values)
        if name in names:
            raise ConfigError(f"--sweep: points {names[name]} and {values} share the directory "
                              f"name {name!r}; use values that differ in letters or digits")
        names[name] = values
        points.append((values, cfg))
    return points


def point_name(values: Dict[str, Any]) -> str:
    """Directory name of a grid point: ``ema.momentum=0.996__model.lam=0.1``.

    Characters other than letters, digits and ``.=+-`` become ``_`` so the name is safe
    on every filesystem.
    """
    parts = [f"{key}={format_value(value)}" for key, value in values.items()]
    return re.sub(r"[^A-Za-z0-9.=+\-]", "_", "__".join(parts))


# ====== the sweep directory ======

def save_sweep_spec(sweep_dir: Path, base: Config, sweeps: Sweeps, seeds: Sequence[int]) -> None:
    """Write ``base.yaml`` and ``sweep.json``: all ``--resume SWEEP_DIR`` needs."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / BASE_FILE).write_text(to_yaml(base))
    spec = {"version": SPEC_VERSION, "base_config": BASE_FILE, "seeds": [int(s) for s in seeds],
            "sweeps": [{"key": key, "values": list(values)} for key, values in sweeps]}
    (sweep_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1))


def is_sweep_dir(path: Path) -> bool:
    """Whether ``path`` is a sweep directory (has ``sweep.json``), not a single run."""
    return (Path(path) / SPEC_FILE).is_file()


def load_sweep_spec(sweep_dir: Path) -> Tuple[Config, Sweeps, List[int]]:
    """``(base config, sweeps, seeds)`` of a sweep directory, every value re-checked.

    Raises:
        FileNotFoundError: ``sweep_dir`` has no ``sweep.json``.
        ConfigError: the spec is malformed or holds a value the schema now refuses.
    """
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume {sweep_dir}: no {SPEC_FILE} there; not a sweep directory")
    try:
        spec = json.loads(path.read_text())
        version, seeds, raw = spec["version"], spec["seeds"], spec["sweeps"]
        base_file = spec["base_config"]
        pairs = [(entry["key"], entry["values"]) for entry in raw]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: malformed sweep spec ({type(exc).__name__}: {exc})") from None
    if version != SPEC_VERSION:
        raise ConfigError(f"{path}: sweep spec version {version!r}, this graphmae2 reads {SPEC_VERSION}")
    if not isinstance(seeds, list) or not seeds or \
            any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: seeds {seeds!r} must be a non-empty list of integers")
    base = load_config(sweep_dir / base_file)
    sweeps: Sweeps = []
    for key, values in pairs:
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key}: values {values!r} must be a non-empty list")
        probe = copy.deepcopy(base)
        for value in values:
            set_value(probe, key, value, source=str(path))
        sweeps.append((key, list(values)))
    return base, sweeps, list(seeds)


def _check_same_spec(sweep_dir: Path, base: Config, sweeps: Sweeps, seeds: Sequence[int]) -> None:
    """On resume, refuse a spec that differs from the stored one: results would mix."""
    stored_base, stored_sweeps, stored_seeds = load_sweep_spec(sweep_dir)
    if stored_sweeps != [(k, list(v)) for k, v in sweeps] or stored_seeds != list(seeds) \
            or stored_base.to_dict() != base.to_dict():
        raise ConfigError(f"resume {sweep_dir}: the sweep, seeds or base config differ from its "
                          f"{SPEC_FILE}; rebuild them with load_sweep_spec({str(sweep_dir)!r})")


# ====== running ======

def run_sweep(base: Config, sweeps: Sweeps, seeds: Sequence[int], sweep_dir: Path,
              device: torch.device, data: Optional[NodeDataset] = None, resume: bool = False,
              progress: bool = True, jobs: int = 1) -> List[Dict[str, Any]]:
    """Run every grid point over ``seeds`` into ``sweep_dir``; returns one row per point.

    Each point is :func:`~graphmae2.experiment.run_experiment` over ``seeds`` into
    ``sweep_dir/<point name>`` (its ``config.yaml`` and ``metrics.json`` are written
    there once, resuming skips its finished seeds); one progress bar counts (point,
    seed) runs. A run that stops on a non-finite loss is logged, counted in ``n_failed``
    and left out of the means; the sweep goes on. The report stars the point with the
    best mean validation accuracy; test accuracy is shown beside it, never used to choose.
    With ``jobs > 1`` the (point, seed) runs go to that many worker processes first
    (:func:`_run_parallel`); each point is then summarised from its finished seeds.

    Raises:
        FileExistsError: ``sweep_dir`` already holds a sweep and ``resume`` is False.
        ConfigError: a bad grid, or ``resume`` with a spec other than the stored one.
    """
    sweep_dir = Path(sweep_dir)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("run_sweep: seeds is empty; give at least one seed")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give at least 1")
    points = grid(base, sweeps)  # every point checked before any data is loaded
    if is_sweep_dir(sweep_dir):
        if not resume:
            raise FileExistsError(f"{sweep_dir} already holds a sweep; resume it with --resume "
                                  f"{sweep_dir} or choose another directory")
        _check_same_spec(sweep_dir, base, sweeps, seeds)
    else:
        save_sweep_spec(sweep_dir, base, sweeps, seeds)
    if data is None:
        data = load_data(base.data)

    bar = tqdm(total=len(points) * len(seeds), desc="sweep", unit="run", disable=not progress,
               dynamic_ncols=True)
    rows, per_seed = [], []
    try:
        diverged = _run_parallel(points, seeds, sweep_dir, device, data, jobs, bar) if jobs > 1 else {}
        for values, cfg in points:
            name = point_name(values)
            bar.set_postfix_str(" ".join(f"{k}={format_value(v)}" for k, v in values.items()))
            cfg.train.seeds = [s for s in seeds if s not in diverged.get(name, ())]
            extra = {"point": values, **({"n_failed": len(diverged[name])} if name in diverged else {})}
            metrics = run_experiment(cfg, sweep_dir / name, device, data=data, resume=resume or jobs > 1,
                                     progress=False, keep_going=True,
                                     after_seed=None if jobs > 1 else lambda _: bar.update(1),
                                     extra=extra).summary
            rows.append(point_row(values, cfg.eval.mode, metrics))
            per_seed.append(metrics["seeds"])
    finally:
        bar.close()
    add_paired_differences(rows, per_seed)
    write_reports(rows, sweep_dir, per_seed)
    return rows


def _run_parallel(points: List[Tuple[Dict[str, Any], Config]], seeds: Sequence[int], sweep_dir: Path,
                  device: torch.device, data: NodeDataset, jobs: int, bar: Any) -> Dict[str, List[int]]:
    """Every unfinished (point, seed) run in ``jobs`` worker processes, seed-major; returns
    the seeds that diverged, by point name. Each worker gets ``1/jobs`` of the CPU threads
    and the dataset once."""
    tasks = []
    for seed in seeds:
        for values, cfg in points:
            name = point_name(values)
            if finished_result(sweep_dir / name / f"seed-{seed}") is None:
                tasks.append((name, cfg, seed))
            else:
                bar.update(1)
    diverged: Dict[str, List[int]] = {}
    if not tasks:
        return diverged
    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(data, threads)) as pool:
        futures = [(name, seed, pool.submit(_run_one, cfg, sweep_dir / name, seed, str(device)))
                   for name, cfg, seed in tasks]
        for name, seed, future in futures:
            if not future.result():
                diverged.setdefault(name, []).append(seed)
            bar.update(1)
    return diverged


_WORKER_DATA: Optional[NodeDataset] = None


def _init_worker(data: NodeDataset, threads: int) -> None:
    global _WORKER_DATA
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    _WORKER_DATA = data


def _run_one(cfg: Config, point_dir: Path, seed: int, device: str) -> bool:
    """One seed of one point (in a worker); False if it diverged."""
    cfg = copy.deepcopy(cfg)
    cfg.train.seeds = [seed]
    summary = run_experiment(cfg, point_dir, torch.device(device), data=_WORKER_DATA, resume=True,
                             progress=False, keep_going=True).summary
    return summary.get("n_failed", 0) == 0


def add_paired_differences(rows: List[Dict[str, Any]], per_seed: Sequence[Dict[str, Dict[str, Any]]],
                           metric: str = "val_acc") -> None:
    r"""Add ``<metric>_diff`` and ``<metric>_diff_se`` to every row (NaN for the first, the
    baseline): the mean over the seeds both points have of :math:`m_i(s) - m_0(s)` and its standard
    error :math:`\mathrm{sd}/\sqrt{n}` (sample sd; NaN for fewer than two seeds)."""
    if not rows:
        return
    first = per_seed[0]
    rows[0][f"{metric}_diff"] = rows[0][f"{metric}_diff_se"] = math.nan  # the baseline
    for row, seeds in zip(rows[1:], per_seed[1:]):
        diffs = [seeds[s][metric] - first[s][metric] for s in seeds
                 if s in first and metric in seeds[s] and metric in first[s]]
        n = len(diffs)
        mean = sum(diffs) / n if n else math.nan
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else math.nan
        row[f"{metric}_diff"], row[f"{metric}_diff_se"] = mean, sd / math.sqrt(n) if n > 1 else math.nan


def point_row(values: Dict[str, Any], mode: str, metrics: Dict[str, Any]) -> Dict[str, Any]:
    """A point's table row: swept values, mean/std of the mode's metrics, seeds, seconds."""
    row: Dict[str, Any] = dict(values)
    for name in METRICS[mode]:
        row[f"{name}_mean"] = metrics.get(f"{name}_mean", math.nan)
        row[f"{name}_std"] = metrics.get(f"{name}_std", math.nan)
    for name in SWEEP_KEYS:  # the latent targets' final monitor values, where the runs have them
        if f"{name}_mean" in metrics:
            row[f"{name}_mean"], row[f"{name}_std"] = metrics[f"{name}_mean"], metrics[f"{name}_std"]
    row.update(n_seeds=metrics["n_seeds"], n_failed=metrics.get("n_failed", 0),
               seconds_mean=metrics.get("seconds_mean", math.nan))
    return row
