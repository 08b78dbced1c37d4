"""Dataset sinking in :func:`lrd_mindspore.train.fit` (``dataset_sink_mode`` / ``sink_size``, see
:mod:`lrd_core.precision`).

The run is cut into pieces of one freezing phase each; every piece is one ``Model.train`` call over
that phase's train cell (the network MindSpore compiles into the sink loop) with ``sink_size``, so
the device runs ``sink_size`` steps per call and the callbacks see one step end per chunk.
:class:`SinkDriver` turns each chunk end into ``sink_size`` monitor steps (time = chunk time /
``sink_size``), and runs the epoch end (evaluation, checkpoint) when a chunk closes an epoch.
"""
from __future__ import annotations

import time
from typing import List, Tuple

import mindspore as ms
from mindspore.train import Model

from lrd_core import freezing

from .data import from_loader

MODEL = Model          # the class each piece trains through


def sink_unsupported() -> str:
    """Why MindSpore cannot sink in the current context ("" when it can)."""
    target = ms.get_context("device_target")
    if target not in ("Ascend", "GPU"):
        return (f"dataset_sink_mode: MindSpore sinks only on Ascend / GPU, not on {target} (Model.train runs "
                f"the steps one by one there); training step by step, same results")
    if ms.get_context("mode") != ms.GRAPH_MODE:
        return ("dataset_sink_mode: MindSpore sinks only in GRAPH mode (ms.set_context(mode=ms.GRAPH_MODE)); "
                "training step by step in PyNative mode, same results")
    return ""


def pieces(start: int, total: int, sink: int, freeze, steps_per_epoch: int) -> List[Tuple[int, int, int]]:
    """``[(first step, end step, phase)]`` covering ``start..total``: one freezing phase each, cut at
    multiples of ``sink`` (a resumed run not on a chunk end first runs up to the next one)."""
    out: List[Tuple[int, int, int]] = []
    a = start
    while a < total:
        b = min(total, (a // sink + 1) * sink)
        phase = freezing.phase_index(freeze, a // steps_per_epoch, a)
        if out and out[-1][2] == phase and out[-1][0] % sink == 0:          # extend an aligned piece
            out[-1] = (out[-1][0], b, phase)
        else:
            out.append((a, b, phase))
        a = b
    return out


def piece_data(data, native: bool, loader, a: int, b: int, steps_per_epoch: int):
    """The dataset of steps ``a..b``: the Loader's batches of those global steps, or the native
    dataset (whole epochs from an epoch start; otherwise skip/take within the epoch)."""
    if not native:
        return from_loader(loader, a, b - a)
    if a % steps_per_epoch == 0 and (b - a) % steps_per_epoch == 0:
        return data
    return data.skip(a % steps_per_epoch).take(b - a)


def _by_epoch(cuts, steps_per_epoch: int, native: bool):
    """Native datasets: pieces that are not whole epochs are cut at epoch ends (skip/take per epoch)."""
    for a, b, phase in cuts:
        if not native or (a % steps_per_epoch == 0 and (b - a) % steps_per_epoch == 0):
            yield a, b, phase
            continue
        while a < b:
            end = min(b, (a // steps_per_epoch + 1) * steps_per_epoch)
            yield a, end, phase
            a = end


def train_sunk(run: dict, data, native: bool, loader, sink: int, callbacks) -> None:
    """Train the rest of the run of :func:`lrd_mindspore.train.fit` through sinking."""
    state, spe = run["state"], run["state"].steps_per_epoch
    models = {}
    for a, b, phase in _by_epoch(pieces(state.global_step, state.total_steps, sink, run["freeze"], spe), spe, native):
        cell = run["steps"].get(freezing.frozen_parameters(run["plan"], run["freeze"], phase))
        if run.get("phase") != phase:
            run["phase"] = phase
            run["monitor"].on_phase(phase)
        model = models.setdefault(id(cell), MODEL(cell))
        chunk = sink if (b - a) % sink == 0 and a % sink == 0 else b - a
        model.train((b - a) // chunk, piece_data(data, native, loader, a, b, spe), callbacks=list(callbacks),
                    dataset_sink_mode=True, sink_size=chunk if chunk < b - a else -1)


def sink_driver(base):
    """The chunk-level driver class built on ``lrd_mindspore.train._Driver`` (``base``)."""

    class SinkDriver(base):
        """One step end per sunk chunk: advance the run by the chunk's steps, then checkpoint / close
        the epoch as the step-by-step driver does (MindSpore's per-chunk "epoch ends" are ignored)."""

        def __init__(self, run: dict, images: int):
            super().__init__(run)
            self.images, self.seen = int(images), 0

        def on_train_begin(self, run_context):
            self.seen = int(run_context.original_args().cur_step_num)

        def on_train_step_begin(self, run_context):
            self.t0 = time.perf_counter()

        def on_train_step_end(self, run_context):
            r, state = self.run, self.run["state"]
            p = run_context.original_args()
            n, self.seen = int(p.cur_step_num) - self.seen, int(p.cur_step_num)
            seconds = (time.perf_counter() - self.t0) / max(n, 1)
            loss, correct = (float(t.asnumpy()) for t in p.net_outputs)
            for _ in range(n):
                r["monitor"].on_step(loss, correct, self.images, seconds)
            for cb in r["on_step"]:
                cb(state)
            every = r["save_every_steps"]
            if r["out_dir"] and r["main"] and every and state.global_step % every == 0 and state.step_in_epoch:
                from .train import save_training_checkpoint
                save_training_checkpoint(r["out_dir"], r["net"], r["steps"], state, r["plan"], r["keep"])
            if state.step_in_epoch == 0:
                base.on_train_epoch_end(self, run_context)

        def on_train_epoch_end(self, run_context):
            """MindSpore's epoch here is one chunk; the run's epoch ends in :meth:`on_train_step_end`."""

    return SinkDriver
