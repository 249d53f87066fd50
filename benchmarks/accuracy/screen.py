"""Screen config variants over seeds, every (variant, seed) in its own process, and rank
the variants by mean validation accuracy (the test column is reported, never ranked on).

    python benchmarks/accuracy/screen.py --dataset citeseer --seeds 0 1 2 3 4 --device cuda --jobs 30 \\
        --variant base= --variant m0="ema.momentum=0" --variant rand="model.remask_method=random"

A variant is ``NAME=OVERRIDES``: a space-separated list of ``section.key=value`` applied on
top of ``configs/<dataset>.yaml`` (``NAME=`` is the config as shipped). Each process runs
``benchmarks/accuracy/accuracy.py`` for one seed into ``--out/<name>/seed-<s>``, with one thread
(``OMP_NUM_THREADS=1``), so ``--jobs`` processes share the machine; on one GPU they share
it by time-slicing. Finished (variant, seed) pairs are skipped, so an interrupted screen
resumes where it stopped; seeds run in order, every variant's seed before the next seed, so a
screen cut short leaves all variants with the same seeds. The summary is printed as a Markdown
table and written to ``--out/screen.md``: per variant validation and test accuracy (mean ±
population std), the validation difference to the first ``--variant`` paired by seed, the
per-seed values, and the collapse monitor's last reading of the latent target (centred
effective rank, cosine to the mean target, teacher information; min to max over seeds).
``--report`` tabulates what has finished without starting anything.
"""
import argparse
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graphmae2.config import ConfigError, load_config
from graphmae2.monitor import SWEEP_KEYS

ACCURACY = Path(__file__).resolve().with_name("accuracy.py")


def parse_variant(text: str) -> Tuple[str, List[str]]:
    """``NAME=k=v k=v`` -> (NAME, [k=v, ...]); ``main`` checks the overrides against the schema."""
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=OVERRIDES, e.g. m0='ema.momentum=0'")
    return name, shlex.split(rest)


def run_one(dataset: str, seed: int, items: List[str], out: Path, device: str) -> int:
    """One seed of one variant in its own process; returns its exit status."""
    if glob.glob(str(out / "*" / "metrics.json")):
        return 0
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ACCURACY), "--datasets", dataset, "--seeds", str(seed), "--device", device,
           "--out", str(out)] + (["--set", *items] if items else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(out / "log.txt", "w") as log:
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def collect(out: Path) -> Dict[str, Dict[int, dict]]:
    """Per variant, per seed: the seed's record from its metrics.json."""
    found: Dict[str, Dict[int, dict]] = {}
    for path in sorted(out.glob("*/seed-*/*/metrics.json")):
        name = path.parents[2].name
        for seed, record in json.loads(path.read_text())["seeds"].items():
            found.setdefault(name, {})[int(seed)] = record
    return found


def schedule(names: List[str], seeds: List[int]) -> List[Tuple[str, int]]:
    """(variant, seed) jobs, seed-major: a screen cut short leaves every variant with the same seeds."""
    return [(name, seed) for seed in seeds for name in names]


def _mean_std(xs: List[float], sign: str = "") -> str:
    """``mean ± population std``; ``sign="+"`` prints the mean's sign."""
    return f"{statistics.mean(xs):{sign}.4f} ± {statistics.pstdev(xs) if len(xs) > 1 else 0.0:.4f}"


# Column label and format of each of the monitor's SWEEP_KEYS (the last reading of the latent
# target that every run's metrics.json carries), shown as min to max over seeds.
_TEACHER = {"target_eff_rank_centred": ("target centred rank", ".1f"),
            "target_cos_to_mean": ("target cos to mean", ".4f"),
            "teacher_information": ("teacher information", ".3g")}


def _span(xs: List[Optional[float]], fmt: str) -> str:
    """``min to max`` of the seeds' values; ``—`` when a seed has none (monitor off, or an older run)."""
    if not xs or any(x is None for x in xs):
        return "—"
    lo, hi = min(xs), max(xs)
    return f"{lo:{fmt}}" if lo == hi else f"{lo:{fmt}} to {hi:{fmt}}"


def table(found: Dict[str, Dict[int, dict]], overrides: Dict[str, List[str]], base: str = "") -> str:
    """Markdown rows, best mean validation accuracy first.

    ``base`` (default: the first variant found; ``main`` passes the first ``--variant``) is the
    arm the others are paired with: over the seeds both ran, the validation difference, its
    mean ± std and on how many seeds it is > 0.
    """
    base = base or next(iter(found), "")
    rows = []
    for name, per in found.items():
        seeds = sorted(per)
        val = [per[s]["val_acc"] for s in seeds]
        test = [per[s]["test_acc"] for s in seeds]
        shared = [s for s in seeds if s in found.get(base, {})]
        if name == base or not shared:
            paired = "—"
        else:
            diff = [per[s]["val_acc"] - found[base][s]["val_acc"] for s in shared]
            paired = f"{_mean_std(diff, '+')}, > 0 on {sum(d > 0 for d in diff)} of {len(diff)}"
        per_seed = ", ".join(f"{v:.3f}/{t:.3f}" for v, t in zip(val, test))
        teacher = " | ".join(_span([per[s].get(key) for s in seeds], _TEACHER[key][1]) for key in SWEEP_KEYS)
        rows.append((statistics.mean(val), f"| {name} | {_mean_std(val)} | {_mean_std(test)} | {paired} | {per_seed} | "
                     f"{' '.join(map(str, seeds))} | {statistics.mean(per[s]['seconds'] for s in seeds):.0f} s | "
                     f"{teacher} | `{' '.join(overrides.get(name, [])) or '(as shipped)'}` |"))
    head = (f"| variant | val acc | test acc | val − {base or 'base'} (paired) | per seed val/test | seeds | "
            f"pre-training per seed | {' | '.join(_TEACHER[key][0] for key in SWEEP_KEYS)} | overrides |\n"
            + "| --- " * (8 + len(SWEEP_KEYS)) + "|")
    return "\n".join([head] + [r for _, r in sorted(rows, key=lambda r: -r[0])])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--variant", dest="variants", type=parse_variant, action="append", required=True,
                   metavar="NAME=OVERRIDES")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="processes at once")
    p.add_argument("--out", type=Path, default=Path("runs/screen"))
    p.add_argument("--report", action="store_true", help="start nothing: tabulate the runs finished so far")
    args = p.parse_args()
    overrides = dict(args.variants)
    if len(overrides) != len(args.variants):
        p.error("variant names must be unique")
    for name, items in overrides.items():  # every variant valid before any run starts
        try:
            load_config(f"{args.dataset}.yaml", items)
        except ConfigError as e:
            p.error(f"variant {name!r}: {e}")
    jobs = [] if args.report else schedule(list(overrides), args.seeds)
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda job: run_one(args.dataset, job[1], overrides[job[0]],
                                                  args.out / job[0] / f"seed-{job[1]}", args.device), jobs))
    failed = [f"{name} seed {seed}" for (name, seed), code in zip(jobs, codes) if code]
    text = table(collect(args.out), overrides, base=args.variants[0][0])
    (args.out / "screen.md").write_text(text + "\n")
    print(text)
    if failed:
        sys.exit(f"failed (see log.txt in each run directory): {', '.join(failed)}")


if __name__ == "__main__":
    main()
