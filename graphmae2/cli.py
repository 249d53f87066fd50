"""Command line: parse, check the whole config, then hand over to the package.

Every user error (bad config, unknown dataset, missing file) is reported as one line
naming what was wrong and what is allowed, with exit status 2, before any data is
loaded; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

import torch

from .config import EVAL_MODES, Config, ConfigError, load_config, schema
from .datasets import DownloadError
from .sweep import grid, is_sweep_dir, load_sweep_spec, parse_sweep, run_sweep
from .sweep_report import format_table

_logger = logging.getLogger("graphmae2")

EPILOG = "config keys (use with --set section.key=value):\n" + "\n".join(
    f"  {key:<28} {f.metadata['help']}" for key, f in schema())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", description="GraphMAE2 self-supervised pre-training and evaluation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of overrides; NAME.yaml also looks in configs/")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to run (overrides train.seeds)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], nargs="+",
                   metavar="KEY=VALUE", help="override a config key, e.g. --set train.max_epoch=100")
    p.add_argument("--eval", choices=EVAL_MODES,
                   help="evaluation mode (overrides eval.mode)")
    p.add_argument("--out", default="runs", help="parent directory of run directories (default: runs)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--sweep", action="append", default=[], nargs="+", metavar="KEY=V1,V2",
                   help="sweep a config key over values (several --sweep flags form a grid), "
                        "e.g. --sweep ema.momentum=0,0.99,0.996,1 --seeds 0 1 2")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --sweep: run N (point, seed) pairs at a time, each in its own process "
                        "with 1/N of the CPU threads; the table adds each point's validation "
                        "difference to the first, paired by seed (default: 1)")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="name the first difference between two runs' manifests")
    p.add_argument("--verify-determinism", action="store_true",
                   help="train twice from scratch in separate processes and check bitwise equality")
    p.add_argument("--embed", action="store_true", help="write embeddings of a checkpoint (see --checkpoint)")
    p.add_argument("--checkpoint", help="checkpoint.pt (or run directory) for --embed")
    p.add_argument("--dataset", help="dataset to embed with --embed (default: the checkpoint's)")
    p.add_argument("--output", help="output file for --embed: .npy or .pt")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


def _config_from_args(args: argparse.Namespace) -> Config:
    overrides = [item for group in args.overrides for item in group]
    if args.eval:
        overrides.append(f"eval.mode={args.eval}")
    if args.seeds:
        overrides.append(f"train.seeds=[{', '.join(str(s) for s in args.seeds)}]")
    return load_config(args.config, overrides)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .trainer import NonFiniteLossError

    try:
        return _dispatch(args)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError, DownloadError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except torch.cuda.OutOfMemoryError as exc:
        if args.debug:
            raise
        print(f"error: CUDA out of memory ({str(exc).splitlines()[0][:160]}). {_memory_advice(args)}",
              file=sys.stderr)
        return 1


def _memory_advice(args: argparse.Namespace) -> str:
    """What to change when the GPU runs out of memory, with the sizes involved."""
    try:
        cfg = _config_from_args(args) if args.config else None
    except ConfigError:
        cfg = None
    sizes = ""
    if cfg is not None:
        m = cfg.model
        sizes = (f"Model: num_hidden={m.num_hidden}, num_heads={m.num_heads}, num_remask={m.num_remask} "
                 f"on {cfg.data.dataset}. ")
    return (sizes + "To use less memory: fewer decoding views (--set model.num_remask=1), a smaller "
            "model (--set model.num_hidden=512), or the CPU (--device cpu).")


def _dispatch(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .experiment import new_run_dir, run_experiment
    from .results import headline

    if args.compare:
        return _compare(*args.compare)
    if args.embed:
        return _embed(args)
    if args.verify_determinism:
        from .verify_determinism import verify_determinism

        return verify_determinism(args.config, [i for g in args.overrides for i in g],
                                  device=args.device, out=Path(args.out))
    if args.sweep or (args.resume and is_sweep_dir(args.resume)):
        return _sweep(args)
    if args.jobs != 1:
        raise ConfigError(f"--jobs {args.jobs}: only sweeps run in parallel; add --sweep KEY=V1,V2")
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"--resume {run_dir}: no config.yaml there; not a run directory")
        cfg = load_config(run_dir / "config.yaml")
    else:
        if args.config is None:
            raise ConfigError("--config is required, e.g. --config cora.yaml")
        cfg = _config_from_args(args)
        run_dir = None
    from .datasets import load_data
    from .distributed import broadcast_object, close_distributed, init_distributed, is_rank0

    device = init_distributed(resolve_device(args.device))
    data = load_data(cfg.data)
    if run_dir is None and is_rank0():
        run_dir = new_run_dir(Path(args.out), cfg.data.dataset, force=args.force)
    run_dir = broadcast_object(run_dir)
    _logger.info("run directory: %s (device %s)", run_dir, device)
    rank0 = is_rank0()
    try:
        run = run_experiment(cfg, run_dir, device, data=data, resume=bool(args.resume),
                             progress=not args.quiet)
    finally:
        close_distributed()
    if rank0:
        print(headline(run.summary))
    return 0


def _compare(run_a: str, run_b: str) -> int:
    from .manifest import compare_runs, read_manifest

    diffs = compare_runs(read_manifest(run_a), read_manifest(run_b))
    if not diffs:
        print("identical: environment, initial parameters, masks, loss trace, final parameters, embeddings")
        return 0
    print(f"first difference: {diffs[0]}")
    for line in diffs[1:]:
        print(f"  then: {line}")
    return 1


def _embed(args: argparse.Namespace) -> int:
    import copy

    import numpy as np

    from .config import set_value
    from .datasets import load_data
    from .devices import resolve_device
    from .pretrained import embed, load_encoder

    if not args.checkpoint or not args.output:
        raise ConfigError("--embed needs --checkpoint RUN_DIR/checkpoint.pt and --output FILE.npy|FILE.pt")
    out = Path(args.output)
    if out.suffix not in (".npy", ".pt"):
        raise ConfigError(f"--output {out}: must end in .npy or .pt")
    device = resolve_device(args.device)
    encoder = load_encoder(args.checkpoint, device=device)
    cfg = copy.deepcopy(encoder.config)
    if args.dataset:
        set_value(cfg, "data.dataset", args.dataset.lower(), source="--dataset")
    cfg.data.feature_norm = "none"  # the loaded encoder scales features itself, as in training
    data = load_data(cfg.data)
    name = cfg.data.dataset
    if data.num_features != encoder.encoder.layers[0].in_dim:
        raise ValueError(f"--dataset {name}: {data.num_features} features, but the checkpoint was "
                         f"trained on {encoder.encoder.layers[0].in_dim}")
    z = embed(encoder, data.graph.to(device), data.x.to(device)).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, z.numpy())
    else:
        torch.save(z, out)
    message = f"wrote {tuple(z.shape)} embeddings to {out}"
    if data.y is not None:  # an unlabelled graph has none to write
        labels = out.with_name("labels.npy")
        np.save(labels, data.y.numpy())
        message += f" and labels to {labels}"
    print(message)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .datasets import load_data
    from .devices import resolve_device
    from .experiment import new_run_dir

    if args.resume:
        sweep_dir = Path(args.resume)
        cfg, sweeps, seeds = load_sweep_spec(sweep_dir)
    else:
        if args.config is None:
            raise ConfigError("--sweep needs --config, e.g. --config cora.yaml")
        cfg = _config_from_args(args)
        sweeps = parse_sweep([item for group in args.sweep for item in group], cfg)
        seeds = cfg.train.seeds
    grid(cfg, sweeps)  # every grid point type- and range-checked before any data is loaded
    device = resolve_device(args.device)
    data = load_data(cfg.data)
    if not args.resume:
        sweep_dir = new_run_dir(Path(args.out), f"{cfg.data.dataset}-sweep", force=args.force)
    _logger.info("sweep directory: %s (device %s)", sweep_dir, device)
    rows = run_sweep(cfg, sweeps, seeds, sweep_dir, device, data=data, resume=bool(args.resume),
                     progress=not args.quiet, jobs=args.jobs)
    print(format_table(rows))
    print(f"sweep: {len(rows)} points x {len(seeds)} seeds in {sweep_dir}")
    return 0
