"""``lrd bench layer``: time vs rank of one layer shape, original vs its factor chain.

Ranks are timed in small groups, each interleaved with the original layer; a rank's time is its
paired ratio to the original times the original's median. The *crossover* is the smallest rank
from which the chain is no longer faster; *steps* are ranks where time jumps by much more than
the typical increment (latency is step-like in rank on real hardware).
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import List, Sequence

from lrd_core import latency as L
from lrd_core.frameworks import adapter
from lrd_core.cost import decomposed_cost, layer_params
from lrd_core.errors import ConfigError
from lrd_core.layers import LayerInfo

GROUP = 6


def parse_ranks(text: str) -> List[int]:
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            return list(range(start, stop + 1, step))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--ranks {text!r}: use START:STOP:STEP or a comma list of integers") from None


def layer(cin: int, cout: int, k: int, stride: int, hw: int) -> LayerInfo:
    p = k // 2
    return LayerInfo("sweep", "conv2d", cin, cout, (k, k), (stride, stride), (p, p, p, p), input_hw=(hw, hw))


def ranks_for(info: LayerInfo, r: int):
    if info.kernel == (1, 1):
        return "svd", (min(r, info.in_channels, info.out_channels),)
    scale = info.out_channels / info.in_channels
    return "tucker2", (max(1, min(info.out_channels, round(r * scale))), min(r, info.in_channels))


def crossover(ranks: Sequence[int], ratios: Sequence[float]):
    """Smallest rank from which every larger rank is no faster than the original (None if none)."""
    cut = None
    for r, q in zip(reversed(ranks), reversed(ratios)):
        if q < 1.0:
            break
        cut = r
    return cut


def crossover_interpolated(ranks: Sequence[int], ratios: Sequence[float]):
    """The rank where the ratio reaches 1, interpolated linearly between the last sampled rank that is faster
    and the next one (None when no rank is faster than the original, or every rank is)."""
    cut = crossover(ranks, ratios)
    if cut is None:
        return None
    i = list(ranks).index(cut)
    if i == 0:
        return None
    (ra, qa), (rb, qb) = (ranks[i - 1], ratios[i - 1]), (ranks[i], ratios[i])
    return round(ra + (1.0 - qa) * (rb - ra) / (qb - qa), 1) if qb > qa else float(rb)


def confirm_steps(timer, info: LayerInfo, phase_key: str, ranks: Sequence[int], ms: Sequence[float],
                  found: Sequence[int], original: float, factor: float = 3.0, floor: float = 0.05) -> List[int]:
    """Re-time each step (its rank and the one before, beside the original) and keep the steps whose rise
    survives the repeat: a one-point spike is noise."""
    rises = [b - a for a, b in zip(ms, ms[1:]) if b > a]
    typical = statistics.median(rises) if rises else 0.0
    kept = []
    for r in found:
        i = list(ranks).index(r)
        timings = timer(info, [("none", None), ranks_for(info, ranks[i - 1]), ranks_for(info, r)], phase_key)
        before, after = (L.paired_ratio(t, timings[0]) * original for t in timings[1:])
        if after - before > factor * typical and after - before > floor * before:
            kept.append(r)
    return kept


def steps(ranks: Sequence[int], ms: Sequence[float], factor: float = 3.0, floor: float = 0.05) -> List[int]:
    """Ranks where time rises by more than ``factor`` x the median rise and ``floor`` of the time."""
    rises = [b - a for a, b in zip(ms, ms[1:])]
    positive = [d for d in rises if d > 0]
    if not positive:
        return []
    typical = statistics.median(positive)
    return [ranks[i + 1] for i, d in enumerate(rises) if d > factor * typical and d > floor * ms[i]]


def _sweep(timer, info: LayerInfo, rank_list, phase_key: str) -> dict:
    variants = [ranks_for(info, r) for r in rank_list]
    ratios, base = [], []
    for start in range(0, len(variants), GROUP):
        group = variants[start:start + GROUP]
        timings = timer(info, [("none", None)] + group, phase_key)
        base.append(timings[0].median_ms)
        ratios += [L.paired_ratio(t, timings[0]) for t in timings[1:]]
    original = statistics.median(base)
    ms = [q * original for q in ratios]
    found = steps(rank_list, ms)
    return {"phase": phase_key, "original_ms": original, "ranks": list(rank_list), "ratio": ratios, "ms": ms,
            "crossover_rank": crossover_interpolated(rank_list, ratios),
            "crossover_sampled_rank": crossover(rank_list, ratios),
            "step_ranks": confirm_steps(timer, info, phase_key, rank_list, ms, found, original),
            "step_ranks_first_pass": found}


def run(args) -> dict:
    lat = adapter(args.framework).latency
    lat.check_device(args.device)
    timer = lat.layer_timer(args.device, args.threads, warmup=args.warmup, repeat=args.repeat)
    sizes = [int(v) for v in str(args.hw).split(",") if v.strip()]
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if any(p not in L.PHASES for p in phases):
        raise ConfigError(f"--phases takes infer and/or train, got {args.phases!r}")
    rank_list = [r for r in parse_ranks(args.ranks) if 1 <= r <= min(args.cin, args.cout)]
    if not rank_list:
        raise ConfigError(f"--ranks {args.ranks!r} has no rank in [1, {min(args.cin, args.cout)}]")
    sweeps = []
    for hw in sizes:
        info = layer(args.cin, args.cout, args.kernel, args.stride, hw)
        method = ranks_for(info, rank_list[0])[0]
        params = [decomposed_cost(info, *ranks_for(info, r))[0] / layer_params(info) for r in rank_list]
        for phase in phases:
            t0 = time.perf_counter()
            print(f"sweeping {method} {args.cin}->{args.cout} {args.kernel}x{args.kernel} at {hw}x{hw}, {phase} "
                  f"batch {args.batch}", file=sys.stderr, flush=True)
            s = _sweep(timer, info, rank_list, L.phase_key(phase, args.batch))
            s.update(hw=hw, method=method, params_ratio=params, seconds=round(time.perf_counter() - t0, 1))
            sweeps.append(s)
    return {"device": args.device, "framework": args.framework, "cin": args.cin, "cout": args.cout,
            "kernel": args.kernel, "stride": args.stride, "batch": args.batch, "threads": args.threads,
            "repeat": args.repeat, "date": time.strftime("%Y-%m-%d %H:%M"), "sweeps": sweeps}
