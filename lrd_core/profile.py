"""Per-layer profiling for the hardware-aware search: a cache in front of an adapter's layer timer.

A *layer timer* is what an adapter provides::

    timer(info: LayerInfo, variants: [(method, ranks)], phase: "infer@8") -> [Timing]

``variants[0]`` is always ``("none", None)`` (the original layer); the timer runs all variants
interleaved and returns one :class:`~lrd_core.latency.Timing` each. :class:`Profiler` asks it only
for variants the cache does not know, and answers every variant as ``(ms, ratio)`` where ``ratio``
is the variant's time over the original's, measured side by side.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .latency import Timing, paired_ratio
from .latency_cache import LatencyCache, entry_key, layer_signature, variant_key
from .layers import LayerInfo

Variant = Tuple[str, Optional[Tuple[int, ...]]]
LayerTimer = Callable[[LayerInfo, Sequence[Variant], str], List[Timing]]
ORIGINAL: Variant = ("none", None)


class Profiler:
    """Cached per-layer measurements.

    Parameters
    ----------
    timer : callable
        The adapter's layer timer (see module docstring).
    cache : LatencyCache, optional
        In-memory only when omitted.
    log : callable, optional
        Called with one line per measured layer.
    """

    def __init__(self, timer: LayerTimer, cache: Optional[LatencyCache] = None,
                 log: Optional[Callable[[str], None]] = None):
        self.timer = timer
        self.cache = cache if cache is not None else LatencyCache({"device": "?", "framework": "?",
                                                                   "version": "?", "threads": "?",
                                                                   "host": "?"}, memory=True)
        self.log = log
        self.measured_layers = 0
        self.measured_variants = 0
        self.seconds = 0.0
        self.label: Optional[str] = None     # the log line's layer name, e.g. "[3/12] layer2.0.conv1"

    def measure(self, info: LayerInfo, variants: Sequence[Variant], phase: str) -> Dict[str, Tuple[float, float]]:
        """``{variant_key: (ms, ratio)}`` for the original and every variant of ``info`` in ``phase``."""
        sig = layer_signature(info)
        wanted = [ORIGINAL] + [v for v in variants if v[0] != "none"]
        keys = {variant_key(*v): entry_key(phase, sig, variant_key(*v)) for v in wanted}
        missing = [v for v in wanted[1:] if self.cache.get(keys[variant_key(*v)]) is None]
        base_entry = self.cache.get(keys["original"])
        if missing or base_entry is None:
            self._run(info, phase, missing, keys)
        base_ms = self.cache.peek(keys["original"])["ms"]
        out = {"original": (base_ms, 1.0)}
        for v in wanted[1:]:
            entry = self.cache.peek(keys[variant_key(*v)])
            out[variant_key(*v)] = (entry["ratio"] * base_ms, entry["ratio"])
        return out

    def _run(self, info: LayerInfo, phase: str, missing: Sequence[Variant], keys: Mapping[str, str]) -> None:
        t0 = time.perf_counter()
        timings = self.timer(info, [ORIGINAL] + list(missing), phase)
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.measured_layers += 1
        self.measured_variants += len(missing)
        base = timings[0]
        if self.cache.peek(keys["original"]) is None:
            self.cache.put(keys["original"], base.median_ms, 1.0, runs=len(base.samples))
        for v, t in zip(missing, timings[1:]):
            self.cache.put(keys[variant_key(*v)], t.median_ms, paired_ratio(t, base), runs=len(t.samples))
        if self.log:
            vs = ", ".join(f"{variant_key(*v)} {paired_ratio(t, base):.2f}x" for v, t in zip(missing, timings[1:]))
            name = getattr(self, "label", None) or f"{info.name} ({layer_signature(info)})"
            self.log(f"  {name:<40} {phase:<9} {base.median_ms:8.3f} ms | {vs} ({dt:.1f}s)")

    def stats(self) -> dict:
        return {"measured_layers": self.measured_layers, "measured_variants": self.measured_variants,
                "measure_seconds": round(self.seconds, 2), **self.cache.stats()}


def table_timer(table: Mapping[Tuple[str, str, str], float], runs: int = 3) -> LayerTimer:
    """A layer timer that replays known times: ``table[(layer_name, variant_key, phase)] = ms``.

    Layer names are looked up first, then the layer signature (so one entry can serve every layer
    of a shape). Used by tests and to replay a profile measured elsewhere.
    """
    def timer(info: LayerInfo, variants: Sequence[Variant], phase: str) -> List[Timing]:
        out = []
        for v in variants:
            vk = variant_key(*v)
            ms = table.get((info.name, vk, phase), table.get((layer_signature(info), vk, phase)))
            if ms is None:
                raise KeyError(f"no time for {info.name} {vk} {phase}")
            out.append(Timing(samples=[float(ms)] * runs))
        return out
    return timer
