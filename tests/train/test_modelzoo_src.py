"""modelzoo/resnet/src: the recipe's dataset factory slices every global batch by rank."""
import importlib.util
import os

import numpy as np
import pytest

from lrd_cli import recipe
from lrd_core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dataset_module():
    path = os.path.join(ROOT, "modelzoo", "resnet", "src", "dataset.py")
    spec = importlib.util.spec_from_file_location("zoo_resnet_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_create_dataset_gives_each_rank_its_slice_of_the_global_batch():
    create = _dataset_module().create_dataset

    def cfg(batch):
        return recipe.namespace(framework="torch", dataset="digits", image_size=8, batch_size=batch, train_limit=96,
                                eval_limit=40, eval_batch_size=16, seed=4)

    whole = create(cfg(32), True)
    ranks = [create(cfg(16), True, rank=r, world=2) for r in range(2)]
    assert whole.steps_per_epoch == ranks[0].steps_per_epoch == ranks[1].steps_per_epoch == 3
    for epoch in (0, 1):
        for (x, y), (x0, y0), (x1, y1) in zip(whole.epoch_batches(epoch), ranks[0].epoch_batches(epoch),
                                              ranks[1].epoch_batches(epoch)):
            assert len(y0) == len(y1) == 16
            np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
            np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
    seen = np.concatenate([y for _, y in create(cfg(16), False).epoch_batches(0)])
    assert len(seen) == 40                                           # evaluation: the whole set on every rank
    with pytest.raises(ConfigError, match=r"rank 2 is not in \[0, world=2\)"):
        create(cfg(16), True, rank=2, world=2)
