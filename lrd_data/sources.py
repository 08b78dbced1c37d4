"""Calibration and evaluation data named on the command line (``--calibration``, ``--evaluation``).

``digits``
    The embedded digits: the training split for calibration, the test split for evaluation.
a CIFAR-10 binary folder (``data_batch_*.bin``)
    Training batches for calibration, ``test_batch.bin`` for evaluation.
a dataset folder of class sub-folders (``root/<class>/<image>``)
    Decoded lazily with the evaluation transform (resize + centre crop), labels from the folders.
an image folder (images directly inside)
    Decoded the same way, no labels.
a ``.npz`` file
    Array ``x`` (or ``images``, else the first array) of float32 inputs (N, C, H, W) and optional
    integer labels ``y`` (or ``labels``).

Folders are read in a fixed shuffled order (seed 0), so the first N batches are a fair sample.
"""
from __future__ import annotations

import glob
import os
import zipfile
from typing import Optional, Tuple

import numpy as np

from lrd_core.errors import CalibrationError

from .arrays import ArrayData
from .imagenet import EXTENSIONS, ImageFolder
from .loader import Loader


class FlatFolder(ImageFolder):
    """Images directly inside ``root`` (no class folders, no labels: label -1), evaluation transform."""

    def __init__(self, root: str, image_size: int = 224, workers: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        self.files = sorted(f for f in glob.glob(os.path.join(root, "*")) if f.endswith(EXTENSIONS))
        if not self.files:
            raise CalibrationError(f"no images ({', '.join(EXTENSIONS[:4])}, ...) directly under {root}")
        self.labels = np.full(len(self.files), -1, np.int32)
        self.classes, self.num_classes = [], 0
        self.image_size, self.train, self.seed = int(image_size), False, 0
        self._pool = ThreadPoolExecutor(max(1, workers))


def _npz(path: str) -> ArrayData:
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if not names:
                raise CalibrationError(f"{path} holds no array")
            key = next((k for k in ("x", "images", "inputs") if k in names), names[0])
            x = data[key]
            y = next((data[k] for k in ("y", "labels", "targets") if k in names and k != key), None)
    except CalibrationError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:   # truncated, empty, pickled
        raise CalibrationError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if x.dtype.kind != "f":
        raise CalibrationError(f"{path}: array {key!r} has dtype {x.dtype}; store float32 inputs (N, C, H, W) "
                               f"preprocessed like the training inputs")
    if y is not None and (len(y) != len(x) or np.asarray(y).dtype.kind not in "iu"):
        y = None
    labels = np.asarray(y, np.int32) if y is not None else np.full(len(x), -1, np.int32)
    return ArrayData(x, labels, int(labels.max()) + 1 if y is not None and len(labels) else 0)


def _has_labels(source) -> bool:
    labels = getattr(source, "labels", getattr(source, "y", None))
    return labels is not None and len(labels) > 0 and int(np.min(labels)) >= 0


def open_source(spec: str, image_size: int, split: str = "calibration", seed: int = 0):
    """``(source, labelled)``: the data ``spec`` names (see the module docstring), as an ArrayData or
    a lazily decoded folder source; ``split`` is ``calibration`` or ``evaluation``.

    Raises
    ------
    CalibrationError
        ``spec`` is neither ``digits`` nor an existing folder or ``.npz`` file.
    """
    train = split == "calibration"
    if spec == "digits":
        from .digits import load_digits
        source = load_digits(size=image_size, seed=seed)[0 if train else 1]
    elif os.path.isfile(spec) and spec.endswith(".npz"):
        source = _npz(spec)
    elif os.path.isdir(spec) and glob.glob(os.path.join(spec, "data_batch_*.bin")):
        from .cifar10 import load_cifar10
        source = load_cifar10(spec, train)
    elif os.path.isdir(spec):
        subdirs = [d for d in os.listdir(spec) if os.path.isdir(os.path.join(spec, d))]
        source = ImageFolder(spec, image_size, train=False) if subdirs else FlatFolder(spec, image_size)
    else:
        raise CalibrationError(f"--{split} {spec!r} is neither 'digits', a folder of images / class folders / "
                               f"CIFAR-10 batches, nor a .npz file")
    return source, _has_labels(source)


def batches(source, batch_size: int = 32, limit: Optional[int] = None, seed: int = 0):
    """The inputs of ``source`` in a fixed shuffled order, ``batch_size`` at a time (at most ``limit``
    batches; folders decode only those)."""
    loader = Loader(source, batch_size, shuffle=True, seed=seed, drop_last=False)
    for k, (x, _y) in enumerate(loader.epoch_batches(0)):
        if limit is not None and k >= limit:
            return
        yield x


def take(source, n: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """The first ``n`` samples of the shuffled order as ``(x, y)`` arrays (decoded)."""
    loader = Loader(source, min(n, len(source)), shuffle=True, seed=seed, drop_last=False)
    return next(iter(loader.epoch_batches(0)))
