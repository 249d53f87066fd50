"""Seeding: global flags checked after setting, named RNG streams, name-keyed init.

Three ideas keep a run repeatable:

* ``set_deterministic`` sets the determinism flags, then reads each flag back, so a
  misspelt attribute fails loudly instead of doing nothing. Training never seeds (or
  draws from) the global generators: a caller's ``torch.rand`` after
  ``graphmae2.pretrain`` gives what it would have given without it.
* Named streams: every consumer of randomness (``init``, ``mask``, ``remask`` per view,
  ``dropout`` through :mod:`graphmae2.dropout`, ``probe``, ``loader``) draws from a
  ``torch.Generator`` derived from
  ``(seed, stream name, step, ...)`` through SHA-256. Turning one consumer on or off,
  or changing how many views it draws, never shifts another consumer's numbers, and a
  resumed run needs only the step counter to land on the same draws.
* Name-keyed initialisation: each parameter is initialised from a generator seeded by
  ``(seed, qualified parameter name)``, so adding an unused layer does not move the
  initial value of any other parameter.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
from typing import Any, Dict, Iterator, Union

import numpy as np
import torch
from torch import nn

_logger = logging.getLogger(__name__)

#: ``PYTHONHASHSEED`` as the process started (recorded in every manifest).
HASHSEED_AT_START = os.environ.get("PYTHONHASHSEED")
_ENV_AT_IMPORT = dict(os.environ)


def derive_seed(seed: int, *keys: Union[str, int]) -> int:
    """A 63-bit seed from ``seed`` and any keys, stable across processes and platforms.

    Uses SHA-256 rather than Python's ``hash()``, which is salted per process.
    """
    text = "\x1f".join([str(int(seed))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, *keys: Union[str, int], device: Union[str, torch.device] = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded by ``derive_seed(seed, *keys)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


def set_deterministic(deterministic: bool = True, seed: int = 0) -> Dict[str, Any]:
    """Set (or clear) the determinism flags and read each one back, so a misspelt
    attribute fails loudly instead of doing nothing; returns the record the manifest keeps
    (``seed`` is recorded, not used: no RNG is touched here).

    Raises ``RuntimeError`` if a flag does not read back as set.
    """
    if deterministic:
        # cuBLAS reads this when CUDA initialises; setting it later has no effect.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=False)

    record = {
        "seed": int(seed),
        "deterministic": bool(deterministic),
        "cudnn.deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn.benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "PYTHONHASHSEED": HASHSEED_AT_START,
    }
    expected = {"cudnn.deterministic": deterministic, "cudnn.benchmark": not deterministic,
                "deterministic_algorithms": deterministic}
    for key, want in expected.items():
        if record[key] != want:
            raise RuntimeError(f"set_deterministic: {key} reads back {record[key]}, expected {want}")
    if deterministic and record["CUBLAS_WORKSPACE_CONFIG"] is None:
        raise RuntimeError("set_deterministic: CUBLAS_WORKSPACE_CONFIG is not set")
    if deterministic and torch.cuda.is_available() and torch.cuda.is_initialized() \
            and "CUBLAS_WORKSPACE_CONFIG" not in _ENV_AT_IMPORT:
        _logger.warning("CUDA was initialised before the determinism flags set CUBLAS_WORKSPACE_CONFIG; "
                        "cuBLAS may still pick non-deterministic kernels. Set them first.")
    return record


def seed_everything(seed: int, deterministic: bool = True) -> Dict[str, Any]:
    """For your own code: seed ``random``, NumPy and torch (CPU and every CUDA device)
    and set the determinism flags (:func:`set_deterministic`, whose record it returns).

    graphmae2 itself never draws from these global generators (every draw comes from a
    named stream), so training does not call this and leaves your RNG state as it was.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return set_deterministic(deterministic, seed)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the state of ``random``, NumPy's and torch's global generators (CPU and
    every initialised CUDA device) after the block, whatever it drew."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders: seeds ``random`` and NumPy in each worker from
    torch's per-worker seed (itself derived from the loader's seeded generator)."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def loader_generator(seed: int, epoch: int = 0) -> torch.Generator:
    """The seeded generator every DataLoader the package creates is given."""
    return generator(seed, "loader", epoch)


@torch.no_grad()
def init_parameters_by_name(model: nn.Module, seed: int) -> None:
    """Re-initialise every parameter from a generator keyed by its qualified name.

    For each parameter, the owning module's ``reset_parameters()`` runs with torch's
    CPU generator seeded by ``derive_seed(seed, "init", name)`` (its state restored
    after; build the model on the CPU), and only that parameter's
    new value is kept. Each value is then a function of (seed, name, the owning module's
    own definition) only. Parameters whose module has no ``reset_parameters`` keep the
    value they were built with.
    """
    new_values: Dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        reset = getattr(module, "reset_parameters", None)
        if reset is None:
            continue
        for local, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{local}" if module_name else local
            saved = {k: v.detach().clone() for k, v in module.state_dict(keep_vars=False).items()}
            with torch.random.fork_rng(devices=[]):  # the CPU generator, restored after
                torch.random.default_generator.manual_seed(derive_seed(seed, "init", name))
                reset()
            new_values[name] = param.detach().clone()
            module.load_state_dict(saved)
    params = dict(model.named_parameters())
    for name, value in new_values.items():
        params[name].copy_(value)
