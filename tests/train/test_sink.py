"""dataset_sink_mode / sink_size: chunked training gives the step-by-step weights (per-step LR, freezing
phases, resume), torch and MindSpore's CPU backend say in one line that they do not sink, bad combinations
give one ConfigError naming the key.

MindSpore 2.10 cannot sink on CPU (``Model.train`` falls back to step by step, ``DatasetHelper`` refuses a
CPU sink), so the sunk path runs here through :class:`DeviceSinkModel`, which stands in for ``Model`` on an
Ascend / GPU device in GRAPH mode as ``Model._train_dataset_sink_process`` does it: per call ``epoch``
chunks of ``sink_size`` steps, one step begin / end and one "epoch" end per chunk, ``cur_step_num``
advanced by ``sink_size``, no per-step dataset element on the host, the dataset repeated as often as the
chunks need and tied to one ``Model``.
"""
import os

import numpy as np
import pytest

from lrd_core.errors import ConfigError
from lrd_core.freezing import FreezeConfig
from lrd_core.precision import PrecisionConfig, sink_steps
from lrd_core.trainstate import list_checkpoints
from lrd_data import Loader

from .helpers import compressed_tiny, graph_mode, params, tiny_data, tiny_model, train_module

SINK = {"dataset_sink_mode": True, "sink_size": 2}


class DeviceSinkModel:
    """``ms.train.Model`` on a device that sinks (see the module docstring); records the chunk sizes."""

    chunks = []
    networks = set()

    def __init__(self, network):
        self.network = network
        DeviceSinkModel.networks.add(id(network))

    def train(self, epoch, dataset, callbacks=(), dataset_sink_mode=True, sink_size=-1, initial_epoch=0):
        from mindspore.train.callback import RunContext, _InternalCallbackParam

        assert dataset_sink_mode
        if getattr(dataset, "__model_hash__", hash(self)) != hash(self):     # as Model._check_reuse_dataset
            raise RuntimeError("The dataset object had been used in other model by model.train(...)")
        dataset.__model_hash__ = hash(self)
        sink = dataset.get_dataset_size() if sink_size == -1 else sink_size
        batches = (item for _ in range(epoch * sink) for item in dataset.create_tuple_iterator(num_epochs=1))
        cb = _InternalCallbackParam()
        cb.cur_step_num, cb.dataset_sink_mode, cb.sink_size, cb.train_dataset_element = 0, True, sink, ()
        run = RunContext(cb)
        for c in callbacks:
            c.on_train_begin(run)
        for e in range(initial_epoch, epoch):
            cb.cur_epoch_num = e + 1
            for c in callbacks:
                c.on_train_epoch_begin(run)
            cb.cur_step_num += sink
            for c in callbacks:
                c.on_train_step_begin(run)
            for _ in range(sink):                      # the device loop
                cb.net_outputs = self.network(*next(batches))
            DeviceSinkModel.chunks.append(sink)
            for c in callbacks:
                c.on_train_step_end(run)
            for c in callbacks:
                c.on_train_epoch_end(run)
        for c in callbacks:
            c.on_train_end(run)


@pytest.fixture
def device_sink(lrd_mindspore, monkeypatch):
    from lrd_mindspore import sink

    monkeypatch.setattr(sink, "sink_unsupported", lambda: "")
    monkeypatch.setattr(sink, "MODEL", DeviceSinkModel)
    DeviceSinkModel.chunks, DeviceSinkModel.networks = [], set()
    return DeviceSinkModel


class Killed(Exception):
    """Stands in for the process being killed."""


def _fit(fw, precision=None, epochs=2, compressed=False, freeze=None, lines=None, **kw):
    model, plan = compressed_tiny(fw) if compressed else (tiny_model(fw, bn=True, seed=0), None)
    data = Loader(tiny_data(64), 16, seed=3)                                # 4 steps per epoch
    lr = np.linspace(0.1, 0.01, 4 * epochs).astype(np.float32)              # every step has its own LR
    log = lines.append if lines is not None else None
    result = train_module(fw).fit(model, data, lr, epochs, plan=plan, freeze=freeze, log=log, precision=precision,
                                  eval_data=tiny_data(32, seed=9), **kw)
    return model, result


