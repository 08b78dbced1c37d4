"""lrd_torch: the PyTorch adapter (same public names as ``lrd_mindspore``)."""
from . import models
from .apply import build, compress, plan, rebuild
from .checkpoint import load, load_checkpoint, load_plan, read_checkpoint, save, write_checkpoint
from .inspect import inspect
from .state import load_numpy, state_to_numpy

FRAMEWORK = "torch"
__all__ = ["models", "inspect", "plan", "compress", "rebuild", "build", "save", "load", "load_plan",
           "read_checkpoint", "write_checkpoint", "load_checkpoint", "state_to_numpy", "load_numpy"]
