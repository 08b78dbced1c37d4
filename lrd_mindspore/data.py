"""MindSpore dataset pipelines: the shared NumPy loaders, and native ImageNet / CIFAR-10 readers.

:func:`from_loader` feeds a :class:`lrd_data.Loader` into ``ms.train.Model`` through a
``GeneratorDataset`` whose source draws batch ``g`` of the run on its ``g``-th call (one worker,
in order), so the data order is the loader's (fixed by seed and epoch) and a resumed run continues
with exactly the batches an uninterrupted one would have seen. :func:`imagenet` and
:func:`cifar10` are the ModelZoo-style native pipelines (``ImageFolderDataset`` /
``Cifar10Dataset`` with C++ transforms) for full-size data on Ascend/GPU; their shuffle order is
MindSpore's, so a run resumed mid-epoch restarts that epoch's order (LR position, optimizer state
and plan are still exact).
"""
from __future__ import annotations

import numpy as np
import mindspore as ms
import mindspore.dataset as ds

from lrd_core.errors import ConfigError

IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
IMAGENET_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
CIFAR_MEAN = [0.4914 * 255, 0.4822 * 255, 0.4465 * 255]
CIFAR_STD = [0.2470 * 255, 0.2435 * 255, 0.2616 * 255]


class _RunBatches:
    """Random-access facade whose n-th call returns the run's batch ``start + n``."""

    def __init__(self, loader, start: int, length: int):
        self.loader, self.next, self.length = loader, int(start), int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, _):
        spe = self.loader.steps_per_epoch
        g = self.next
        self.next += 1
        return self.loader.batch(g // spe, g % spe)


def from_loader(loader, start_step: int = 0, length: int = None) -> ds.GeneratorDataset:
    """A dataset of ``length`` steps (default: one epoch) starting at global step ``start_step``."""
    length = loader.steps_per_epoch if length is None else length
    return ds.GeneratorDataset(_RunBatches(loader, start_step, length), ["image", "label"], shuffle=False,
                               num_parallel_workers=1, python_multiprocessing=False)


def _workers(n: int) -> int:
    import os
    return max(1, min(int(n), os.cpu_count() or 1))


def _shard(rank: int, world: int) -> dict:
    return {"num_shards": world, "shard_id": rank} if world > 1 else {}


def imagenet(path: str, batch_size: int, train: bool = True, image_size: int = 224, rank: int = 0, world: int = 1,
             workers: int = 8, seed: int = 1) -> ds.Dataset:
    """ModelZoo-style ``ImageFolderDataset`` pipeline (random resized crop + flip / resize + centre crop)."""
    import mindspore.dataset.vision as V
    import mindspore.dataset.transforms as T
    import os

    if not os.path.isdir(path):
        raise ConfigError(f"ImageNet folder {path} does not exist (expected <path>/<class>/<image>)")
    ds.config.set_seed(seed)
    workers = _workers(workers)
    data = ds.ImageFolderDataset(path, num_parallel_workers=workers, shuffle=train, decode=False, **_shard(rank, world))
    if train:
        ops = [V.RandomCropDecodeResize(image_size, scale=(0.08, 1.0), ratio=(0.75, 1.333)),
               V.RandomHorizontalFlip(prob=0.5)]
    else:
        ops = [V.Decode(), V.Resize(int(round(image_size / 0.875))), V.CenterCrop(image_size)]
    ops += [V.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), V.HWC2CHW()]
    data = data.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    data = data.map(operations=T.TypeCast(ms.int32), input_columns="label", num_parallel_workers=workers)
    return data.batch(batch_size, drop_remainder=train)


def cifar10(path: str, batch_size: int, train: bool = True, rank: int = 0, world: int = 1, workers: int = 4,
            seed: int = 1) -> ds.Dataset:
    """ModelZoo-style ``Cifar10Dataset`` pipeline (pad-4 random crop + flip when training)."""
    import mindspore.dataset.vision as V
    import mindspore.dataset.transforms as T
    import os

    root = os.path.join(path, "cifar-10-batches-bin") if os.path.isdir(os.path.join(path, "cifar-10-batches-bin")) else path
    ds.config.set_seed(seed)
    workers = _workers(workers)
    data = ds.Cifar10Dataset(root, usage="train" if train else "test", shuffle=train,
                             num_parallel_workers=workers, **_shard(rank, world))
    ops = [V.RandomCrop((32, 32), (4, 4, 4, 4)), V.RandomHorizontalFlip(prob=0.5)] if train else []
    ops += [V.Rescale(1.0, 0.0), V.Normalize(mean=CIFAR_MEAN, std=CIFAR_STD), V.HWC2CHW()]
    data = data.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    data = data.map(operations=T.TypeCast(ms.int32), input_columns="label", num_parallel_workers=workers)
    return data.batch(batch_size, drop_remainder=train)


def arrays_of(dataset: ds.Dataset):
    """All (x, y) of a (small, batched) native dataset as NumPy arrays, for evaluation."""
    xs, ys = [], []
    for x, y in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1):
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int32)
