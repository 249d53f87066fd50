"""Run manifests: what a run was (environment, seeds, digests, loss trace), and how two
runs differ.

``manifest.json`` is written into every seed's run directory. :func:`compare_runs`
walks two of them in the order a difference would propagate (environment, initial
parameters, first masks, loss trace, final parameters) and names the first one.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

ENV_KEYS = ("python", "torch", "numpy", "cuda", "cudnn", "device_name")


_DIGEST_CHUNK = 1 << 26  # bytes hashed at a time


def tensor_digest(t: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (device-independent)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    flat = t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""
    for start in range(0, len(flat), _DIGEST_CHUNK):  # t may be a memory-mapped matrix
        h.update(flat[start:start + _DIGEST_CHUNK])
    return h.hexdigest()


def state_digests(module: Union[nn.Module, Dict[str, Tensor]]) -> Dict[str, Any]:
    """``{"overall": sha, "tensors": {name: sha}}`` over a state dict, names sorted."""
    state = module.state_dict() if isinstance(module, nn.Module) else module
    per = {name: tensor_digest(t) for name, t in sorted(state.items())}
    overall = hashlib.sha256("".join(f"{k}={v};" for k, v in per.items()).encode()).hexdigest()
    return {"overall": overall, "tensors": per}


def environment(device: torch.device) -> Dict[str, Optional[str]]:
    """Library versions and the device: what bitwise repeatability is conditional on."""
    on_cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
        "device_name": torch.cuda.get_device_name(device) if on_cuda else f"cpu ({platform.machine()})",
        "platform": platform.platform(),
        "threads": str(torch.get_num_threads()),
        "executable": sys.executable,
    }


def write_manifest(path: Union[str, Path], manifest: Dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def read_manifest(run: Union[str, Path]) -> Dict[str, Any]:
    """Manifest of a seed directory, or of the first seed of a run directory."""
    run = Path(run)
    candidates = [run / "manifest.json"] + sorted(run.glob("seed-*/manifest.json"))
    for c in candidates:
        if c.is_file():
            return json.loads(c.read_text())
    raise FileNotFoundError(f"{run}: no manifest.json here or in its seed-* directories")


def compare_runs(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """Differences between two manifests, most upstream first; empty if identical.

    Returns at most one line per category; the first line is the root cause to look at.
    """
    out: List[str] = []
    for key in ENV_KEYS:
        va, vb = a["environment"].get(key), b["environment"].get(key)
        if va != vb:
            out.append(f"environment: {key} differs: {va!r} vs {vb!r}")
            break
    if a["seed"] != b["seed"]:
        out.append(f"seed differs: {a['seed']} vs {b['seed']}")
    ta, tb = a["initial_params"]["tensors"], b["initial_params"]["tensors"]
    for name in sorted(set(ta) | set(tb)):
        if ta.get(name) != tb.get(name):
            what = "missing in one run" if name not in ta or name not in tb else "differs"
            out.append(f"initial parameter {name} {what}")
            break
    if a["first_mask_digest"] != b["first_mask_digest"]:
        out.append("mask digest of the first epoch differs")
    la, lb = a["loss_trace"], b["loss_trace"]
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            out.append(f"loss differs first at epoch {i}: {x!r} vs {y!r}")
            break
    else:
        if len(la) != len(lb):
            out.append(f"loss traces have different lengths: {len(la)} vs {len(lb)}")
    fa, fb = a.get("final_params", {}).get("tensors", {}), b.get("final_params", {}).get("tensors", {})
    for name in sorted(set(fa) | set(fb)):
        if fa.get(name) != fb.get(name):
            out.append(f"final parameter {name} differs")
            break
    if a.get("embedding_digest") != b.get("embedding_digest"):
        out.append("embeddings differ")
    return out
