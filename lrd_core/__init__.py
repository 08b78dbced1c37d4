"""lrd_core: framework-neutral low-rank decomposition (NumPy / SciPy / tensorly only).

Adapters (``lrd_mindspore``, ``lrd_torch``) turn native models into :class:`LayerInfo` lists and
:class:`SubLayer` lists back into native layers; everything in between lives here.
"""
from . import cost, factorize, modes, ranks, vbmf
from .config import PlanConfig
from .errors import (BadWeightsError, ConfigError, DeviceError, ExportError, LRDError, MismatchError, RankError,
                     UnknownLayerError, UnsupportedLayerError)
from .layers import LayerInfo, Role, SubLayer
from .plan import LayerPlan, Plan
from .planner import decompose, make_plan

__version__ = "0.1.0"
__all__ = ["LayerInfo", "Role", "SubLayer", "Plan", "LayerPlan", "PlanConfig", "make_plan", "decompose",
           "factorize", "ranks", "modes", "cost", "vbmf", "LRDError", "ConfigError", "UnknownLayerError",
           "RankError", "UnsupportedLayerError", "BadWeightsError", "MismatchError", "DeviceError", "ExportError"]
