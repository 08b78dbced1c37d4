"""The layer timer builds each variant of a layer shape once for all phases, in both adapters."""
import importlib

import numpy as np

from lrd_core.api import timing as T
from lrd_core.latency import Timing

from .test_search import conv

A = conv("layer1.0.conv2", 8, 8, 3, 8, 1)
B = conv("layer1.1.conv2", 8, 8, 3, 8, 1)          # same shape as A
C = conv("layer2.0.conv2", 8, 16, 3, 4, 2)


def test_variants_are_built_once_per_shape_across_phases(fw, monkeypatch):
    backend = importlib.import_module(f"lrd_{fw.FRAMEWORK}.backend").BACKEND
    built = []
    real = T.layer_module

    def counting(backend_, info, method="none", ranks=None, seed=0):
        built.append((info.name, method, ranks))
        return real(backend_, info, method, ranks, seed)
    monkeypatch.setattr(T, "layer_module", counting)
    timer = T.layer_timer(backend, "CPU", threads=1 if fw.FRAMEWORK == "torch" else None, repeat=3)
    variants = [("none", None), ("tucker2", (4, 4)), ("tucker2", (2, 2))]
    for phase in ("infer@1", "infer@2", "train@2"):
        out = timer(A, variants, phase)
        assert len(out) == 3 and all(isinstance(t, Timing) and len(t.samples) >= 2 for t in out)
        assert all(np.isfinite(t.median_ms) and t.median_ms > 0 for t in out)
    assert built == [(A.name, m, r) for m, r in variants]        # three phases, one build per variant
    timer(B, variants[:2], "infer@1")                            # same shape: nothing new
    assert len(built) == 3
    timer(C, variants[:2], "train@2")                            # another shape: built afresh
    timer(A, variants[:1], "infer@1")                            # ... and A's layers were let go
    assert built[3:] == [(C.name, "none", None), (C.name, "tucker2", (4, 4)), (A.name, "none", None)]


def test_the_search_freezes_the_collector_only_while_it_runs():
    import gc

    before = gc.get_freeze_count()
    with T.quiet_collector():
        frozen = gc.get_freeze_count()
        garbage = [[]]
        garbage[0].append(garbage)                   # a cycle made inside is still collectable
        del garbage
        assert gc.collect() >= 1
    assert frozen > before and gc.get_freeze_count() == 0
