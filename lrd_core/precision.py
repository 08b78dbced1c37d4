"""Mixed precision, loss scaling and dataset sinking: the Ascend training conventions of ModelZoo ResNet.

* ``amp_level``: ``O0`` (float32), ``O1`` (float16 for listed ops), ``O2`` (float16 network, float32
  BatchNorm and loss: ModelZoo ResNet's level on Ascend), ``O3`` (all float16).
* loss scaling: ``loss_scale_type`` ``none``, ``fixed`` (``FixedLossScaleManager(loss_scale,
  drop_overflow_update=False)``, ModelZoo's default with ``loss_scale: 1024``) or ``dynamic`` (scale divided
  by ``scale_factor`` on overflow, the step skipped; multiplied after ``scale_window`` finite steps).
* ``dataset_sink_mode`` / ``sink_size``: MindSpore runs ``sink_size`` steps per device call (-1: one
  epoch); callbacks see one step end per chunk.

What runs where (measured on MindSpore 2.10 CPU and torch 2.13 CPU): MindSpore O0-O3 and fixed / dynamic
loss scaling train on CPU (``lrd``'s own train step scales the loss; ``Model``'s dynamic manager is refused
on CPU by MindSpore). torch: ``O1``-``O3`` use ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA); loss
scaling uses ``torch.amp.GradScaler`` on CUDA and is not needed (skipped with one line) for bfloat16 on CPU.

Sinking (:func:`sink_steps` checks the run against it): MindSpore sinks on Ascend / GPU in GRAPH mode.
``lrd_mindspore.train.fit`` then calls ``Model.train`` once per freezing phase with that phase's train cell
and ``sink_size``; the optimizer indexes the per-step LR array with its own step counter, so the LR advances
inside a chunk. Everything the trainer does between steps happens at chunk ends, so the epoch length,
step-unit freezing phases (``freeze_every``), ``save_every_steps`` and ``log_every`` must be multiples of
``sink_size`` (one ConfigError names the key otherwise); checkpoints are written at chunk ends only, the
monitor's step time is the chunk time / ``sink_size``, and the loss / accuracy logged for the steps of a
chunk are those of its last step. Distillation (the teacher runs on the host every step) is refused with
sinking, and so is sequential freezing over a native MindSpore dataset (its pipeline cannot be split per
phase; lrd's Loader data can). MindSpore's CPU backend cannot sink (``Model.train`` falls back to
step-by-step, ``DatasetHelper`` refuses a CPU sink), nor does PyNative mode sink: there ``fit`` checks the
same multiples, logs one line and trains step by step (the same weights). torch has no sinking: its trainer
logs one line and ignores both keys, so a shared ModelZoo YAML runs on both.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

AMP_LEVELS = ("O0", "O1", "O2", "O3")
LOSS_SCALES = ("none", "fixed", "dynamic")


@dataclass(frozen=True)
class PrecisionConfig:
    amp_level: str = "O0"
    loss_scale_type: str = "none"
    loss_scale: float = 1024.0
    scale_factor: int = 2
    scale_window: int = 1000
    dataset_sink_mode: bool = False
    sink_size: int = -1

    def __post_init__(self):
        if self.amp_level not in AMP_LEVELS:
            raise ConfigError(f"amp_level {self.amp_level!r}: choose one of {', '.join(AMP_LEVELS)}")
        if self.loss_scale_type not in LOSS_SCALES:
            raise ConfigError(f"loss_scale_type {self.loss_scale_type!r}: choose one of {', '.join(LOSS_SCALES)}")
        if not self.loss_scale >= 1:
            raise ConfigError(f"loss_scale must be >= 1, got {self.loss_scale!r}")
        if int(self.scale_factor) != self.scale_factor or self.scale_factor < 2:
            raise ConfigError(f"scale_factor must be an integer >= 2, got {self.scale_factor!r}")
        if int(self.scale_window) != self.scale_window or self.scale_window < 1:
            raise ConfigError(f"scale_window must be a positive integer, got {self.scale_window!r}")
        if self.sink_size == 0 or self.sink_size < -1:
            raise ConfigError(f"sink_size must be -1 (whole epoch) or > 0, got {self.sink_size!r}")

    @property
    def scaled(self) -> bool:
        return self.loss_scale_type != "none"


def as_precision(value) -> PrecisionConfig:
    """None -> float32 without loss scaling; a dict -> its keys; a PrecisionConfig as is."""
    if value is None:
        return PrecisionConfig()
    if isinstance(value, PrecisionConfig):
        return value
    if isinstance(value, dict):
        return PrecisionConfig(**value)
    raise ConfigError(f"precision takes a dict or PrecisionConfig, got {value!r}")


def sink_steps(cfg: PrecisionConfig, steps_per_epoch: int, freeze=None, save_every_steps: int = 0,
               log_every: int = 0) -> int:
    """The steps per sink of a run (0 without ``dataset_sink_mode``); raises :class:`ConfigError` naming
    the key to change when a step-driven event would fall inside a sunk chunk.

    Parameters
    ----------
    cfg : PrecisionConfig
    steps_per_epoch : int
        Optimizer steps per epoch of this rank.
    freeze : FreezeConfig, optional
        Freezing phases: with ``unit: step`` their length ``every`` must be a multiple of the sink size.
    save_every_steps, log_every : int
        0 (off) or multiples of the sink size.
    """
    if not cfg.dataset_sink_mode:
        return 0
    sink = steps_per_epoch if cfg.sink_size == -1 else int(cfg.sink_size)
    if steps_per_epoch % sink:
        raise ConfigError(f"sink_size {sink} does not divide the {steps_per_epoch} steps of an epoch: choose a "
                          f"divisor of {steps_per_epoch} or -1 (one sink per epoch)")
    checks = [("save_every_steps", save_every_steps), ("log_every", log_every)]
    if freeze is not None and freeze.policy == "sequential" and freeze.unit == "step":
        checks.insert(0, ("freeze_every", freeze.every))            # freezing phases counted in steps
    for key, value in checks:
        if value and value % sink:
            raise ConfigError(f"{key} {value} is not a multiple of sink_size {sink}: the trainer acts only between "
                              f"sunk chunks; set {key} to a multiple of {sink} or dataset_sink_mode false")
    return sink
