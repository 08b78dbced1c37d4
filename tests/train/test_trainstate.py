"""Run state, checkpoint directories and the log lines (framework-neutral)."""
import io
import os

import pytest

from lrd_core.errors import MismatchError
from lrd_core.trainstate import (Monitor, ProgressBar, TrainState, checkpoint_name, latest_checkpoint,
                                 list_checkpoints, prune_checkpoints, read_state, write_json)


def test_state_positions_and_roundtrip(tmp_path):
    s = TrainState(epochs=3, steps_per_epoch=4, global_step=6)
    assert (s.epoch, s.step_in_epoch, s.total_steps, s.finished) == (1, 2, 12, False)
    d = tmp_path / checkpoint_name(6)
    d.mkdir()
    write_json(s.to_dict(), str(d / "state.json"))
    assert read_state(str(d)) == s
    with pytest.raises(MismatchError, match="3 epochs x 4 steps"):
        s.check_compatible(3, 5, "run")


def test_only_complete_checkpoints_count_and_pruning(tmp_path):
    for step in (3, 10, 7):
        d = tmp_path / checkpoint_name(step)
        d.mkdir()
        write_json(TrainState(2, 5, step).to_dict(), str(d / "state.json"))
    (tmp_path / checkpoint_name(12)).mkdir()                           # no state.json: not complete
    (tmp_path / ".ckpt-000000013.tmp-abc").mkdir()                     # a half-written one
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] == \
        ["ckpt-000000003", "ckpt-000000007", "ckpt-000000010"]
    assert latest_checkpoint(str(tmp_path)).endswith("ckpt-000000010")
    prune_checkpoints(str(tmp_path), keep=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000000007", "ckpt-000000010", "ckpt-000000012"]


def test_monitor_lines_history_and_progress_bar():
    lines = []
    state = TrainState(epochs=2, steps_per_epoch=2)
    m = Monitor(state, [0.1, 0.2, 0.3, 0.4], images_per_step=64, log=lines.append, log_every=1, progress=False,
                phase_text=lambda k: f"phase {k}")
    m.on_phase(0)
    m.on_step(2.0, 16, 32, 0.5)
    m.on_step(1.0, 32, 32, 0.25)
    rec = m.on_epoch_end(eval_accuracy=0.75)
    assert rec["loss"] == 1.5 and rec["train_accuracy"] == 0.75 and rec["eval_accuracy"] == 0.75
    assert rec["lr"] == pytest.approx(0.2) and rec["step_ms"] == pytest.approx(375.0)
    assert rec["images_per_s"] == pytest.approx(64 / 0.375)
    assert lines[0] == "  phase 0"
    assert lines[1] == "  step 1/4 (epoch 1, 1/2)  loss 2.0000  acc 0.5000  lr 0.10000  500.0 ms/step  128 img/s"
    assert lines[-1].startswith("  epoch 1/2  loss 1.5000  train acc 0.7500  eval acc 0.7500  lr 0.20000")
    assert state.curve == [[1, 2.0, 0.5, 0.1], [2, 1.0, 1.0, 0.2]] and state.history == [rec]
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10, enabled=True)
    bar.draw(5, 10, "loss 1.0")
    bar.close()
    assert stream.getvalue().startswith("\r[#####.....] 5/10 loss 1.0")