def _step_lines(lines):
    """The step log lines without their timings (step, epoch, loss, accuracy, LR)."""
    return [line.split("  lr ")[0] + " lr " + line.split("  lr ")[1].split()[0] for line in lines
            if line.startswith("  step ")]


def _same_weights(fw, a, b, rtol=1e-5):
    pa, pb = params(fw, a), params(fw, b)
    for k in pa:
        np.testing.assert_allclose(pb[k], pa[k], rtol=rtol, atol=1e-7, err_msg=k)


def test_sunk_chunks_follow_the_per_step_lr(device_sink, lrd_mindspore):
    """8 steps in 4 chunks of 2: the optimizer indexes the LR array itself, so the LR advances inside a
    chunk; weights, epoch records (LR, eval accuracy) and counters match the step-by-step run."""
    ref_lines, lines = [], []
    ref_model, ref = _fit(lrd_mindspore, lines=ref_lines, log_every=2)
    model, res = _fit(lrd_mindspore, SINK, lines=lines, log_every=2)
    assert device_sink.chunks == [2, 2, 2, 2]
    assert _step_lines(lines) == _step_lines(ref_lines) and len(_step_lines(lines)) == 4
    _same_weights(lrd_mindspore, ref_model, model)
    assert res["global_step"] == 8 and [h["global_step"] for h in res["history"]] == [4, 8]
    assert [h["lr"] for h in res["history"]] == [h["lr"] for h in ref["history"]]
    assert [h["eval_accuracy"] for h in res["history"]] == [h["eval_accuracy"] for h in ref["history"]]
    assert res["timing"]["steps"] == 7            # one monitor step per trained step (chunk time / 2)


def test_sunk_dynamic_loss_scaling(device_sink, lrd_mindspore):
    """The loss-scaled train step (lrd_mindspore.precision) runs inside the sunk chunks unchanged."""
    scaled = {"loss_scale_type": "dynamic", "loss_scale": 256.0, "scale_window": 2}
    ref_model, _ = _fit(lrd_mindspore, scaled, epochs=1)
    model, _ = _fit(lrd_mindspore, {**scaled, **SINK}, epochs=1)
    assert device_sink.chunks == [2, 2]
    _same_weights(lrd_mindspore, ref_model, model)


def test_whole_epoch_sinks_in_graph_mode(device_sink, lrd_mindspore):
    """sink_size -1: one chunk per epoch (ModelZoo's sink_size = dataset size), compiled train cells."""
    with graph_mode(lrd_mindspore):
        ref_model, _ = _fit(lrd_mindspore)
        model, res = _fit(lrd_mindspore, {"dataset_sink_mode": True, "sink_size": -1})
    assert device_sink.chunks == [4, 4] and res["global_step"] == 8
    _same_weights(lrd_mindspore, ref_model, model)


def test_sunk_sequential_freezing_across_phase_boundaries(device_sink, lrd_mindspore):
    """Freezing phases of 2 steps: one Model.train per phase over that phase's train cell."""
    freeze = FreezeConfig("sequential", every=2, unit="step")
    ref_model, ref = _fit(lrd_mindspore, epochs=1, compressed=True, freeze=freeze)
    model, res = _fit(lrd_mindspore, SINK, epochs=1, compressed=True, freeze=freeze)
    assert device_sink.chunks == [2, 2] and len(device_sink.networks) == res["compiled_phases"] > 1
    assert res["compiled_phases"] == ref["compiled_phases"] and res["global_step"] == 4
    _same_weights(lrd_mindspore, ref_model, model)


