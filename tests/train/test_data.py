"""Datasets: the shared loader (order, sharding, resume), CIFAR-10 binary and ImageNet folders,
and MindSpore's native readers on the same generated files."""
import numpy as np
import pytest

from lrd_data import ImageFolder, Loader, load_cifar10, load_digits, write_cifar10, write_folder
from lrd_core.errors import ConfigError
from lrd_core.schedule import epoch_schedule


def test_loader_order_sharding_and_resume():
    train, _ = load_digits(size=8)
    one = Loader(train, 32, seed=5)
    ranks = [Loader(train, 16, seed=5, rank=r, world=2) for r in range(2)]
    assert one.steps_per_epoch == ranks[0].steps_per_epoch == len(train) // 32
    for epoch in (0, 3):
        full = list(one.epoch_batches(epoch))
        parts = [list(r.epoch_batches(epoch)) for r in ranks]
        for step, (x, y) in enumerate(full):
            np.testing.assert_array_equal(np.concatenate([parts[0][step][1], parts[1][step][1]]), y)
            np.testing.assert_array_equal(np.concatenate([parts[0][step][0], parts[1][step][0]]), x)
        tail = list(one.epoch_batches(epoch, start=7))
        np.testing.assert_array_equal(tail[0][1], full[7][1])
        assert len(tail) == one.steps_per_epoch - 7
    assert not np.array_equal(one.batch(0, 0)[1], one.batch(1, 0)[1])          # reshuffled per epoch
    with pytest.raises(ConfigError, match="no full batch"):
        Loader(train.take(10), 16)


def test_cifar10_binary_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 3, 32, 32)).astype(np.uint8)
    labels = np.arange(12) % 10
    write_cifar10(str(tmp_path / "data_batch_1.bin"), imgs[:8], labels[:8])
    write_cifar10(str(tmp_path / "test_batch.bin"), imgs[8:], labels[8:])
    train, test = load_cifar10(str(tmp_path)), load_cifar10(str(tmp_path), train=False)
    assert train.y.tolist() == labels[:8].tolist() and test.y.tolist() == labels[8:].tolist()
    np.testing.assert_allclose(train.x[3, 1] * 0.2435 + 0.4822, imgs[3, 1] / 255.0, atol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no CIFAR-10 training files"):
        load_cifar10(str(tmp_path / "empty"))


def test_image_folder(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (6, 20, 28, 3)).astype(np.uint8)
    write_folder(str(tmp_path), imgs, np.array([2, 0, 1, 2, 0, 1]), classes=["cat", "dog", "eel"])
    val = ImageFolder(str(tmp_path), image_size=16, train=False)
    assert val.classes == ["cat", "dog", "eel"] and val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    x, y = val.get([0, 5])
    assert x.shape == (2, 3, 16, 16) and y.tolist() == [0, 2]
    a = ImageFolder(str(tmp_path), 16, train=True).get([1, 2], np.random.default_rng(3))[0]
    b = ImageFolder(str(tmp_path), 16, train=True).get([1, 2], np.random.default_rng(3))[0]
    np.testing.assert_array_equal(a, b)                                        # augmentation is seeded


def test_mindspore_native_readers_match_the_numpy_readers(lrd_mindspore, tmp_path):
    from lrd_mindspore import data as D

    rng = np.random.default_rng(2)
    n = 10000                                                  # MindSpore reads whole 10,000-image files
    write_cifar10(str(tmp_path / "test_batch.bin"), rng.integers(0, 256, (n, 3, 32, 32)), rng.integers(0, 10, n))
    x, y = D.arrays_of(D.cifar10(str(tmp_path), 500, train=False))
    ref = load_cifar10(str(tmp_path), train=False)
    assert y.tolist() == ref.y.tolist()
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    folder = tmp_path / "img"
    write_folder(str(folder), rng.integers(0, 256, (6, 40, 40, 3)).astype(np.uint8), np.array([0, 1, 2, 0, 1, 2]))
    train = D.imagenet(str(folder), 3, train=True, image_size=16, workers=1)
    assert train.get_dataset_size() == 2
    x, y = D.arrays_of(train)
    assert x.shape == (6, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_extra_lr_schedules():
    steps = epoch_schedule("steps", 10, 1, 0.1)
    np.testing.assert_allclose(steps, [0.1] * 3 + [0.01] * 3 + [0.001] * 2 + [0.0001] * 2, rtol=1e-6)
    poly = epoch_schedule("poly", 4, 1, 1.0, lr_end=0.0)
    np.testing.assert_allclose(poly, [1.0, 0.5625, 0.25, 0.0625], rtol=1e-6)
    with pytest.raises(ConfigError, match="lr_max > 0"):
        epoch_schedule("linear", 2, 3, 0.0)
