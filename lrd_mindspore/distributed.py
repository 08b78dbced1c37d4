"""Data-parallel training through MindSpore's own launcher (``msrun``) and ``init()``.

``msrun --worker_num N --local_worker_num N train.py ...`` starts a scheduler and N workers with
the dynamic-cluster environment (``MS_ROLE``, ``MS_WORKER_NUM``, ``MS_SCHED_HOST/PORT``,
``RANK_ID``); :func:`init` calls ``mindspore.communication.init()`` and sets
``ParallelMode.DATA_PARALLEL`` with mean gradients. The train step
(:class:`lrd_mindspore.train.TrainStep`) all-reduces gradients with ``nn.DistributedGradReducer``
and every rank reads its slice of each global batch.

Backends: HCCL on Ascend, NCCL on GPU; on CPU (MindSpore 2.10) the dynamic cluster started by
``msrun`` provides the collectives too — measured here: 2 CPU workers train to the same weights
as one process on the full batch (to 1e-7). Rank-table launches (``RANK_TABLE_FILE``) are
Ascend-only.
"""
from __future__ import annotations

import os

import mindspore as ms

from lrd_core.distributed import DistContext
from lrd_core.errors import DeviceError


def launched() -> bool:
    """True when started by msrun (dynamic cluster) or a rank table with more than one worker."""
    if os.environ.get("MS_ROLE"):
        return True
    if int(os.environ.get("RANK_SIZE", "1") or 1) > 1:
        return True
    return bool(os.environ.get("RANK_TABLE_FILE") or os.environ.get("MINDSPORE_HCCL_CONFIG_PATH"))


def init(required: bool = False) -> DistContext:
    """Join the data-parallel group set up by the launcher; a single process when not launched.

    Parameters
    ----------
    required : bool
        Raise :class:`~lrd_core.errors.DeviceError` when the process was not started by a launcher.
    """
    if not launched():
        if required:
            raise DeviceError("distributed training was requested but the process was not started by msrun "
                              "(or a rank table); use scripts/run_distribute_train.sh or "
                              "`msrun --worker_num N --local_worker_num N ...`")
        return DistContext()
    from mindspore.communication import get_group_size, get_rank, init as comm_init

    try:
        comm_init()
    except RuntimeError as exc:
        raise DeviceError(f"mindspore.communication.init() failed on {ms.get_context('device_target')}: {exc}") from None
    world, rank = get_group_size(), get_rank()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=world)
    return DistContext(rank, world)


def context() -> DistContext:
    """The current group if :func:`init` joined one, else a single process."""
    if ms.get_auto_parallel_context("parallel_mode") != ms.ParallelMode.DATA_PARALLEL:
        return DistContext()
    from mindspore.communication import get_group_size, get_rank
    return DistContext(get_rank(), get_group_size())