def test_sunk_run_resumes_from_a_chunk_end(device_sink, lrd_mindspore, tmp_path):
    """Killed at the end of step 8 of 8 before its checkpoint: checkpoints only at chunk ends (2, 4, 6); the
    resumed run continues at step 6 mid-epoch and ends on the uninterrupted run's weights."""
    freeze = FreezeConfig("sequential", every=2, unit="step")
    kw = dict(epochs=2, compressed=True, freeze=freeze, save_every_steps=2, keep=3)
    ref_model, _ = _fit(lrd_mindspore, SINK, out_dir=str(tmp_path / "ref"), **kw)

    def kill(state):
        assert state.global_step % 2 == 0                      # on_step callbacks run at chunk ends
        if state.global_step == 8:
            raise Killed()

    out = str(tmp_path / "run")
    with pytest.raises(Killed):
        _fit(lrd_mindspore, SINK, out_dir=out, on_step=[kill], **kw)
    assert [os.path.basename(p) for p in list_checkpoints(out)] == ["ckpt-000000002", "ckpt-000000004",
                                                                    "ckpt-000000006"]
    model, res = _fit(lrd_mindspore, SINK, out_dir=out, **kw)
    assert res["resumed_from"] == 6 and res["global_step"] == 8
    _same_weights(lrd_mindspore, ref_model, model)


def test_sunk_native_dataset_resumes_mid_epoch(device_sink, lrd_mindspore, tmp_path):
    """A native MindSpore pipeline: whole epochs go to MindSpore as they are, a resumed epoch's rest is
    skipped into; weights match the step-by-step run."""
    import mindspore.dataset as ds

    data = tiny_data(64)

    def native():
        return ds.NumpySlicesDataset({"image": data.x, "label": data.y}, shuffle=False).batch(16, drop_remainder=True)

    def run(precision, out=None, on_step=()):
        model = tiny_model(lrd_mindspore, bn=True, seed=0)
        res = train_module(lrd_mindspore).fit(model, native(), np.linspace(0.1, 0.01, 8).astype(np.float32), 2,
                                              log=None, precision=precision, out_dir=out, save_every_steps=2,
                                              on_step=list(on_step))
        return model, res

    ref_model, _ = run(None)

    def kill(state):
        if state.global_step == 8:
            raise Killed()

    with pytest.raises(Killed):
        run(SINK, str(tmp_path / "run"), [kill])
    model, res = run(SINK, str(tmp_path / "run"))
    assert res["resumed_from"] == 6 and res["global_step"] == 8 and device_sink.chunks[-1] == 2
    _same_weights(lrd_mindspore, ref_model, model)
    with pytest.raises(ConfigError, match="dataset_sink_mode with freeze sequential needs lrd's Loader data"):
        model, plan = compressed_tiny(lrd_mindspore)
        train_module(lrd_mindspore).fit(model, native(), np.full(8, 0.05, np.float32), 2, plan=plan, log=None,
                                        freeze=FreezeConfig("sequential"), precision=SINK)


def test_pieces_cut_at_phases_and_realign_after_an_odd_resume():
    pytest.importorskip("mindspore")
    from lrd_mindspore.sink import pieces

    none, seq = FreezeConfig(), FreezeConfig("sequential", every=4, unit="step")
    assert pieces(0, 8, 2, none, 4) == [(0, 8, 0)]
    assert pieces(3, 12, 2, none, 4) == [(3, 4, 0), (4, 12, 0)]          # a step-by-step checkpoint at 3
    assert pieces(0, 12, 2, seq, 4) == [(0, 4, 0), (4, 8, 1), (8, 12, 2)]


def test_mindspore_cpu_does_not_sink_and_says_so(lrd_mindspore):
    lines = []
    ref_model, _ = _fit(lrd_mindspore, epochs=1)
    model, res = _fit(lrd_mindspore, SINK, epochs=1, lines=lines)
    assert any(line.startswith("dataset_sink_mode: MindSpore sinks only on Ascend / GPU, not on CPU")
               for line in lines), lines
    _same_weights(lrd_mindspore, ref_model, model, rtol=0)


