"""Data-parallel training for real on CPU: torch DDP (2 gloo processes, from mp.spawn and from torchrun)
and MindSpore msrun (2 workers).

Both ranks must end with identical weights, equal to one process trained on the full batch
(gradients averaged), with sequential freezing switching the trainable set every 1 (torch) or 2
(MindSpore: one compile per phase) steps.
"""
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

from lrd_core.freezing import frozen_parameters
from lrd_data import Loader

from .helpers import compressed_tiny, params, tiny_data, train_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(fw, every):
    """(initial, trained) parameters of one process on the full batch of 16."""
    from .ddp_worker import train_lr

    model, plan = compressed_tiny(fw, bn=False)
    initial = params(fw, model)
    freeze = {"policy": "sequential", "every": every, "unit": "step"}
    train_module(fw).fit(model, Loader(tiny_data(64), 16, seed=1), train_lr(), 1, plan=plan, freeze=freeze,
                         weight_decay=1e-3, log=None)
    frozen_always = frozenset.intersection(*(frozen_parameters(plan, freeze, k) for k in range(4 // every)))
    return initial, params(fw, model), set(initial) - frozen_always


def _compare(ranks, initial, single, trained):
    assert int(ranks[0]["steps"]) == int(ranks[1]["steps"]) == 4
    for k, ref in single.items():
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k], err_msg=k)
        np.testing.assert_allclose(ranks[0][k], ref, rtol=1e-5, atol=1e-6, err_msg=k)
    assert {k for k in single if not np.array_equal(ranks[0][k], initial[k])} == trained


def test_torch_ddp_two_processes_equal_one_process_on_the_full_batch(lrd_torch, tmp_path):
    import torch.multiprocessing as mp

    from .ddp_worker import run

    mp.spawn(run, args=(2, _port(), str(tmp_path), 1), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    _compare(ranks, *_single(lrd_torch, every=1))


def test_torchrun_two_processes_equal_one_process_on_the_full_batch(lrd_torch, tmp_path):
    """What ``FRAMEWORK=torch scripts/run_distribute_train.sh`` does: torchrun starts the ranks."""
    bin_dir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bin_dir, "torchrun"), "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_port()), "-m", "tests.train.ddp_worker", str(tmp_path), "1"]
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    _compare(ranks, *_single(lrd_torch, every=1))


MS_WORKER = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {root!r})
    import lrd_mindspore, numpy as np, mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    from lrd_mindspore import distributed as D
    from lrd_mindspore.train import fit
    from lrd_data import Loader
    from tests.train.helpers import compressed_tiny, params, tiny_data
    from tests.train.ddp_worker import train_lr
    ctx = D.init(required=True)
    model, plan = compressed_tiny(lrd_mindspore, bn=False)
    r = fit(model, Loader(tiny_data(64), 8, seed=1, rank=ctx.rank, world=ctx.world), train_lr(), 1, plan=plan,
            freeze={{"policy": "sequential", "every": 2, "unit": "step"}}, weight_decay=1e-3, log=None, dist=ctx)
    np.savez(os.path.join({out!r}, "rank%d.npz" % ctx.rank), steps=r["global_step"], **params(lrd_mindspore, model))
''')


def test_mindspore_msrun_two_workers_equal_one_process_on_the_full_batch(lrd_mindspore, tmp_path):
    import mindspore as ms

    script = tmp_path / "worker.py"
    script.write_text(MS_WORKER.format(root=ROOT, out=str(tmp_path)))
    msrun = os.path.join(os.path.dirname(sys.executable), "msrun")
    cmd = [msrun, "--worker_num", "2", "--local_worker_num", "2", "--master_port", str(_port()),
           "--log_dir", str(tmp_path / "logs"), "--join", "True", str(script)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GLOG_v": "3",   # msrun starts workers with `python` from PATH
                               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")})
    logs = "".join(p.read_text()[-2000:] for p in sorted((tmp_path / "logs").glob("worker_*.log")))
    assert proc.returncode == 0, logs
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        reference = _single(lrd_mindspore, every=2)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    _compare(ranks, *reference)
