"""One rank of the torch DDP test (spawned by test_distributed.py)."""
import os

import numpy as np


def run(rank: int, world: int, port: int, out: str, every: int = 1) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    import torch
    torch.set_num_threads(1)
    import lrd_torch
    from lrd_torch import distributed as D
    from lrd_torch.train import fit

    from .helpers import compressed_tiny, params, tiny_data
    from lrd_data import Loader

    ctx = D.init("gloo")
    model, plan = compressed_tiny(lrd_torch, bn=False)
    result = fit(model, Loader(tiny_data(64), 8, seed=1, rank=ctx.rank, world=ctx.world), train_lr(), 1,
                 plan=plan, freeze={"policy": "sequential", "every": every, "unit": "step"}, weight_decay=1e-3,
                 log=None, dist=ctx)
    np.savez(os.path.join(out, f"rank{rank}.npz"), steps=result["global_step"], **params(lrd_torch, model))
    D.shutdown()


def train_lr():
    return np.array([0.2, 0.1, 0.1, 0.05], np.float32)
