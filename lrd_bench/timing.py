"""Paired timing for ``lrd bench model``: the original beside one variant at a time.

Each variant is built just before its rounds, timed interleaved with the original (A B, B A, A B ...:
the order rotates every round), then dropped, so at most two compiled networks are alive at once (the
original's runner stays for the whole phase; a variant's compiled cells are released before the next
variant is built: :meth:`~lrd_core.backend.Backend.release`). A paired ratio needs only the original and the variant timed in the same round, so
the ratios are those of an all-at-once interleave; the original's median is taken over every round of
the phase.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from lrd_core import latency as L

#: a callable faster than this is called several times per sample (as in :func:`lrd_core.latency.interleaved`)
MIN_SAMPLE_S = 0.004
MAX_NUMBER = 50


@dataclass
class Pair:
    """One variant's samples and the original's samples from the same rounds."""

    base: L.Timing
    variant: L.Timing

    @property
    def round_ratios(self) -> List[float]:
        return [v / b for v, b in zip(self.variant.samples, self.base.samples) if b > 0]


def rounds(variants: int, repeat: int) -> int:
    """Timed rounds of one phase: ``repeat`` per variant (the original alone when there is none)."""
    return max(1, variants) * repeat


def time_phase(backend, base, variants: Sequence[Callable[[], object]], shape, device: str, phase: str, *,
               warmup: int = 1, repeat: int = 7, threads: Optional[int] = None, num_classes: Optional[int] = None,
               tick: Callable[[], object] = lambda: None,
               clock: Callable[[], float] = time.perf_counter) -> Tuple[L.Timing, List[Pair]]:
    """Time the network ``base`` beside each variant in turn, one phase.

    Parameters
    ----------
    backend : lrd_core.backend.Backend
        The framework's primitives (``runners``, ``release``, ``timing_scope``, ``copy``, ``check_device``).
    base : native model
        The original (a training phase runs on a copy of it).
    variants : sequence of callables
        Each builds one network to time (a training phase needs a network it may update); it is built
        just before its rounds and released after them.
    shape : tuple
        Input shape ``(N, C, H, W)``.
    phase : {'infer', 'train'}
    tick : callable
        Called after every timed round (progress).

    Returns
    -------
    (Timing, list of Pair)
        The original's samples over every round of the phase, and one :class:`Pair` per variant.
    """
    target = backend.check_device(device)
    with backend.timing_scope(threads):
        net = backend.copy(base) if phase == "train" else base
        base_fn = backend.runners([net], shape, phase, target, num_classes=num_classes)[0]
        try:
            if not variants:
                return _rounds([base_fn], warmup, repeat, tick, clock)[0], []
            pairs = []
            for make in variants:
                pairs.append(_pair(backend, base_fn, make, shape, target, phase, warmup, repeat, num_classes,
                                   tick, clock))
                gc.collect()             # the variant just timed goes before the next one is built
        finally:
            backend.release([base_fn])
            del base_fn, net
            gc.collect()
    pooled = L.Timing(samples=[s for p in pairs for s in p.base.samples], number=pairs[0].base.number)
    return pooled, pairs


def _pair(backend, base_fn, make, shape, target, phase, warmup, repeat, num_classes, tick, clock) -> Pair:
    """One variant beside the original; its network and runner are local and die when this returns."""
    fns = [base_fn, backend.runners([make()], shape, phase, target, num_classes=num_classes)[0]]
    try:
        out = _rounds(fns, warmup, repeat, tick, clock)
    finally:
        backend.release(fns[1:])         # the variant's compiled cells (MindSpore keeps them otherwise)
    return Pair(out[0], out[1])


def _rounds(fns, warmup, repeat, tick, clock) -> List[L.Timing]:
    """``repeat`` interleaved rounds of ``fns`` (as :func:`lrd_core.latency.interleaved`), ticking after each."""
    out = L.start_timings(fns, warmup, MIN_SAMPLE_S, MAX_NUMBER, clock)
    for r in range(repeat):
        L.time_round(fns, out, r, clock)
        tick()
    return out
