"""A split of in-memory image data and a deterministic mini-batch iterator."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np


@dataclass
class ArrayData:
    """Images ``x`` (N, C, H, W) float32 and labels ``y`` (N,) int32."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def take(self, n: int) -> "ArrayData":
        return ArrayData(self.x[:n], self.y[:n], self.num_classes)

    def shard(self, rank: int, world: int) -> "ArrayData":
        """Every ``world``-th sample starting at ``rank`` (data-parallel split)."""
        return ArrayData(self.x[rank::world], self.y[rank::world], self.num_classes)


def batches(data: ArrayData, batch_size: int, shuffle: bool = False, seed: Optional[int] = None,
            drop_last: bool = False, epoch: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield (x, y) mini-batches; the shuffle order depends only on (seed, epoch)."""
    n = len(data)
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng(None if seed is None else (seed, epoch)).permutation(n)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield data.x[idx], data.y[idx]
