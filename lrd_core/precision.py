"""Mixed precision, loss scaling and dataset sinking: the Ascend training conventions of ModelZoo ResNet.

* ``amp_level``: ``O0`` (float32), ``O1`` (float16 for listed ops), ``O2`` (float16 network, float32
  BatchNorm and loss: ModelZoo ResNet's level on Ascend), ``O3`` (all float16).
* loss scaling: ``loss_scale_type`` ``none``, ``fixed`` (``FixedLossScaleManager(loss_scale,
  drop_overflow_update=False)``, ModelZoo's default with ``loss_scale: 1024``) or ``dynamic`` (scale divided
  by ``scale_factor`` on overflow, the step skipped; multiplied after ``scale_window`` finite steps).
* ``dataset_sink_mode`` / ``sink_size``: MindSpore sends ``sink_size`` steps to the device per call.

What runs where (measured on MindSpore 2.10 CPU and torch 2.13 CPU): MindSpore O0-O3 and fixed / dynamic
loss scaling train on CPU (``lrd``'s own train step scales the loss; ``Model``'s dynamic manager is refused
on CPU by MindSpore). torch: ``O1``-``O3`` use ``torch.autocast`` (bfloat16 on CPU, float16 on CUDA); loss
scaling uses ``torch.amp.GradScaler`` on CUDA and is not needed (skipped with one line) for bfloat16 on CPU.
Dataset sinking is refused with one line by both trainers: freezing phases, checkpoints and the per-step LR
are driven step by step.
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
        if self.dataset_sink_mode:
            raise ConfigError("dataset_sink_mode: lrd's trainers drive freezing phases, checkpoints and the "
                              "per-step LR step by step, so steps are not sunk to the device; set "
                              "dataset_sink_mode false (sink_size is then unused)")

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
