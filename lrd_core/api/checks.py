"""Argument checks at the public boundary: wrong types fail with what was expected, not deep inside."""
from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from ..errors import ConfigError
from ..plan import Plan


def model(backend, obj, what: str = "model"):
    """``obj`` must be a native model of the backend's framework."""
    if not isinstance(obj, backend.model_type):
        kind = f"{backend.model_type.__module__}.{backend.model_type.__qualname__}"
        raise ConfigError(f"{what} must be a {backend.name} model ({kind}), got {type(obj).__name__}")
    return obj


def plan(obj, what: str = "plan") -> Plan:
    if not isinstance(obj, Plan):
        hint = " (load a plan file with lrd_core.Plan.from_json(path))" if isinstance(obj, (str, os.PathLike)) else ""
        raise ConfigError(f"{what} must be an lrd_core.Plan, got {type(obj).__name__}{hint}")
    return obj


def path(obj, what: str = "path") -> str:
    if not isinstance(obj, (str, os.PathLike)):
        raise ConfigError(f"{what} must be a file or directory path (str), got {type(obj).__name__}")
    text = os.fspath(obj)
    if not text:
        raise ConfigError(f"{what} is empty")
    return text


def arrays(obj, what: str = "arrays") -> Mapping:
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{what} must be a mapping {{name: numpy array}} (e.g. from state_to_numpy), "
                          f"got {type(obj).__name__}")
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{what}: keys must be tensor names (str) like 'conv1.weight', got {bad[0]!r}")
    return obj


def shape(obj, what: str = "input_shape", rank: int = 4) -> tuple:
    """A tuple of ``rank`` positive integers such as ``(N, C, H, W)``."""
    try:
        values = tuple(obj) if not isinstance(obj, (str, bytes)) else None
    except TypeError:
        values = None
    ok = values is not None and (not rank or len(values) == rank) and len(values) > 0 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in values)
    if not ok:
        raise ConfigError(f"{what} must be {rank or 'some'} positive integers like (1, 3, 224, 224), got {obj!r}")
    return tuple(int(v) for v in values)
