"""lrd_mindspore: the MindSpore adapter (same public names, signatures and behaviour as ``lrd_torch``).

The functions are :mod:`lrd_core.api` bound to this framework's :data:`BACKEND`
(:mod:`lrd_mindspore.backend`); ``models`` holds the model registry, ``train`` the trainer (``ms.train.Model``
with callbacks). Importing it selects the CPU device unless a device was already chosen; call
``mindspore.set_device("Ascend")`` (or ``"GPU"``) before importing to run elsewhere.
"""
from . import _env  # noqa: F401  (must run before mindspore is imported)

from lrd_core import api as _api  # noqa: E402

from . import models  # noqa: E402
from .backend import BACKEND  # noqa: E402

FRAMEWORK = "mindspore"
# inspect, plan, compress, rebuild, build, state_to_numpy, load_numpy, count_params, read_checkpoint,
# write_checkpoint, load_checkpoint, save, load, load_plan, measure_latency, with_plan, peak_memory,
# export, set_frozen, frozen_names, freeze_phase, unfreeze, and the groups multistage and latency:
__all__ = ["models", "BACKEND", "FRAMEWORK"] + _api.install(globals(), BACKEND)
