"""Data parallelism on ``torch.distributed``: which rank this process is, and the collectives the agents use.

textgym trains data-parallel when a launcher starts it, as TRL and nanoGPT do: ``torchrun
--nproc-per-node N -m textgym train ...`` or ``accelerate launch``, which set ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``. The process group uses NCCL on CUDA and gloo on the CPU. Every function here is the
identity (or a constant) in a single process, so an algorithm calls them unconditionally and reads the
same either way.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether a launcher started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the launcher's process group (once) and return this rank's device.

    On CUDA each rank takes the GPU ``LOCAL_RANK`` names; on the CPU the device is unchanged. Without a
    launcher nothing happens.
    """
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        # Torn down before the interpreter's: a gloo or NCCL group left to static destructors can abort
        # the process at exit ("terminate called without an active exception") after a finished run.
        atexit.register(_destroy)
    return device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one that writes logs, checkpoints and run files (every process when not distributed)."""
    return rank() == 0


def _comm_device() -> torch.device:
    # NCCL reduces CUDA tensors only, gloo CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def total(x: torch.Tensor | float) -> torch.Tensor:
    """The sum of ``x`` over ranks, without gradient (a constant such as a global token count)."""
    x = torch.as_tensor(x, dtype=torch.float64).detach()
    if not active():
        return x
    out = x.to(_comm_device(), copy=True)
    dist.all_reduce(out)
    return out.to(x.device)


def largest(x: int) -> int:
    """The largest ``x`` over ranks."""
    if not active():
        return x
    out = torch.tensor([x], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return int(out.item())


def gather(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Every rank's ``x`` concatenated along the first axis in rank order, as NumPy."""
    local = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if not active():
        return local
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, local)
    return np.concatenate(out)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()
