"""Datasets of the recipe: the embedded digits data, CIFAR-10 (binary) and ImageNet (class folders).

``create_dataset(config, do_train, rank, world)`` returns what the trainers consume: a native
MindSpore pipeline (``ImageFolderDataset`` / ``Cifar10Dataset``, the ModelZoo transforms) when
``data_backend`` is ``native`` (default on Ascend/GPU), else the shared NumPy loader that both
frameworks read in the same order (default on CPU, and always for digits and the torch twin).
"""
from lrd_data import ImageFolder, Loader, eval_loader, load_cifar10, load_digits


def create_dataset(config, do_train=True, rank=0, world=1):
    """Training data of process ``rank`` out of ``world`` data-parallel processes (``do_train``;
    each rank gets its slice of every global batch of ``world x batch_size``), or the evaluation
    source (every rank evaluates the whole set). No device or process group is set up here."""
    from lrd_recipe import runtime

    if not 0 <= rank < world:
        from lrd_core.errors import ConfigError
        raise ConfigError(f"rank {rank} is not in [0, world={world})")
    train, test = runtime.sources(config)
    if not do_train:
        return eval_loader(test, config.eval_batch_size)
    return runtime.train_data(config, train, rank, world)


__all__ = ["create_dataset", "load_digits", "load_cifar10", "ImageFolder", "Loader"]
