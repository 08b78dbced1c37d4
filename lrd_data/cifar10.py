"""CIFAR-10 in its binary distribution format (``cifar-10-batches-bin``).

Each record is 1 label byte followed by 3,072 image bytes (1,024 red, 1,024 green, 1,024 blue,
row-major 32x32). Training files ``data_batch_1.bin`` .. ``data_batch_5.bin``, test file
``test_batch.bin`` — the layout MindSpore's ``Cifar10Dataset`` reads too.
"""
from __future__ import annotations

import glob
import os
from typing import Optional

import numpy as np

from lrd_core.errors import ConfigError
from lrd_core.io import atomic_file

from .arrays import ArrayData

RECORD = 1 + 3 * 32 * 32
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
TRAIN_FILES = "data_batch_*.bin"
TEST_FILES = "test_batch.bin"


def _files(path: str, train: bool):
    root = path
    nested = os.path.join(path, "cifar-10-batches-bin")
    if os.path.isdir(nested):
        root = nested
    files = sorted(glob.glob(os.path.join(root, TRAIN_FILES if train else TEST_FILES)))
    if not files:
        raise ConfigError(f"no CIFAR-10 {'training' if train else 'test'} files ({TRAIN_FILES if train else TEST_FILES}) "
                          f"under {path}; point data_path at the extracted cifar-10-batches-bin directory")
    return files


def load_cifar10(path: str, train: bool = True, limit: Optional[int] = None) -> ArrayData:
    """Read the binary files of one split, normalised by the CIFAR-10 channel statistics."""
    raw = []
    for f in _files(path, train):
        data = np.fromfile(f, np.uint8)
        if data.size % RECORD:
            raise ConfigError(f"{f} is not a CIFAR-10 binary file (size {data.size} is not a multiple of {RECORD})")
        raw.append(data.reshape(-1, RECORD))
    records = np.concatenate(raw)[:limit]
    y = records[:, 0].astype(np.int32)
    if y.max(initial=0) > 9:
        raise ConfigError(f"CIFAR-10 labels must be 0..9, found {int(y.max())} in {path}")
    x = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    x = (x - MEAN[None, :, None, None]) / STD[None, :, None, None]
    return ArrayData(np.ascontiguousarray(x, np.float32), y, 10)


def write_cifar10(path: str, images: np.ndarray, labels: np.ndarray) -> str:
    """Write uint8 images (N, 3, 32, 32) and labels as one CIFAR-10 binary file (atomically)."""
    images = np.asarray(images, np.uint8)
    if images.shape[1:] != (3, 32, 32):
        raise ConfigError(f"CIFAR-10 images are (N, 3, 32, 32) uint8, got {images.shape}")
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    with atomic_file(path, suffix=".bin") as tmp:
        records.tofile(tmp)
    return path
