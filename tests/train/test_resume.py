"""A run killed mid-epoch resumes from its newest checkpoint: same plan, optimizer state, LR position."""
import os

import numpy as np
import pytest

from lrd_core.freezing import FreezeConfig
from lrd_core.trainstate import list_checkpoints, read_state
from lrd_data import Loader

from .helpers import compressed_tiny, graph_mode, params, tiny_data, tiny_model, train_module


class Killed(Exception):
    """Stands in for the process being killed."""


def _fit(fw, out, on_step=(), resume=True):
    model, plan = compressed_tiny(fw)
    data = Loader(tiny_data(48), 16, seed=3)                       # 3 steps per epoch
    lr = np.linspace(0.1, 0.01, 9).astype(np.float32)              # every step has its own LR
    result = train_module(fw).fit(model, data, lr, 3, plan=plan, freeze=FreezeConfig("sequential", every=2, unit="step"),
                                  out_dir=out, resume=resume, save_every_steps=2, keep=3, log=None,
                                  on_step=list(on_step), eval_data=tiny_data(32, seed=9))
    return model, result


def test_resume_after_kill_continues_from_the_right_step(fw, tmp_path):
    _kill_and_resume(fw, tmp_path)


def test_mindspore_resume_in_graph_mode(lrd_mindspore, tmp_path):
    """The main path: compiled train cells per freezing phase, rebuilt by the resumed process."""
    with graph_mode(lrd_mindspore):
        _kill_and_resume(lrd_mindspore, tmp_path)


def _kill_and_resume(fw, tmp_path):
    ref_model, ref = _fit(fw, str(tmp_path / "ref"))

    def kill(state):
        if state.global_step == 5:
            raise Killed()

    out = str(tmp_path / "run")
    with pytest.raises(Killed):
        _fit(fw, out, on_step=[kill])
    # only complete checkpoints (steps 2 and 4, epoch end 3; step 5 was never saved), no temp dirs left
    names = ["ckpt-000000002", "ckpt-000000003", "ckpt-000000004"]
    assert [os.path.basename(p) for p in list_checkpoints(out)] == names
    assert sorted(os.listdir(out)) == names
    state = read_state(list_checkpoints(out)[-1])
    assert (state.global_step, state.epoch, state.step_in_epoch) == (4, 1, 1)

    model, res = _fit(fw, out)
    assert res["resumed_from"] == 4 and res["global_step"] == 9
    a, b = params(fw, ref_model), params(fw, model)
    tol = 0 if fw.FRAMEWORK == "torch" else 1e-6
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=tol, err_msg=k)
    # the epoch records after the kill (LR position, loss) match the uninterrupted run's
    assert [h["lr"] for h in res["history"]] == [h["lr"] for h in ref["history"]]
    assert res["history"][-1]["eval_accuracy"] == ref["history"][-1]["eval_accuracy"]
    np.testing.assert_allclose(res["history"][-1]["loss"], ref["history"][-1]["loss"], rtol=1e-5)


def test_resume_refuses_a_run_with_other_settings(fw, tmp_path):
    from lrd_core.errors import MismatchError

    out = str(tmp_path / "run")
    _fit(fw, out)
    model, plan = compressed_tiny(fw)
    with pytest.raises(MismatchError, match="epochs x"):
        train_module(fw).fit(model, Loader(tiny_data(48), 8, seed=3), np.full(99, 0.1, np.float32), 3, plan=plan,
                             out_dir=out, log=None)


def test_mindspore_native_dataset_trains_and_resumes(lrd_mindspore, tmp_path):
    """A native MindSpore pipeline (not the shared loader) goes through the same fit, resume included."""
    import mindspore.dataset as ds

    data = tiny_data(48)

    def native():                       # a resumed run is a new process with a new pipeline
        return ds.NumpySlicesDataset({"image": data.x, "label": data.y}, shuffle=False).batch(16, drop_remainder=True)

    model, plan = compressed_tiny(lrd_mindspore)
    out = str(tmp_path / "run")

    def kill(state):
        if state.global_step == 2:
            raise Killed()

    with pytest.raises(Killed):
        train_module(lrd_mindspore).fit(model, native(), np.full(6, 0.05, np.float32), 2, plan=plan, out_dir=out,
                                        save_every_steps=1, log=None, on_step=[kill])
    model, plan = compressed_tiny(lrd_mindspore)
    res = train_module(lrd_mindspore).fit(model, native(), np.full(6, 0.05, np.float32), 2, plan=plan, out_dir=out,
                                          log=None)
    assert res["resumed_from"] == 1 and res["global_step"] == 6 and res["steps_per_epoch"] == 3
    assert [h["epoch"] for h in res["history"]] == [1, 2]


def test_resume_refuses_a_checkpoint_of_another_plan(fw, tmp_path):
    from lrd_core.errors import MismatchError

    out = str(tmp_path / "run")
    fit = train_module(fw).fit
    model, plan = compressed_tiny(fw, ratio=1.5)
    fit(model, Loader(tiny_data(32), 16, seed=3), np.full(2, 0.05, np.float32), 1, plan=plan, out_dir=out, log=None)
    other, other_plan = compressed_tiny(fw, ratio=3.0)
    changed = [lp.name for lp in other_plan.layers if lp.ranks != plan[lp.name].ranks]
    assert changed                                                   # the two plans differ in ranks
    with pytest.raises(MismatchError, match=f"written for another plan \\(layer {changed[0]}: .* ranks .* there, "
                                            r".* in this run\); use a fresh output_path or resume: false"):
        fit(other, Loader(tiny_data(32), 16, seed=3), np.full(2, 0.05, np.float32), 1, plan=other_plan, out_dir=out,
            log=None)
    with pytest.raises(MismatchError, match="it holds a compressed net, this run trains an uncompressed one"):
        fit(tiny_model(fw), Loader(tiny_data(32), 16, seed=3), np.full(2, 0.05, np.float32), 1, out_dir=out, log=None)
    model, plan = compressed_tiny(fw, ratio=1.5)                     # the same plan resumes (here: finished run)
    res = fit(model, Loader(tiny_data(32), 16, seed=3), np.full(2, 0.05, np.float32), 1, plan=plan, out_dir=out,
              log=None)
    assert res["resumed_from"] == 2 and res["global_step"] == 2
