"""Strict reading of scalar and array arguments: an integer is never a truncated ``16.5`` or ``true``,
a number is finite, an array holds real numbers (NaN/Inf refused as bad weights)."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple

from .errors import ConfigError


def integer(value, what: str, low: Optional[int] = None, high: Optional[int] = None, error=ConfigError) -> int:
    """``value`` as an int: an integer or an integral float (``16.0``); never ``16.5``, ``true`` or ``"16"``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(float(value)) and float(value).is_integer()
    if not ok:
        raise error(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        span = ("a positive integer" if (low, high) == (1, None) else f">= {low}" if high is None
                else f"<= {high}" if low is None else f"in [{low}, {high}]")
        raise error(f"{what} must be {span}, got {value}")
    return value


def number(value, what: str, error=ConfigError) -> float:
    """``value`` as a finite float (an int or float, not a bool or a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise error(f"{what} must be a finite number, got {value!r}")
    return float(value)


def pairs(value, n: int, what: str, low: int, error=ConfigError) -> Tuple[int, ...]:
    """A list of ``n`` integers >= ``low``."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise error(f"{what} must be a list of {n} integers, got {value!r}")
    return tuple(integer(v, what, low=low, error=error) for v in value)


def finite_array(value, what: str, ndim: Optional[Sequence[int]] = None) -> "np.ndarray":
    """``value`` as a real NumPy array (ConfigError when it is not numeric or has the wrong number of
    dimensions; BadWeightsError naming ``what`` when it holds NaN or Inf)."""
    import numpy as np

    from .errors import BadWeightsError

    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"dtype {array.dtype}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a real numeric array, got {type(value).__name__} ({exc})") from None
    if ndim is not None and array.ndim not in tuple(ndim):
        want = " or ".join(f"{n}-D" for n in ndim)
        raise ConfigError(f"{what} must be a {want} array, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise BadWeightsError(f"{what} contains NaN or Inf; use weights from before training diverged")
    return array
