"""The adapters by name, imported only when asked for (the core itself never imports a framework)."""
from __future__ import annotations

import importlib
import os

from .errors import ConfigError

FRAMEWORKS = ("mindspore", "torch")
OTHER = {"mindspore": "torch", "torch": "mindspore"}


def adapter(framework: str):
    """``lrd_mindspore`` or ``lrd_torch``; a clear error when the framework is not installed."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"unknown framework {framework!r}; choose mindspore or torch")
    if framework == "mindspore":
        os.environ.setdefault("GLOG_v", "3")
    try:
        return importlib.import_module("lrd_" + framework)
    except ImportError as exc:
        raise ConfigError(f"framework {framework} is not installed ({exc}); install the "
                          f"'{framework}' extra, e.g. pip install -e .[{framework}]") from None
