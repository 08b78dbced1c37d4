"""Layer latency at many ranks from a few timed ones: sample sparsely, interpolate between them.

On the CPUs measured here a factor chain's time is close to linear in its MACs between the steps
of the vector width (see ``benchmarks/README.md``, layer sweep), so timing the smallest and largest
rank of a ladder and a few between them, then interpolating linearly in MACs, gives every rank's
time at the cost of a handful of measurements. Measurements go through a
:class:`~lrd_core.profile.Profiler` (cached on disk; layers of one shape are timed once).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .cost import decomposed_cost
from .latency_cache import variant_key
from .layers import LayerInfo

DEFAULT_SAMPLES = 4


def sample_indices(n: int, samples: int = DEFAULT_SAMPLES) -> List[int]:
    """``samples`` indices spread evenly over ``range(n)``, both ends included."""
    if n <= samples:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, samples)})


def interpolate(x_known: Sequence[float], y_known: Sequence[float], x: Sequence[float]) -> np.ndarray:
    """Piecewise-linear interpolation (constant beyond the ends)."""
    order = np.argsort(x_known)
    return np.interp(np.asarray(x, float), np.asarray(x_known, float)[order], np.asarray(y_known, float)[order])


def ladder_times(profiler, info: LayerInfo, method: str, ranks: Sequence[Tuple[int, ...]], phases: Sequence[str],
                 samples: int = DEFAULT_SAMPLES) -> Tuple[float, List[float]]:
    """``(original_ms, [ms per rank])`` summed over ``phases``: ``samples`` ranks timed (cached),
    the others interpolated in MACs."""
    ranks = [tuple(int(v) for v in r) for r in ranks]
    if not ranks:
        return 0.0, []
    macs = [decomposed_cost(info, method, r)[1] for r in ranks]
    order = sorted(range(len(ranks)), key=lambda k: macs[k])
    picked = [order[k] for k in sample_indices(len(order), samples)]
    variants = [(method, ranks[k]) for k in picked]
    base, times = 0.0, np.zeros(len(ranks))
    for phase in phases:
        got = profiler.measure(info, variants, phase)
        base += got["original"][0]
        known = [got[variant_key(method, ranks[k])][0] for k in picked]
        times += interpolate([macs[k] for k in picked], known, macs)
    return float(base), [float(t) for t in times]

