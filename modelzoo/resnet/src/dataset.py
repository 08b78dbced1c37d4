"""Datasets of the recipe: the embedded digits data, CIFAR-10 (binary) and ImageNet (class folders).

``create_dataset(config, do_train)`` returns what the trainers consume: a native MindSpore pipeline
(``ImageFolderDataset`` / ``Cifar10Dataset``, the ModelZoo transforms) when ``data_backend`` is
``native`` (default on Ascend/GPU), else the shared NumPy loader that both frameworks read in the
same order (default on CPU, and always for digits and the torch twin).
"""
from lrd_data import ImageFolder, Loader, eval_loader, load_cifar10, load_digits


def create_dataset(config, do_train=True, rank=0, world=1):
    """Training pipeline (``do_train``) or evaluation source for a recipe config."""
    from lrd_cli.runtime import Runtime

    rt = Runtime(config)
    train, test = rt.sources()
    if not do_train:
        return eval_loader(test, config.eval_batch_size)
    return rt.train_data(train)


__all__ = ["create_dataset", "load_digits", "load_cifar10", "ImageFolder", "Loader"]
