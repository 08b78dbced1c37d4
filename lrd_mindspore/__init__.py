"""lrd_mindspore: the MindSpore adapter (same public names as ``lrd_torch``).

Importing it selects the CPU device unless a device was already chosen; call
``mindspore.set_device("Ascend")`` (or ``"GPU"``) before importing to run elsewhere.
"""
from . import _env  # noqa: F401  (must run before mindspore is imported)

import mindspore as _ms  # noqa: E402,F401

from . import models  # noqa: E402
from .apply import build, compress, plan, rebuild  # noqa: E402
from .checkpoint import load, load_checkpoint, load_plan, read_checkpoint, save, write_checkpoint  # noqa: E402
from .inspect import inspect  # noqa: E402
from .state import load_numpy, state_to_numpy  # noqa: E402
from .latency import measure_latency  # noqa: E402
from .freeze import freeze_phase, frozen_names, set_frozen, unfreeze  # noqa: E402
from .export import export  # noqa: E402  # the function; the module stays importable as lrd_mindspore.export via importlib

FRAMEWORK = "mindspore"
__all__ = ["models", "inspect", "plan", "compress", "rebuild", "build", "save", "load", "load_plan",
           "read_checkpoint", "write_checkpoint", "load_checkpoint", "state_to_numpy", "load_numpy",
           "measure_latency", "export", "set_frozen", "frozen_names", "freeze_phase", "unfreeze"]
