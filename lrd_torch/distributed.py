"""Data-parallel training with ``torchrun`` + ``DistributedDataParallel``.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`init` joins the process group (``nccl`` on CUDA, ``gloo`` on CPU).
Each rank reads its slice of every global batch (:class:`lrd_data.Loader` with ``rank``/``world``)
and DDP averages the gradients, so N ranks with batch b train like one process with batch N*b.
With freezing, DDP is re-wrapped when the trainable set changes (DDP registers its gradient
hooks for the parameters that require grad when it is built).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from lrd_core.distributed import DistContext


def init(backend: Optional[str] = None) -> DistContext:
    """Join the process group described by the torchrun environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, backend)


def context() -> DistContext:
    """The current group (after :func:`init`), or a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                           dist.get_backend())
    return DistContext()


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` over the parameters that currently require grad."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.local_rank] if ctx.backend == "nccl" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
