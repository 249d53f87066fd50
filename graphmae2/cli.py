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

from .config import Config, ConfigError, load_config, schema

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
    p.add_argument("--out", default="runs", help="parent directory of run directories (default: runs)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


def _config_from_args(args: argparse.Namespace) -> Config:
    overrides = [item for group in args.overrides for item in group]
    if args.seeds:
        overrides.append(f"train.seeds=[{', '.join(str(s) for s in args.seeds)}]")
    return load_config(args.config, overrides)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from .experiment import headline, new_run_dir, resolve_device, run_experiment

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
    device = resolve_device(args.device)
    from .datasets import load_dataset

    data = load_dataset(cfg.data.dataset, root=cfg.data.root)
    if run_dir is None:
        run_dir = new_run_dir(Path(args.out), cfg.data.dataset, force=args.force)
    _logger.info("run directory: %s (device %s)", run_dir, device)
    metrics = run_experiment(cfg, run_dir, device, data=data, resume=bool(args.resume),
                             progress=not args.quiet)
    print(headline(metrics))
    return 0
