"""The official GraphMAE2 code against graphmae2, side by side: full-batch Cora
pre-training epochs, alternating rounds, each run in its own process.

    make bench-reference REF=/path/to/THUDM-GraphMAE2        # builds the venv, then runs this
    DGLBACKEND=pytorch PYTHONPATH=. ~/.cache/graphmae2/dgl-reference-venv/bin/python \\
        benchmarks/reference/reference_epoch_time.py --reference /path/to/THUDM-GraphMAE2 --rounds 3 --epochs 20

``--reference`` is a checkout of https://github.com/THUDM/GraphMAE2 at commit bc473e8
(``git archive bc473e8 | tar -x -C DIR``). Its files are neither edited nor copied: the
reference worker runs its ``main_full_batch.py`` as ``__main__`` (``runpy``) with the
command line its README gives for Cora (``--dataset cora --use_cfg``, on the CPU), so its
own argument parsing, ``configs/cora.yaml``, dataset loading, model, optimizer and
scheduler are what runs. It is observed from outside: ``tqdm.tqdm`` is replaced, before
the script imports it, by a wrapper that hands the script a real ``tqdm`` over its epoch
range and stamps the clock each time the loop asks for the next epoch (an epoch = the
whole loop body: forward, ``loss.item()``, backward, Adam step, LR scheduler, progress
bar). After the timed epochs it runs one more under ``FlopCounterMode``, then stops the
script (the 2000-epoch run and its final probe are never reached; no probe runs either,
as the script's probe only comes every 200 epochs).

The DGL loader is pointed (``DGL_DOWNLOAD_DIR``) at a staging folder holding the
Planetoid raw files under the names DGL's ``CoraGraphDataset`` looks for
(``cora_v2/ind.cora_v2.*``), linked from ``--planetoid``, so nothing downloads.

graphmae2 runs ``--config`` (default ``configs/cora.yaml``, the authors' Cora recipe;
the mapping of every hyperparameter is in docs/performance.md) through the same timed
loop as ``benchmarks/speed/epoch_time.py``, once per ``--precision`` and per interpreter in
``--graphmae2-python`` (default: this one, so the same torch as the reference; ``make
bench-reference`` adds graphmae2's own ``.venv``, torch 2.13).

Rounds alternate the paths (reference, graphmae2 fp32, graphmae2 bf16, reference, ...).
Each row reports the median of the per-round medians and the min-max of all timed
epochs, the peak RSS of its process, the speed-up over the reference in
each round, the load average, the matmul FLOPs of one step (dense matmuls, forward and backward, counted at the
dispatcher; sparse products and elementwise work are not counted) and the GFLOP/s that achieves, beside
this machine's measured dense matmul peak.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PLANETOID = REPO.parent / "shared" / "datasets" / "planetoid"
DEFAULT_STAGING = Path.home() / ".cache" / "graphmae2" / "reference-dgl-data"
PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


class _Stop(BaseException):
    """Ends the reference script after the measured epochs (BaseException: no ``except
    Exception`` in its code can swallow it)."""


# ------------------------------------------------------------------------- workers
def _count_flops_begin():
    """Enter a dispatch mode that adds up ``2 m k n`` for every dense matmul (``mm``,
    ``addmm``, ``bmm``, ``baddbmm``, which ``nn.Linear`` and ``matmul`` lower to), forward
    and backward. ``FlopCounterMode`` would also count a sparse-CSR product as if it were
    dense (graphmae2's sparse first-layer projection came out at 839 GFLOP that way), so
    products with a sparse operand are left out, as are DGL's own kernels (they bypass
    the dispatcher) and elementwise work."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten

    class MatmulFlops(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            packet = func.overloadpacket
            if packet in (aten.mm, aten.addmm, aten.bmm, aten.baddbmm):
                a, b = args[-2], args[-1]
                if a.layout == torch.strided and b.layout == torch.strided:
                    batch = a.shape[0] if a.dim() == 3 else 1
                    self.total += 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
            return func(*args, **(kwargs or {}))

        def get_total_flops(self) -> int:
            return self.total

    mode = MatmulFlops()
    mode.__enter__()
    return mode


def reference_worker(reference: Path, planetoid: Path, staging: Path, epochs: int, warmup: int) -> Dict[str, Any]:
    """Run the official ``main_full_batch.py`` unmodified and time its epoch loop."""
    import tqdm as tqdm_module

    real_tqdm = tqdm_module.tqdm
    stamps: List[float] = []
    flops: Dict[str, int] = {}

    class TimedEpochs:
        """Stands in for ``tqdm(range(max_epoch))``: a real tqdm, clock stamped per epoch."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def __iter__(self):
            mode = None
            for i, epoch in enumerate(self.inner):
                stamps.append(time.perf_counter())
                if i == warmup + epochs:  # one extra, untimed epoch under the FLOP counter
                    mode = _count_flops_begin()
                elif i == warmup + epochs + 1:
                    mode.__exit__(None, None, None)
                    flops["per_step"] = int(mode.get_total_flops())
                    self.inner.close()
                    raise _Stop
                yield epoch

    first = []

    def patched_tqdm(*args, **kwargs):
        bar = real_tqdm(*args, **kwargs)
        if not first:  # the first tqdm the script makes is pretrain()'s epoch loop
            first.append(bar)
            return TimedEpochs(bar)
        return bar

    tqdm_module.tqdm = patched_tqdm
    try:
        run_reference(reference, planetoid, staging, seed=0)
    except _Stop:
        pass
    if len(stamps) < warmup + epochs + 2:
        raise RuntimeError(f"the reference loop ran {len(stamps)} epochs, expected {warmup + epochs + 2}: "
                           f"is {reference} the official GraphMAE2 at bc473e8?")
    times = [b - a for a, b in zip(stamps[warmup:warmup + epochs], stamps[warmup + 1:warmup + epochs + 1])]
    return {"times": times, "flops": flops["per_step"]}


def graphmae2_worker(config: str, overrides: List[str], epochs: int, warmup: int) -> Dict[str, Any]:
    """Time graphmae2's epochs with ``benchmarks/speed/epoch_time.py``'s loop, then count one step's FLOPs."""
    import torch

    sys.path.insert(0, str(REPO / "benchmarks" / "speed"))
    from epoch_time import time_epochs

    import graphmae2
    from graphmae2.config import load_config
    from graphmae2.datasets import load_data
    from graphmae2.seeding import seed_everything

    cfg = load_config(config, overrides)
    data = load_data(cfg.data)
    seed_everything(0, True)
    times = time_epochs(cfg, data, torch.device("cpu"), epochs, warmup, fast=True)
    mode = _count_flops_begin()
    time_epochs(cfg, data, torch.device("cpu"), 1, 0, fast=True)
    mode.__exit__(None, None, None)
    return {"times": times, "flops": int(mode.get_total_flops()), "package": graphmae2.__file__}


def matmul_peak_worker() -> Dict[str, Any]:
    """Best dense matmul GFLOP/s of this torch, float32 and bfloat16, at Cora-like and square shapes."""
    import torch

    out: Dict[str, Any] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for m, k, n in ((2708, 1024, 1024), (2708, 1433, 1024), (4096, 4096, 4096)):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            torch.matmul(a, b)
            for _ in range(5):
                tic = time.perf_counter()
                torch.matmul(a, b)
                best = max(best, 2 * m * k * n / (time.perf_counter() - tic) / 1e9)
        out[name] = best
    return out


# --------------------------------------------------------------------- the driver
def run_reference(reference: Path, planetoid: Path, staging: Path, seed: int, dataset: str = "cora") -> None:
    """Run the official ``main_full_batch.py`` unmodified, in this process, with the command
    line its README gives (``--use_cfg`` lays its ``configs/<dataset>.yaml`` over the
    flags), on the CPU, for one seed. Also used by ``reference_accuracy.py``."""
    import runpy

    enter_reference(reference, planetoid, staging, dataset)
    sys.argv = ["main_full_batch.py", "--dataset", dataset, "--use_cfg", "--device", "-1", "--seeds", str(seed)]
    runpy.run_path(str(reference / "main_full_batch.py"), run_name="__main__")


def enter_reference(reference: Path, planetoid: Path = DEFAULT_PLANETOID, staging: Path = DEFAULT_STAGING,
                    dataset: str = "cora") -> None:
    """Make this process run the official code as its README does: the raw files staged
    where DGL reads them, the checkout as the working directory (its
    ``load_best_configs`` reads ``configs/<dataset>.yaml`` from there) and first on
    ``sys.path``."""
    stage_planetoid(planetoid, staging, dataset)
    os.environ["DGL_DOWNLOAD_DIR"] = str(staging)
    os.chdir(reference)
    sys.path.insert(0, str(reference))


#: DGL's name for each Planetoid graph (``CitationGraphDataset._urls``): Cora is ``cora_v2``.
DGL_NAMES = {"cora": "cora_v2", "citeseer": "citeseer", "pubmed": "pubmed"}


def stage_planetoid(planetoid: Path, staging: Path, dataset: str = "cora") -> None:
    """Link the raw Planetoid files where DGL's ``CitationGraphDataset`` reads them, so it
    never downloads: ``$DGL_DOWNLOAD_DIR/<name>_<sha1(url)[:8]>/ind.<name>.<part>`` (DGL
    names the folder after the dataset and a hash of its download URL, and downloads only
    when that folder is missing). Runs in the reference worker, which has DGL."""
    import hashlib

    from dgl.data.utils import _get_dgl_url

    name = DGL_NAMES[dataset]
    url = _get_dgl_url(f"dataset/{name}.zip")
    folder = staging / (name + "_" + hashlib.sha1(url.encode("utf-8")).hexdigest()[:8])
    folder.mkdir(parents=True, exist_ok=True)
    for part in PLANETOID_PARTS:
        src = planetoid / f"ind.{dataset}.{part}"
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing; pass --planetoid DIR holding the raw ind.{dataset}.* files")
        dst = folder / f"ind.{name}.{part}"
        if not dst.exists():
            dst.symlink_to(src.resolve())


def run_child(python: str, worker_args: List[str]) -> Dict[str, Any]:
    """One worker in a fresh process; returns its JSON result, which carries the worker's
    own peak RSS (``ru_maxrss`` of ``RUSAGE_SELF`` as it ends: ``RUSAGE_CHILDREN`` here would
    be the largest of all children so far, not this one's)."""
    # OUTDATED_IGNORE: ogb, imported by the reference, would otherwise try to reach PyPI.
    env = dict(os.environ, DGLBACKEND="pytorch", PYTHONPATH=str(REPO), OUTDATED_IGNORE="1")
    cmd = [python, str(Path(__file__).resolve()), "--worker"] + worker_args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(worker_args)} failed ({proc.returncode}):\n{err[-4000:]}")
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _fmt_row(name: str, medians: List[float], all_times: List[float], rss: List[float],
             ratios: Optional[List[float]]) -> str:
    text = (f"{name:<36} median {statistics.median(medians):.3f} s "
            f"(round medians {', '.join(f'{m:.3f}' for m in medians)}; "
            f"all epochs {min(all_times):.3f}-{max(all_times):.3f})  "
            f"peak RSS {min(rss):.0f}-{max(rss):.0f} MB")
    if ratios:
        text += (f"  speed-up over the reference {statistics.median(ratios):.2f}x "
                 f"(per round {min(ratios):.2f}-{max(ratios):.2f})")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, help="checkout of THUDM/GraphMAE2 at commit bc473e8")
    p.add_argument("--planetoid", type=Path, default=DEFAULT_PLANETOID, help="folder of the raw ind.cora.* files")
    p.add_argument("--staging", type=Path, default=DEFAULT_STAGING,
                   help="where the files are linked for DGL's loader (and DGL caches its processed graph)")
    p.add_argument("--config", default="cora.yaml")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="graphmae2 config overrides")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20, help="timed epochs per path and round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--graphmae2-python", nargs="+", default=[sys.executable],
                   help="interpreters for the graphmae2 rows, one set of rows each "
                        "(default: this one, i.e. the same torch as the reference)")
    p.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        kind, rest = args.worker[0], args.worker[1:]
        if kind == "reference":
            result = reference_worker(Path(rest[0]), Path(rest[1]), Path(rest[2]), int(rest[3]), int(rest[4]))
        elif kind == "graphmae2":
            result = graphmae2_worker(rest[0], json.loads(rest[3]), int(rest[1]), int(rest[2]))
        else:
            result = matmul_peak_worker()
        import resource

        import torch

        result.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      torch=torch.__version__, threads=torch.get_num_threads())
        print("RESULT " + json.dumps(result), flush=True)
        return

    if args.reference is None or not (args.reference / "main_full_batch.py").is_file():
        p.error(f"--reference must be a checkout of THUDM/GraphMAE2 (bc473e8) holding main_full_batch.py, "
                f"got {args.reference}")
    paths = [("reference (official code)", sys.executable,
              ["reference", str(args.reference.resolve()), str(args.planetoid.resolve()), str(args.staging),
               str(args.epochs), str(args.warmup)])]
    for python in args.graphmae2_python:
        torch_version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], check=True,
                                       capture_output=True, text=True).stdout.strip()
        for prec in args.precision:
            overrides = args.overrides + [f"train.precision={prec}"]
            paths.append((f"graphmae2 {prec} (torch {torch_version})", python,
                          ["graphmae2", args.config, str(args.epochs), str(args.warmup), json.dumps(overrides)]))
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)
    pythons = list(dict.fromkeys(py for _, py, _ in paths))
    first_peaks = {python: run_child(python, ["peak"]) for python in pythons}
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name, _, _ in paths}
    loads = []
    for r in range(args.rounds):
        for name, python, wargs in paths:
            res = run_child(python, wargs)
            res["load"] = os.getloadavg()[0]
            results[name].append(res)
            print(f"round {r + 1} {name:<36} median {statistics.median(res['times']):.3f} s "
                  f"({min(res['times']):.3f}-{max(res['times']):.3f}), peak RSS {res['peak_rss_mb']:.0f} MB, "
                  f"torch {res['torch']}, {res['threads']} threads, load {res['load']:.2f}"
                  + (f", {res['package']}" if r == 0 and "package" in res else ""), flush=True)
        loads.append(os.getloadavg())
    peaks = {}  # the best of a measurement before and one after the rounds: load only lowers it
    for python in pythons:
        last = run_child(python, ["peak"])
        peaks[python] = {**last, **{k: max(first_peaks[python][k], last[k]) for k in ("fp32", "bf16")}}
    ref_name = paths[0][0]
    ref_medians = [statistics.median(res["times"]) for res in results[ref_name]]
    print(f"\nload average at end: {os.getloadavg()}  (absolute times depend on the machine's load; "
          f"read the ratios, measured round by round)")
    summary = []
    for name, python, _ in paths:
        runs = results[name]
        medians = [statistics.median(res["times"]) for res in runs]
        ratios = None if name == ref_name else [rm / m for rm, m in zip(ref_medians, medians)]
        all_times = [t for res in runs for t in res["times"]]
        rss = [res["peak_rss_mb"] for res in runs]
        print(_fmt_row(name, medians, all_times, rss, ratios))
        summary.append({"path": name, "round_medians_s": medians, "min_s": min(all_times), "max_s": max(all_times),
                        "peak_rss_mb": rss, "speedup_per_round": ratios, "flops_per_step": runs[0]["flops"],
                        "torch": runs[0]["torch"], "loads": [res["load"] for res in runs],
                        "peak_gflops": peaks[python]})
    print()
    for peak in peaks.values():
        print(f"dense matmul peak of this machine (torch {peak['torch']}, {peak['threads']} threads): "
              f"fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    for row in summary:
        med = statistics.median(row["round_medians_s"])
        gf = row["flops_per_step"] / 1e9
        which = "bf16" if " bf16 " in row["path"] else "fp32"
        print(f"{row['path']:<36} {gf:.1f} GFLOP of dense matmuls per step, {gf / med:.0f} GFLOP/s achieved "
              f"= {gf / med / row['peak_gflops'][which]:.0%} of the {which} peak")
    ref_rss = max(summary[0]["peak_rss_mb"])
    for row in summary[1:]:
        print(f"{row['path']:<36} peak RSS {max(row['peak_rss_mb']) / ref_rss:.2f}x the reference's")
    print(json.dumps({"rounds": args.rounds, "epochs": args.epochs, "warmup": args.warmup,
                      "rows": summary}))


if __name__ == "__main__":
    main()
