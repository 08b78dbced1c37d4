"""Sequential sampling of interleaved timings, on a fake clock."""
import pytest

from lrd_core import adaptive_timing as A
from lrd_core.latency import Timing


class Clock:
    """Each callable advances the clock by its next duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def fn(self, durations):
        it = iter(durations)

        def run():
            self.now += next(it)
        return run


def run(durations_per_fn, **kw):
    clock = Clock()
    fns = [clock.fn(d) for d in durations_per_fn]
    return A.adaptive_interleaved(fns, clock=clock, min_sample_s=0.0, **kw)


def test_settled_ratios_stop_after_the_minimum_rounds():
    steady = [[0.1] * 20, [0.05] * 20, [0.08] * 20]
    out = run(steady, warmup=1, min_repeat=3, max_repeat=7)
    assert [len(t.samples) for t in out] == [3, 3, 3]
    assert out[1].median_ms == pytest.approx(50.0)


def test_noisy_ratios_near_one_run_every_round_and_clear_ones_stop():
    noisy = [[0.1] * 20, [0.1, 0.1, 0.09, 0.11, 0.095, 0.105, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]]
    assert [len(t.samples) for t in run(noisy, warmup=1, min_repeat=3, max_repeat=7)] == [7, 7]
    clear = [[0.1] * 20, [0.05, 0.05, 0.05, 0.06, 0.04, 0.05, 0.05, 0.05, 0.05]]     # spread 40%, all < 0.95
    assert [len(t.samples) for t in run(clear, warmup=1, min_repeat=3, max_repeat=7)] == [3, 3]


def test_fixed_rounds_when_switched_off(monkeypatch):
    monkeypatch.setattr(A, "ADAPTIVE", False)
    steady = [[0.1] * 20, [0.05] * 20]
    assert [len(t.samples) for t in run(steady, warmup=1, min_repeat=3, max_repeat=7)] == [7, 7]


def test_settled_rule():
    base = Timing(samples=[10.0, 10.0, 10.0])
    assert A.ratios_settled([base, Timing(samples=[5.0, 5.1, 4.9])], 0.04)
    assert not A.ratios_settled([base, Timing(samples=[9.5, 10.5, 10.0])], 0.04)
    assert A.ratios_settled([base, Timing(samples=[20.0, 13.0, 30.0])], 0.04)        # clearly slower
    assert not A.ratios_settled([base, Timing(samples=[])], 0.04)
