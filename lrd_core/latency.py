"""Framework-neutral timing: interleaved runs, medians, paired ratios; the phases a search times.

An adapter turns a layer or a model into zero-argument callables that run once and wait for the
device (``fn()``); :func:`interleaved` times several of them round-robin (A B C A B C ...), so a
load change on a shared machine hits every variant alike, and :func:`paired_ratio` compares two of
them round by round. Nothing here imports a framework.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError

PHASES = ("infer", "train")
OBJECTIVES = {"infer": ("infer",), "train": ("train",), "both": ("infer", "train")}


@dataclass
class Timing:
    """Per-call times (ms) of one callable, one sample per interleaved round.

    Attributes
    ----------
    samples : list of float
        Milliseconds per call, in round order.
    number : int
        Calls averaged into each sample (short callables are repeated to beat timer resolution).
    """

    samples: List[float] = field(default_factory=list)
    number: int = 1

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def min_ms(self) -> float:
        return float(min(self.samples))

    @property
    def iqr_ms(self) -> Tuple[float, float]:
        """25th and 75th percentile."""
        if len(self.samples) < 2:
            return self.median_ms, self.median_ms
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return float(q[0]), float(q[2])

    def to_dict(self) -> dict:
        lo, hi = self.iqr_ms
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "q25_ms": lo, "q75_ms": hi,
                "runs": len(self.samples), "number": self.number}


def phase_key(phase: str, batch: int) -> str:
    """``"infer@8"``-style name of a timed phase."""
    if phase not in PHASES:
        raise ConfigError(f"unknown phase {phase!r}; use one of {PHASES}")
    return f"{phase}@{int(batch)}"


def parse_phase(key: str) -> Tuple[str, int]:
    phase, _, batch = key.partition("@")
    return phase, int(batch)


def objective_phases(objective: str, batch: int) -> List[str]:
    """Phases an objective times: inference at batch 1 and ``batch``, training at ``batch``."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    keys = []
    for phase in OBJECTIVES[objective]:
        batches = sorted({1, int(batch)}) if phase == "infer" else [int(batch)]
        keys += [phase_key(phase, b) for b in batches]
    return keys


def interleaved(fns: Sequence[Callable[[], object]], warmup: int = 2, repeat: int = 9,
                min_sample_s: float = 0.004, max_number: int = 50,
                clock: Callable[[], float] = time.perf_counter) -> List[Timing]:
    """Time ``fns`` round-robin and return one :class:`Timing` per callable.

    Parameters
    ----------
    fns : sequence of callables
        Each runs the workload once and returns when the device is done.
    warmup : int
        Untimed rounds first (compilation, allocator and cache warm-up).
    repeat : int
        Timed rounds; every round times each callable once, in an order rotated by one per round.
    min_sample_s : float
        A callable faster than this is called several times per sample (same count every round).
    """
    if not fns:
        return []
    out = start_timings(fns, warmup, min_sample_s, max_number, clock)
    for r in range(repeat):
        time_round(fns, out, r, clock)
    return out


def start_timings(fns: Sequence[Callable[[], object]], warmup: int, min_sample_s: float, max_number: int,
                  clock: Callable[[], float]) -> List[Timing]:
    """Warm ``fns`` up (``warmup`` untimed rounds) and fix each one's calls per sample from one extra call:
    an empty :class:`Timing` per callable, ready for :func:`time_round`."""
    for _ in range(max(warmup, 1)):
        for fn in fns:
            fn()
    numbers = []
    for fn in fns:                       # calibrate repetitions per sample from one extra call
        t0 = clock()
        fn()
        dt = max(clock() - t0, 1e-7)
        numbers.append(int(min(max_number, max(1, math.ceil(min_sample_s / dt)))))
    return [Timing(number=n) for n in numbers]


def time_round(fns: Sequence[Callable[[], object]], out: List[Timing], r: int,
               clock: Callable[[], float]) -> None:
    """Round ``r``: one sample of every callable, in an order rotated by ``r``, appended to ``out``."""
    k = len(fns)
    for j in range(k):
        i = (j + r) % k
        fn, n = fns[i], out[i].number
        t0 = clock()
        for _ in range(n):
            fn()
        out[i].samples.append((clock() - t0) * 1000.0 / n)


def paired_ratio(variant: Timing, base: Timing) -> float:
    """Median over rounds of ``variant / base`` measured in the same round (robust to load drift)."""
    pairs = [v / b for v, b in zip(variant.samples, base.samples) if b > 0]
    if not pairs:
        return float("nan")
    return float(statistics.median(pairs))


@dataclass
class LatencyResult:
    """What ``measure_latency`` returns for one network in one phase."""

    phase: str
    batch: int
    device: str
    framework: str
    timing: Timing
    ratio: Optional[float] = None          # against the first network of the same call
    threads: Optional[int] = None

    @property
    def median_ms(self) -> float:
        return self.timing.median_ms

    @property
    def throughput(self) -> float:
        """Samples per second at the median time."""
        return 1000.0 * self.batch / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        d = {"phase": self.phase, "batch": self.batch, "device": self.device, "framework": self.framework,
             "throughput": self.throughput, "threads": self.threads, **self.timing.to_dict()}
        if self.ratio is not None:
            d["ratio"] = self.ratio
        return d


def results(timings: Sequence[Timing], phase: str, batch: int, device: str, framework: str,
            threads: Optional[int] = None) -> List[LatencyResult]:
    """Wrap interleaved timings; ratios are paired against the first one."""
    out = []
    for k, t in enumerate(timings):
        ratio = None if k == 0 and len(timings) == 1 else paired_ratio(t, timings[0])
        out.append(LatencyResult(phase, batch, device, framework, t, ratio, threads))
    return out


def summarise(result_sets: Dict[str, Sequence[LatencyResult]]) -> Dict[str, dict]:
    """``{phase_key: [results]}`` -> plain dicts (for JSON)."""
    return {k: [r.to_dict() for r in v] for k, v in result_sets.items()}


def plan_verifier(measure: Callable, with_plan: Callable, model, input_shape, device: str, phases: Sequence[str],
                  threads: Optional[int] = None, repeat: int = 5, num_classes: Optional[int] = None):
    """``verify(plan) -> {phase: ratio}``: the compressed network against the original, interleaved.

    ``measure`` is an adapter's ``measure_latency`` and ``with_plan(model, plan)`` builds the
    compressed variant; ``phases`` are keys such as ``"infer@8"``.
    """
    def verify(plan) -> Dict[str, float]:
        variant = with_plan(model, plan)
        out = {}
        for key in phases:
            phase, batch = parse_phase(key)
            shape = (batch,) + tuple(input_shape[1:])
            res = measure([model, variant], shape, device, phase, warmup=1, repeat=repeat, threads=threads,
                          num_classes=num_classes)
            out[key] = res[1].ratio
        return out
    return verify
