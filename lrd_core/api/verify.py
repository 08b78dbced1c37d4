"""The hardware-aware search's whole-network check with sequential sampling, for any backend.

``verify(plan) -> {phase: ratio}`` times the compressed network against the original, interleaved,
in every phase of the objective (as :func:`lrd_core.latency.plan_verifier` does), but stops after two
rounds when the paired ratios already agree or are clearly below or above 1
(:func:`lrd_core.adaptive_timing.ratios_settled`), and runs up to five otherwise. The one warm-up call of
each network is timed and counts as the first of those rounds only when the next round agrees with it
(:func:`lrd_core.adaptive_timing.adaptive_interleaved`), so a settled phase costs two calls per network.
A ResNet-50 training step at batch 8 takes seconds, so this check was half of a cold search.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

from .. import adaptive_timing as A
from ..latency import paired_ratio, parse_phase

MIN_ROUNDS, MAX_ROUNDS = 2, 5


def adaptive_verifier(backend, model, input_shape, device: str, phases: Sequence[str], threads: Optional[int] = None,
                      num_classes: Optional[int] = None):
    """``verify(plan) -> {phase: ratio}`` (see the module docstring)."""
    from .timing import with_plan

    target = backend.check_device(device)

    def verify(plan) -> Dict[str, float]:
        variant = with_plan(backend, model, plan)
        out = {}
        for key in phases:
            phase, batch = parse_phase(key)
            shape = (batch,) + tuple(input_shape[1:])
            models = [model, variant] if phase == "infer" else [backend.copy(model), backend.copy(variant)]
            with backend.timing_scope(threads):
                fns = backend.runners(models, shape, phase, target, num_classes=num_classes)
                try:
                    base, comp = A.adaptive_interleaved(fns, warmup=1, min_repeat=MIN_ROUNDS,
                                                        max_repeat=MAX_ROUNDS, tol=A.VERIFY_TOLERANCE)
                finally:
                    backend.release(fns)     # MindSpore keeps compiled training cells alive otherwise
            out[key] = paired_ratio(comp, base)
        return out
    return verify
