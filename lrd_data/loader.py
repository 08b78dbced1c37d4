"""Deterministic, resumable, shardable mini-batches over any indexable image source.

A source is an :class:`~lrd_data.ArrayData` or any object with ``len()``, ``num_classes`` and
``get(indices) -> (x float32 NCHW, y int32)`` (e.g. :class:`~lrd_data.imagenet.ImageFolder`).
The sample order of an epoch depends only on ``(seed, epoch)``; with data parallelism each
global batch of ``batch_size * world`` samples is split between the ranks, so ``world`` ranks
see exactly what one process with the global batch would see. ``epoch_batches(e, start)``
resumes mid-epoch.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from lrd_core.errors import ConfigError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def fetch(source, idx: np.ndarray, rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Samples ``idx`` of ``source`` as (x, y) arrays (``rng`` drives a source's own augmentation)."""
    if hasattr(source, "get"):
        return source.get(idx, rng)
    return source.x[idx], source.y[idx]


class Loader:
    """Mini-batches of one rank.

    Parameters
    ----------
    source : ArrayData or indexable source
    batch_size : int
        Samples per step on this rank (global batch = ``batch_size * world``).
    shuffle : bool
        Reshuffle every epoch (order fixed by ``seed`` and the epoch number).
    drop_last : bool
        Drop the last incomplete global batch (training). Without it the last batch is short.
    rank, world : int
        Data-parallel position.
    augment : callable, optional
        ``augment(x, rng) -> x`` applied per batch with a generator seeded by (seed, epoch, step, rank).
    """

    def __init__(self, source, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world: int = 1, augment: Optional[Augment] = None):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ConfigError(f"rank {rank} is outside a world of {world} processes")
        self.source, self.batch_size, self.shuffle, self.seed = source, int(batch_size), shuffle, int(seed)
        self.drop_last, self.rank, self.world, self.augment = drop_last, int(rank), int(world), augment
        if self.steps_per_epoch < 1:
            raise ConfigError(f"{len(source)} samples make no full batch of {self.global_batch} "
                              f"({batch_size} per rank x {world} ranks); lower batch_size")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    @property
    def num_classes(self) -> int:
        return int(self.source.num_classes)

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.source)
        return n // self.global_batch if self.drop_last else -(-n // self.global_batch)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        x, _ = fetch(self.source, np.arange(1), np.random.default_rng(0))
        return tuple(x.shape[1:])

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.source)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, int(epoch))).permutation(n)

    def indices(self, epoch: int, step: int) -> np.ndarray:
        """Sample indices of this rank's part of global batch ``step`` of ``epoch``."""
        g = self.global_batch
        chunk = self.order(epoch)[step * g:(step + 1) * g]
        per = -(-len(chunk) // self.world)
        return chunk[self.rank * per:(self.rank + 1) * per]

    def _make(self, idx: np.ndarray, epoch: int, step: int) -> Tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, int(epoch), int(step), self.rank, 7))
        x, y = fetch(self.source, idx, rng)
        if self.augment is not None:
            x = self.augment(x, rng)
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int32)

    def batch(self, epoch: int, step: int) -> Tuple[np.ndarray, np.ndarray]:
        """This rank's batch ``step`` of ``epoch``."""
        return self._make(self.indices(epoch, step), epoch, step)

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yield this rank's batches ``start .. steps_per_epoch - 1`` of ``epoch``."""
        order = self.order(epoch)
        g = self.global_batch
        for step in range(start, self.steps_per_epoch):
            chunk = order[step * g:(step + 1) * g]
            per = -(-len(chunk) // self.world)
            yield self._make(chunk[self.rank * per:(self.rank + 1) * per], epoch, step)

    def __iter__(self):
        return self.epoch_batches(0)

    def __len__(self) -> int:
        return self.steps_per_epoch


def eval_loader(source, batch_size: int = 256) -> Loader:
    """Every sample once, in order, last batch short."""
    return Loader(source, min(batch_size, len(source)), shuffle=False, drop_last=False)


def train_loader(data, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1) -> Loader:
    """``data`` as the shuffled, sharded training Loader of one rank (a Loader is returned as it is).

    Raises
    ------
    ConfigError
        ``data`` is neither a Loader, an ArrayData nor a source with ``get``.
    """
    from .arrays import ArrayData

    if isinstance(data, Loader):
        return data
    if isinstance(data, ArrayData) or hasattr(data, "get"):
        return Loader(data, batch_size, shuffle=True, seed=seed, rank=rank, world=world)
    raise ConfigError(f"training data must be an ArrayData, a loader source or a Loader, got {type(data).__name__}")
