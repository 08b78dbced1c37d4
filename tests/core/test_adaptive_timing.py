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
    monkeypatch.setattr(A, "MODE", "fixed")
    steady = [[0.1] * 20, [0.05] * 20]
    assert [len(t.samples) for t in run(steady, warmup=1, min_repeat=3, max_repeat=7)] == [7, 7]


def test_settled_rule():
    base = Timing(samples=[10.0, 10.0, 10.0])
    assert A.ratios_settled([base, Timing(samples=[5.0, 5.1, 4.9])], 0.04)
    assert not A.ratios_settled([base, Timing(samples=[9.5, 10.5, 10.0])], 0.04)
    assert A.ratios_settled([base, Timing(samples=[20.0, 13.0, 30.0])], 0.04)        # clearly slower
    assert not A.ratios_settled([base, Timing(samples=[])], 0.04)


class Counting(Clock):
    """A fake clock that also counts the calls of each callable."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def fn(self, durations):
        k = len(self.calls)
        self.calls.append(0)
        it = iter(durations)

        def run():
            self.calls[k] += 1
            self.now += next(it)
        return run


def counted(durations_per_fn, **kw):
    clock = Counting()
    fns = [clock.fn(d) for d in durations_per_fn]
    return A.adaptive_interleaved(fns, clock=clock, min_sample_s=0.0, **kw), clock.calls


@pytest.mark.parametrize("mode, calls", [("lean", 4), ("sequential", 6), ("fixed", 10)])
def test_lean_mode_keeps_the_timed_warm_up_round_when_it_agrees(mode, calls):
    steady = [[0.1] * 20, [0.05] * 20]
    out, made = counted(steady, warmup=2, min_repeat=3, max_repeat=7, mode=mode)
    assert made == [calls, calls]             # lean: 1 untimed + 1 provisional + 2 rounds; sequential: +calibration
    assert [len(t.samples) for t in out] == [3 if mode != "fixed" else 7] * 2
    assert out[1].median_ms == pytest.approx(50.0) and out[0].median_ms == pytest.approx(100.0)


def test_a_cold_provisional_round_that_disagrees_is_dropped():
    # the original's first call is cold (0.2 s): its ratio 0.5 disagrees with the warm rounds' 1.0
    cold = [[0.2] + [0.1] * 20, [0.1] * 21]
    out, made = counted(cold, warmup=1, min_repeat=2, max_repeat=5, tol=0.05)
    assert [t.samples for t in out] == [[pytest.approx(100.0)] * 2] * 2     # provisional gone, 2 warm rounds
    assert made == [3, 3]


def test_whole_network_check_settles_in_two_calls_per_network():
    out, made = counted([[1.0] * 9, [0.5] * 9], warmup=1, min_repeat=2, max_repeat=5, tol=0.05)
    assert made == [2, 2] and [len(t.samples) for t in out] == [2, 2]
    assert out[1].samples[0] / out[0].samples[0] == pytest.approx(0.5)


def test_one_timed_round_at_least():
    out, made = counted([[0.1] * 9, [0.05] * 9], warmup=1, min_repeat=1, max_repeat=5)
    assert made == [2, 2] and [len(t.samples) for t in out] == [2, 2]
