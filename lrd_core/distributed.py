"""Where a process sits in a data-parallel group (the adapters' launch glue fills it in).

torch joins the group that ``torchrun`` describes (``lrd_torch.distributed``); MindSpore joins the one
``msrun`` (or a rank table) set up (``lrd_mindspore.distributed``). Both return this context; the
trainers shard every global batch by ``rank``/``world``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DistContext:
    """Rank and group size of this process (a single process: rank 0 of 1).

    Attributes
    ----------
    rank, world : int
    local_rank : int
        Index of the process on its host (device index).
    backend : str or None
        Collective backend (``gloo``, ``nccl``, ``hccl``, ...).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1
