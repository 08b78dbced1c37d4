"""Interleaved timing that stops as soon as the answer is clear (sequential sampling).

:func:`lrd_core.latency.interleaved` always runs its ``repeat`` rounds. The hardware-aware search
only needs each variant's time *ratio* to the original accurately enough for its thresholds (5%
margin, 3% tie tolerance), and the whole-network check only needs to know whether the compressed
network is slower. :func:`adaptive_interleaved` runs ``min_repeat`` rounds, then adds rounds only
while :func:`ratios_settled` says a paired ratio is still uncertain, up to ``max_repeat``. On a quiet
machine the paired ratios of three rounds agree to 1-2%, so most layers stop there.

``ADAPTIVE = False`` restores the fixed-round behaviour everywhere (used to measure the difference).
"""
from __future__ import annotations

import time
from typing import Callable, List, Sequence

from .latency import Timing, start_timings, time_round

ADAPTIVE = True
LAYER_TOLERANCE = 0.04      # spread of a variant's paired ratios that settles it (search thresholds: 3-5%)
VERIFY_TOLERANCE = 0.05


def _paired(t: Timing, base: Timing) -> List[float]:
    return [v / b for v, b in zip(t.samples, base.samples) if b > 0]


def ratios_settled(timings: Sequence[Timing], tol: float) -> bool:
    """Every variant's paired ratios to ``timings[0]`` either agree within ``tol`` or all lie on one
    side of 1 by more than ``tol`` (faster or slower beyond doubt)."""
    for t in timings[1:]:
        pairs = _paired(t, timings[0])
        if not pairs:
            return False
        if max(pairs) - min(pairs) > tol and not (max(pairs) < 1 - tol or min(pairs) > 1 + tol):
            return False
    return True


def adaptive_interleaved(fns: Sequence[Callable[[], object]], warmup: int = 2, min_repeat: int = 3,
                         max_repeat: int = 7, tol: float = LAYER_TOLERANCE, min_sample_s: float = 0.004,
                         max_number: int = 50, clock: Callable[[], float] = time.perf_counter) -> List[Timing]:
    """Like :func:`lrd_core.latency.interleaved` (round-robin, rotated order, repetitions per sample for
    fast callables) with between ``min_repeat`` and ``max_repeat`` rounds (see the module docstring)."""
    if not fns:
        return []
    out = start_timings(fns, warmup, min_sample_s, max_number, clock)
    for r in range(max(max_repeat, min_repeat)):
        if ADAPTIVE and r >= min_repeat and ratios_settled(out, tol):
            break
        time_round(fns, out, r, clock)
    return out
