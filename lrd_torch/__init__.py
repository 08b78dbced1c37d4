"""lrd_torch: the PyTorch adapter (same public names as ``lrd_mindspore``)."""
from . import models
from .apply import build, compress, plan, rebuild
from .checkpoint import load, load_checkpoint, load_plan, read_checkpoint, save, write_checkpoint
from .inspect import inspect
from .state import load_numpy, state_to_numpy
from .latency import measure_latency
from .freeze import freeze_phase, frozen_names, set_frozen, unfreeze
from .export import export  # the function; the module stays importable as lrd_torch.export via importlib

FRAMEWORK = "torch"
__all__ = ["models", "inspect", "plan", "compress", "rebuild", "build", "save", "load", "load_plan",
           "read_checkpoint", "write_checkpoint", "load_checkpoint", "state_to_numpy", "load_numpy",
           "measure_latency", "export", "set_frozen", "frozen_names", "freeze_phase", "unfreeze"]
