"""One rank of the torch DDP tests: spawned by test_distributed.py (``run``), or started by
``torchrun ... -m tests.train.ddp_worker OUT_DIR EVERY`` (the environment names the rank)."""
import os
import sys

import numpy as np


def run(rank: int, world: int, port: int, out: str, every: int = 1) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    train(out, every)


def train(out: str, every: int = 1) -> None:
    """Train the tiny compressed model on this rank's slice of the data; save its parameters."""
    import torch
    torch.set_num_threads(1)
    import lrd_torch
    from lrd_torch import distributed as D
    from lrd_torch.train import fit

    from .helpers import compressed_tiny, params, tiny_data
    from lrd_data import Loader

    ctx = D.init("gloo")
    assert ctx.world == int(os.environ["WORLD_SIZE"]) > 1, "not started as part of a process group"
    model, plan = compressed_tiny(lrd_torch, bn=False)
    result = fit(model, Loader(tiny_data(64), 8, seed=1, rank=ctx.rank, world=ctx.world), train_lr(), 1,
                 plan=plan, freeze={"policy": "sequential", "every": every, "unit": "step"}, weight_decay=1e-3,
                 log=None, dist=ctx)
    np.savez(os.path.join(out, f"rank{ctx.rank}.npz"), steps=result["global_step"], **params(lrd_torch, model))
    D.shutdown()


def train_lr():
    return np.array([0.2, 0.1, 0.1, 0.05], np.float32)


if __name__ == "__main__":
    train(sys.argv[1], int(sys.argv[2]))
