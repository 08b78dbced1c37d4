"""lrd_torch: the PyTorch adapter (same public names, signatures and behaviour as ``lrd_mindspore``).

The functions are :mod:`lrd_core.api` bound to this framework's :data:`BACKEND`
(:mod:`lrd_torch.backend`); ``models`` holds the model registry, ``train`` the trainer.
"""
from lrd_core import api as _api

from . import models
from .backend import BACKEND

FRAMEWORK = "torch"
# inspect, plan, compress, rebuild, build, state_to_numpy, load_numpy, count_params, read_checkpoint,
# write_checkpoint, load_checkpoint, save, load, load_plan, measure_latency, with_plan, peak_memory,
# export, set_frozen, frozen_names, freeze_phase, unfreeze, and the groups multistage and latency:
__all__ = ["models", "BACKEND", "FRAMEWORK"] + _api.install(globals(), BACKEND)
