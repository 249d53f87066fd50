"""``--device``: a name in, a usable ``torch.device`` out, or a one-line error."""
from __future__ import annotations

import torch

DEVICE_FORMS = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error.

    Raises:
        ValueError: a name torch does not know, a device type other than CPU or CUDA,
            CUDA on a machine without it, or a CUDA index past the last GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name}: not a device name; allowed: {DEVICE_FORMS}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: graphmae2 runs on the CPU or CUDA; allowed: {DEVICE_FORMS}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev
