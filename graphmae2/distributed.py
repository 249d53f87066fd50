"""torch.distributed set-up for ``torchrun``: one process per device, gloo on CPU, NCCL on
GPU. Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is a
no-op, so the same command runs in one process or many."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group torchrun describes; returns this rank's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def is_rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def close_distributed() -> None:
    """Wait for every rank, then leave the process group. Without it, a rank that finishes
    first (ranks other than 0 skip evaluation) exits while rank 0 still holds the group,
    and gloo can abort that process at exit ("terminate called without an active exception")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
