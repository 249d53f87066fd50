"""``train.precision``: the forward pass's autocast, and a warning where bfloat16 would
be emulated.

Under ``bf16`` the dense matmuls run in bfloat16 (:func:`autocast`). Message passing
(:mod:`graphmae2.ops`), the sparse first-layer product, the losses and the latent-target
transforms run in float32; the attention scores' matmul and the encoder output are
bfloat16 until the loss casts them.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional, Union

import torch

from .config import Config

_logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)  # read once per process, not once per seed
def cpu_has_native_bf16(cpuinfo: Union[str, Path] = "/proc/cpuinfo") -> Optional[bool]:
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX); ``None`` where
    ``cpuinfo`` cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def _warn_emulated_bf16() -> None:
    """The warning, given once per process (not once per seed)."""
    _logger.warning("train.precision=bf16 on a CPU without AVX-512 BF16 or AMX is emulated and "
                    "likely slower than float32; pass --set train.precision=fp32")


def check_precision(cfg: Config, device: torch.device) -> None:
    """Warn when ``train.precision: bf16`` would run emulated, slower than float32."""
    if cfg.train.precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        _warn_emulated_bf16()


def autocast(cfg: Config, device: torch.device) -> torch.autocast:
    """The forward pass's precision: bfloat16 autocast for ``train.precision: bf16``
    (dense matmuls in bfloat16), else off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")