def test_pynative_does_not_sink_message(lrd_mindspore, monkeypatch):
    import mindspore as ms

    from lrd_mindspore import sink

    real = ms.get_context
    monkeypatch.setattr(sink.ms, "get_context", lambda key: "Ascend" if key == "device_target" else real(key))
    assert real("mode") == ms.PYNATIVE_MODE
    assert sink.sink_unsupported().startswith("dataset_sink_mode: MindSpore sinks only in GRAPH mode")


def test_torch_ignores_sinking_with_one_line(lrd_torch):
    lines = []
    ref_model, _ = _fit(lrd_torch, epochs=1)
    model, _ = _fit(lrd_torch, SINK, epochs=1, lines=lines)
    assert [line for line in lines if "sink" in line] == [
        "dataset_sink_mode ignored: torch has no dataset sinking (a MindSpore Ascend / GPU setting); "
        "training step by step"]
    _same_weights(lrd_torch, ref_model, model, rtol=0)


@pytest.mark.parametrize("kw, message", [
    ({"sink_size": 3}, "sink_size 3 does not divide the 4 steps of an epoch: choose a divisor of 4 or -1"),
    ({"save_every_steps": 3}, "save_every_steps 3 is not a multiple of sink_size 2: the trainer acts only between "
                              "sunk chunks; set save_every_steps to a multiple of 2 or dataset_sink_mode false"),
    ({"log_every": 1}, "log_every 1 is not a multiple of sink_size 2"),
    ({"freeze": FreezeConfig("sequential", every=3, unit="step")},
     "freeze_every 3 is not a multiple of sink_size 2: the trainer acts only between sunk chunks; set freeze_every "
     "to a multiple of 2 or dataset_sink_mode false"),
])
def test_bad_sink_combinations(kw, message):
    cfg = PrecisionConfig(dataset_sink_mode=True, sink_size=kw.pop("sink_size", 2))
    with pytest.raises(ConfigError) as err:
        sink_steps(cfg, 4, **kw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_sink_steps_off_and_whole_epoch():
    assert sink_steps(PrecisionConfig(), 4, save_every_steps=3) == 0
    assert sink_steps(PrecisionConfig(dataset_sink_mode=True), 4, log_every=4) == 4


def test_mindspore_fit_refuses_bad_sinking_on_cpu_too(lrd_mindspore):
    """An Ascend config that cannot sink fails on a CPU try-out too, before training."""
    with pytest.raises(ConfigError, match="save_every_steps 3 is not a multiple of sink_size 2"):
        _fit(lrd_mindspore, SINK, epochs=1, save_every_steps=3)
    with pytest.raises(ConfigError, match="dataset_sink_mode with distillation"):
        _fit(lrd_mindspore, SINK, epochs=1, teacher=tiny_model(lrd_mindspore, seed=1))


def test_shipped_modelzoo_configs_sink_on_ascend_and_gpu_only():
    """ModelZoo ResNet sinks where the device can (Ascend / GPU: one sink per epoch), not on CPU."""
    import glob

    from lrd_recipe import config as recipe
    from lrd_recipe.options import precision_options

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    seen = {}
    for path in sorted(glob.glob(os.path.join(root, "modelzoo", "resnet", "config", "*.yaml"))):
        cfg = recipe.namespace(**recipe.read_yaml(path))
        p = precision_options(cfg)
        seen[os.path.basename(path)] = (cfg.device_target, p.dataset_sink_mode, p.sink_size)
    assert seen["resnet50_imagenet2012_train.yaml"] == seen["resnet50_imagenet2012_lrd.yaml"] == ("Ascend", True, -1)
    assert all(sink == (target != "CPU") for target, sink, _ in seen.values()), seen
    cfg = recipe.parse(["--dataset_sink_mode", "true", "--sink_size", "4"])
    assert precision_options(cfg) == PrecisionConfig(dataset_sink_mode=True, sink_size=4)
