"""Framework-neutral training bookkeeping: run state, resumable checkpoint directories, logs.

A run directory holds checkpoints ``ckpt-<global step>/`` (each written atomically, so a killed
run leaves only complete ones) with ``state.json`` (this module), the weights and optimizer
state (the adapter's files) and ``plan.json`` for a compressed net. Resuming picks the newest.
The :class:`Monitor` turns step results into per-step/epoch logs, a progress bar, and the
history kept in ``state.json``; both adapters' training loops feed it the same way.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from .errors import MismatchError
from .io import atomic_dir, atomic_file
from .layout import CHECKPOINT_PREFIX, PLAN_FILE, STATE_FILE, WEIGHT_FILES

STATE = STATE_FILE
_CKPT = re.compile(r"^" + CHECKPOINT_PREFIX + r"(\d{9})$")


@dataclass
class TrainState:
    """Where a run is: ``global_step`` optimizer steps done out of ``epochs * steps_per_epoch``."""

    epochs: int
    steps_per_epoch: int
    global_step: int = 0
    history: List[dict] = field(default_factory=list)      # one record per finished epoch
    curve: List[list] = field(default_factory=list)        # [global_step, loss, acc, lr] samples
    meta: Dict = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def epoch(self) -> int:
        """0-based epoch of the next step."""
        return self.global_step // self.steps_per_epoch

    @property
    def step_in_epoch(self) -> int:
        return self.global_step % self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.global_step >= self.total_steps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)

    def check_compatible(self, epochs: int, steps_per_epoch: int, where: str) -> None:
        if (self.epochs, self.steps_per_epoch) != (epochs, steps_per_epoch):
            raise MismatchError(f"{where} was written by a run of {self.epochs} epochs x {self.steps_per_epoch} "
                                f"steps, this run has {epochs} x {steps_per_epoch}; resume with the same "
                                f"data, batch size and epochs, or start a new output directory")


def _plan_layers(plan) -> Dict[str, tuple]:
    return {} if plan is None else {lp.name: (lp.method, tuple(lp.ranks or ())) for lp in plan.layers}


def check_same_plan(checkpoint_dir: str, plan, plan_file: str = PLAN_FILE) -> None:
    """Refuse to resume ``checkpoint_dir`` when it was written for another plan than ``plan``.

    The plan stored next to the checkpoint (none for an uncompressed net) must name the same
    layers with the same methods and ranks as the current run's plan (None = uncompressed).

    Raises
    ------
    MismatchError
        Naming the first layer that differs.
    """
    from .plan import Plan

    path = os.path.join(checkpoint_dir, plan_file)
    stored = Plan.from_json(path) if os.path.isfile(path) else None
    old, new = _plan_layers(stored), _plan_layers(plan)
    if old == new:
        return
    if not old or not new:
        what = ("it holds an uncompressed net, this run trains a compressed one" if not old
                else "it holds a compressed net, this run trains an uncompressed one")
    else:
        name = next(n for n in list(old) + list(new) if old.get(n) != new.get(n))
        show = lambda v: "absent" if v is None else f"{v[0]} ranks {list(v[1])}"  # noqa: E731
        what = f"layer {name}: {show(old.get(name))} there, {show(new.get(name))} in this run"
    raise MismatchError(f"checkpoint dir {checkpoint_dir} was written for another plan ({what}); use a fresh "
                        f"output_path or resume: false")


def write_json(obj, path: str) -> str:
    """Write JSON atomically."""
    with atomic_file(path, suffix=".json") as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1)
            fh.write("\n")
    return path


def checkpoint_name(global_step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{global_step:09d}"


def save_training_checkpoint(directory: str, state: "TrainState", plan, keep: int,
                             writers: Dict[str, Callable[[str], None]]) -> str:
    """Write ``directory/ckpt-<step>/`` atomically and prune old ones; returns its path.

    ``writers`` maps file names (weights, optimizer state) to functions writing them to a path;
    the plan (when given) and ``state.json`` are added here.
    """
    path = os.path.join(directory, checkpoint_name(state.global_step))
    with atomic_dir(path, kind="checkpoint") as tmp:
        for name, write in writers.items():
            write(os.path.join(tmp, name))
        if plan is not None:
            plan.to_json(os.path.join(tmp, PLAN_FILE))
        write_json(state.to_dict(), os.path.join(tmp, STATE))
    prune_checkpoints(directory, keep)
    return path


def list_checkpoints(directory: str) -> List[str]:
    """Complete checkpoint directories under ``directory``, oldest first."""
    if not directory or not os.path.isdir(directory):
        return []
    names = sorted(n for n in os.listdir(directory) if _CKPT.match(n)
                   and os.path.isfile(os.path.join(directory, n, STATE)))
    return [os.path.join(directory, n) for n in names]


def latest_checkpoint(directory: str) -> Optional[str]:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def read_state(checkpoint_dir: str) -> TrainState:
    """The TrainState of a checkpoint directory (MismatchError when its state.json is unreadable)."""
    try:
        with open(os.path.join(checkpoint_dir, STATE)) as fh:
            state = TrainState.from_dict(json.load(fh))
        if min(state.epochs, state.steps_per_epoch) < 1 or state.global_step < 0:
            raise ValueError("impossible step counts")
        return state
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise MismatchError(f"checkpoint {checkpoint_dir}: {STATE} is unreadable ({type(exc).__name__}); remove this "
                            f"checkpoint directory to resume from an older one, or start afresh") from None


def prune_checkpoints(directory: str, keep: int) -> None:
    """Remove all but the ``keep`` newest checkpoints (and stale temporary directories)."""
    for path in list_checkpoints(directory)[:-max(keep, 1)]:
        shutil.rmtree(path, ignore_errors=True)
    for name in os.listdir(directory):
        if name.startswith(".ckpt-") and (".tmp-" in name or ".old-" in name):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def clear_checkpoints(directory: str) -> None:
    """Remove every checkpoint of a run directory (a fresh run must not resume stale ones later)."""
    for path in list_checkpoints(directory):
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------- logging
def check_framework(checkpoint_dir: str, framework: str) -> None:
    """Refuse a training checkpoint that another framework wrote (or that lacks this framework's weights).

    Raises
    ------
    MismatchError
        Naming the framework that wrote it and how to resume it.
    """
    expected = WEIGHT_FILES[framework]
    if os.path.isfile(os.path.join(checkpoint_dir, expected)):
        return
    others = [f for f, name in WEIGHT_FILES.items()
              if f != framework and os.path.isfile(os.path.join(checkpoint_dir, name))]
    if others:
        raise MismatchError(f"checkpoint {checkpoint_dir} was written by {others[0]} ({WEIGHT_FILES[others[0]]}) and "
                            f"this run uses {framework}: resume it with framework {others[0]} (--framework "
                            f"{others[0]}), or start afresh in another output directory (or with resume: false)")
    raise MismatchError(f"checkpoint {checkpoint_dir} holds no {expected} (incomplete or not written by lrd); remove "
                        f"it or start afresh in another output directory (or with resume: false)")


def resume_text(checkpoint_dir: str, state: "TrainState") -> str:
    """The log line of a resumed run: where it continues, or that the checkpoint already finished it."""
    if state.finished:
        return (f"  {checkpoint_dir} already finished this run ({state.epochs}/{state.epochs} epochs, step "
                f"{state.global_step}/{state.total_steps}): nothing left to train")
    return (f"  resuming from {checkpoint_dir} (step {state.global_step}/{state.total_steps}, epoch "
            f"{state.epoch + 1}/{state.epochs})")


def resume_or_start(out_dir: Optional[str], resume: bool, epochs: int, steps_per_epoch: int, plan,
                    plan_file: str, load: Callable[[str], "TrainState"], is_main: bool = True,
                    framework: Optional[str] = None):
    """Continue from the newest checkpoint in ``out_dir`` or start afresh.

    A checkpoint is resumed only if it was written for the same epochs x steps, the same plan and (given
    ``framework``) by the same framework; ``load(checkpoint_dir)`` restores weights and optimizer state
    and returns its TrainState. A fresh run (``resume`` false or no checkpoint) removes stale checkpoints
    (main process only).

    Returns
    -------
    (TrainState, resumed_step or None, checkpoint_dir or None)
    """
    last = latest_checkpoint(out_dir) if (out_dir and resume) else None
    if last is None:
        if out_dir and is_main:
            clear_checkpoints(out_dir)
        return TrainState(epochs, steps_per_epoch), None, None
    if framework is not None:
        check_framework(last, framework)
    read_state(last).check_compatible(epochs, steps_per_epoch, last)
    check_same_plan(last, plan, plan_file)
    try:
        state = load(last)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise MismatchError(f"checkpoint {last} does not fit this network/optimizer ({str(exc)[:200]}); resume "
                            f"with the same model and plan, or start a new output directory") from None
    return state, state.global_step, last


class ProgressBar:
    """A one-line progress bar on a terminal (``\\r`` redraw), silent elsewhere."""

    def __init__(self, stream=None, width: int = 24, enabled: Optional[bool] = None):
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._drawn = False

    def draw(self, done: int, total: int, text: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / max(total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {text}\033[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False


class Monitor:
    """Per-step and per-epoch logging shared by both training loops.

    Parameters
    ----------
    state : TrainState
    lr : sequence of float
        The per-step learning rate (for logs).
    images_per_step : int
        Global batch size (all data-parallel ranks).
    log : callable or None
        Receives each log line (None: silent, e.g. on ranks other than 0).
    log_every : int
        Steps between step log lines when no progress bar is drawn (0: epoch lines only).
    progress : bool or None
        Draw a progress bar (None: when stderr is a terminal).
    phase_text : callable
        ``phase -> str`` describing the freezing phase, logged when the phase changes.
    curve_every : int, optional
        Steps between the [step, loss, accuracy, lr] samples kept for the training-curve plot
        (default: about 50 per epoch).
    """

    def __init__(self, state: TrainState, lr, images_per_step: int, log: Optional[Callable[[str], None]] = print,
                 log_every: int = 0, progress: Optional[bool] = None, phase_text: Callable[[int], str] = str,
                 curve_every: Optional[int] = None):
        self.state, self.lr, self.images = state, lr, int(images_per_step)
        self.log = log
        self.log_every = int(log_every)
        self.bar = ProgressBar(enabled=(False if log is None else progress))
        self.phase_text = phase_text
        # at most ~50 curve points per epoch (state.json is rewritten at every checkpoint)
        self.curve_every = max(1, int(curve_every or state.steps_per_epoch // 50))
        self.phase = None
        self._reset_epoch()
        self.step_seconds: List[float] = []      # every step of this process (compile steps included)

    def _reset_epoch(self) -> None:
        self.loss_sum = self.correct = self.seen = self.steps = 0
        self.epoch_seconds = 0.0
        self.epoch_times: List[float] = []

    def _emit(self, text: str) -> None:
        if self.log is not None:
            self.bar.close()
            self.log(text)

    def on_phase(self, phase: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self._emit(f"  {self.phase_text(phase)}")

    def on_step(self, loss: float, correct: float, n: int, seconds: float) -> None:
        """Record one finished optimizer step (``n`` samples on this rank)."""
        s = self.state
        lr = float(self.lr[min(s.global_step, len(self.lr) - 1)])
        s.global_step += 1
        self.loss_sum += float(loss)
        self.correct += float(correct)
        self.seen += int(n)
        self.steps += 1
        self.epoch_seconds += seconds
        self.epoch_times.append(seconds)
        self.step_seconds.append(seconds)
        if s.global_step % self.curve_every == 0 or s.step_in_epoch == 0:
            s.curve.append([s.global_step, round(float(loss), 5), round(float(correct) / max(n, 1), 4), lr])
        done = s.step_in_epoch or s.steps_per_epoch
        current = s.epoch + 1 if s.step_in_epoch else s.epoch       # 1-based epoch of this step
        text = (f"epoch {current}/{s.epochs} "
                f"loss {self.loss_sum / self.steps:.4f} acc {self.correct / max(self.seen, 1):.4f} "
                f"{1000 * seconds:.0f} ms/step {self.images / max(seconds, 1e-9):.0f} img/s")
        self.bar.draw(done, s.steps_per_epoch, text)
        if not self.bar.enabled and self.log_every and s.global_step % self.log_every == 0:
            self._emit(f"  step {s.global_step}/{s.total_steps} (epoch {current}, "
                       f"{done}/{s.steps_per_epoch})  loss {float(loss):.4f}  acc {float(correct) / max(n, 1):.4f}  "
                       f"lr {lr:.5f}  "
                       f"{1000 * seconds:.1f} ms/step  {self.images / max(seconds, 1e-9):.0f} img/s")

    def on_epoch_end(self, eval_accuracy: Optional[float] = None) -> dict:
        """Close the epoch (after the step that finished it); returns the history record."""
        s = self.state
        med = statistics.median(self.epoch_times) if self.epoch_times else 0.0
        rec = {"epoch": s.global_step // s.steps_per_epoch, "global_step": s.global_step,
               "loss": self.loss_sum / max(self.steps, 1), "train_accuracy": self.correct / max(self.seen, 1),
               "lr": float(self.lr[min(s.global_step, len(self.lr)) - 1]), "seconds": self.epoch_seconds,
               "step_ms": 1000 * med, "images_per_s": self.images / med if med else 0.0, "phase": self.phase,
               "time": time.time()}
        if eval_accuracy is not None:
            rec["eval_accuracy"] = float(eval_accuracy)
        s.history.append(rec)
        ev = "" if eval_accuracy is None else f"  eval acc {eval_accuracy:.4f}"
        self._emit(f"  epoch {rec['epoch']}/{s.epochs}  loss {rec['loss']:.4f}  train acc {rec['train_accuracy']:.4f}"
                   f"{ev}  lr {rec['lr']:.5f}  {rec['step_ms']:.1f} ms/step  {rec['images_per_s']:.0f} img/s  "
                   f"{rec['seconds']:.1f}s")
        self._reset_epoch()
        return rec

    def close(self) -> None:
        self.bar.close()

    def timing(self) -> dict:
        """Median step time of this process, without the first step of each compile."""
        times = self.step_seconds[1:] if len(self.step_seconds) > 1 else self.step_seconds
        med = statistics.median(times) if times else 0.0
        return {"step_ms": 1000 * med, "images_per_s": self.images / med if med else 0.0, "steps": len(times)}
