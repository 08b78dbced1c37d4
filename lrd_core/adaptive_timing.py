"""Interleaved timing that stops as soon as the answer is clear (sequential sampling).

:func:`lrd_core.latency.interleaved` always runs its ``repeat`` rounds. The hardware-aware search
only needs each variant's time *ratio* to the original accurately enough for its thresholds (5%
margin, 3% tie tolerance), and the whole-network check only needs to know whether the compressed
network is slower. :func:`adaptive_interleaved` runs ``min_repeat`` rounds, then adds rounds only
while :func:`ratios_settled` says a paired ratio is still uncertain, up to ``max_repeat``. On a quiet
machine the paired ratios of three rounds agree to 1-2%, so most layers stop there.

The last warm-up round is timed too (one call per callable, in order). It fixes each callable's calls
per sample (no extra calibration call) and counts as a *provisional* round: once the timed rounds and
it make ``min_repeat`` rounds whose ratios settle, it is kept and sampling stops; the first time they
do not settle it is dropped for good and ``min_repeat`` timed rounds are needed as before. A cold call
that distorts a ratio therefore never decides alone: it has to agree with the warm rounds.

``MODE`` selects the behaviour everywhere (used to measure the difference): ``"lean"`` (default: the
above), ``"sequential"`` (sequential sampling after untimed warm-up rounds and a calibration call),
``"fixed"`` (every round, as :func:`lrd_core.latency.interleaved`).
"""
from __future__ import annotations

import math
import time
from typing import Callable, List, Optional, Sequence

from .latency import Timing, start_timings, time_round

MODES = ("lean", "sequential", "fixed")
MODE = "lean"
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


def warm_start(fns: Sequence[Callable[[], object]], warmup: int, min_sample_s: float, max_number: int,
               clock: Callable[[], float]):
    """``warmup`` rounds (at least one), the last one timed: ``(empty Timings with calls per sample fixed
    from it, [ms of each callable's last warm-up call])``."""
    for _ in range(max(warmup, 1) - 1):
        for fn in fns:
            fn()
    last = []
    for fn in fns:
        t0 = clock()
        fn()
        last.append(max(clock() - t0, 1e-7))
    numbers = [int(min(max_number, max(1, math.ceil(min_sample_s / dt)))) for dt in last]
    return [Timing(number=n) for n in numbers], [1000.0 * dt for dt in last]


def adaptive_interleaved(fns: Sequence[Callable[[], object]], warmup: int = 2, min_repeat: int = 3,
                         max_repeat: int = 7, tol: float = LAYER_TOLERANCE, min_sample_s: float = 0.004,
                         max_number: int = 50, clock: Callable[[], float] = time.perf_counter,
                         mode: Optional[str] = None) -> List[Timing]:
    """Like :func:`lrd_core.latency.interleaved` (round-robin, rotated order, repetitions per sample for
    fast callables) with between ``min_repeat`` and ``max_repeat`` rounds (see the module docstring;
    ``mode`` defaults to the module's ``MODE``)."""
    mode = mode or MODE
    if not fns:
        return []
    if mode != "lean":
        out = start_timings(fns, warmup, min_sample_s, max_number, clock)
        provisional = None
    else:
        out, provisional = warm_start(fns, warmup, min_sample_s, max_number, clock)
    for r in range(max(max_repeat, min_repeat)):
        if provisional is not None and r >= max(1, min_repeat - 1):
            trial = [Timing(samples=[p] + t.samples, number=t.number) for p, t in zip(provisional, out)]
            if ratios_settled(trial, tol):
                return trial
            provisional = None
        if mode != "fixed" and r >= min_repeat and ratios_settled(out, tol):
            break
        time_round(fns, out, r, clock)
    return out
