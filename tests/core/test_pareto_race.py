"""mode="pareto"'s race against the fixed modes, with a timer whose whole-network times are given."""
import pytest

from lrd_core.api import pareto_race as R
from lrd_core.pareto import PICKS, Choice, LayerTable, estimate, pareto_front, pick

BASE_LAT, BASE_PARAMS = 100.0, 1000.0


def tables():
    """Three layers; options: none, a small saving, a large saving (latency and params)."""
    out = []
    for k, drop in enumerate((0.01, 0.02, 0.03)):
        out.append(LayerTable(f"l{k}", [Choice(), Choice("svd", (8,), drop, -3.0, -150.0),
                                        Choice("svd", (4,), 4 * drop, -8.0, -250.0)]))
    return out


class Timer:
    """``measured(index) -> objective time`` for every network; the original's phase ms are 10 and 30."""

    def __init__(self, measured):
        self.measured, self.calls = measured, []

    def __call__(self, plans):
        self.calls.append([p for p in plans])
        ratios = [{"infer@1": self.measured(p), "train@8": self.measured(p)} for p in plans]
        return {"infer@1": 10.0, "train@8": 30.0}, ratios


def setup(measured, refs=None):
    ts = tables()
    front = pareto_front(ts, BASE_LAT, BASE_PARAMS)
    ok = PICKS["params"][0]
    feasible = lambda p: ok(p, 1.5)                                          # noqa: E731
    first = pick(front, 1.5, "params")
    assert first.index == (1, 1, 1)                                          # 1.82x, the least drop
    refs = refs or {"vanilla": [2, 2, 2], "mode3": [0, 2, 2]}
    return ts, front, feasible, first, refs, Timer(measured)


def test_objective_time_weights_phases_by_the_originals_milliseconds():
    assert R.objective_time({"a": 0.5, "b": 1.0}, {"a": 10.0, "b": 30.0}) == pytest.approx((5 + 30) / 40)


def test_references_keep_modes_meeting_the_budget_once_per_selection():
    ts = tables()
    fixed = {"vanilla": [1, 1, 1], "mode1": [0, 0, 1], "mode2": [1, 1, 1], "mode3": [0, 2, 2]}
    refs = R.references(fixed, ts, BASE_LAT, BASE_PARAMS, 1.5)
    # vanilla: 1000 / 550 = 1.82x, mode3: 1000 / 500 = 2x, mode1: 1000 / 850 = 1.18x (out); mode2 = vanilla
    assert refs == {"vanilla": [1, 1, 1], "mode3": [0, 2, 2]}


def test_a_pick_faster_than_the_best_reference_is_accepted_at_once():
    times = {(2, 2, 2): 0.7, (0, 2, 2): 0.8}
    ts, front, feasible, first, refs, timer = setup(lambda index: times.get(index, 0.5))
    point, ratios, record = R.race(front, first, feasible, refs, tuple, timer)
    assert point == first and record["accepted"] == 1
    assert record["attempts"][0]["reference"] == "vanilla"                   # the faster reference
    assert record["attempts"][0]["reference_measured"] == pytest.approx(0.7)
    assert ratios == {"infer@1": 0.5, "train@8": 0.5}
    assert timer.calls == [[(2, 2, 2), (0, 2, 2), (1, 1, 1)]]                # both references + the pick


def test_a_slower_pick_is_replaced_by_the_least_drop_point_estimated_faster_by_the_gap():
    # whole-network time = the additive estimate + 0.05: the pick measures slower than mode3 by a gap
    # the next candidate must close on the estimate
    ts, front, feasible, first, refs, timer = setup(
        lambda index: estimate(ts, index, BASE_LAT, BASE_PARAMS).latency_ratio + (0.05 if index != (0, 2, 2) else 0.0),
        refs={"mode3": [0, 2, 2]})
    point, ratios, record = R.race(front, first, feasible, refs, tuple, timer)
    ref = estimate(ts, [0, 2, 2], BASE_LAT, BASE_PARAMS).latency_ratio
    gap = first.latency_ratio + 0.05 - ref
    assert record["accepted"] is not None and record["accepted"] > 1
    expect = min((p for p in front if feasible(p) and p.latency_ratio < first.latency_ratio - gap),
                 key=lambda p: (p.drop, p.latency_ratio, p.params))
    assert record["attempts"][1]["drop_estimated"] == pytest.approx(expect.drop, abs=1e-6)
    assert point.latency_ratio + 0.05 <= ref and feasible(point)
    assert len(timer.calls[0]) == 2 and len(timer.calls[1]) == 2             # the reference + the candidate


def test_no_point_beats_the_reference_keeps_the_least_drop_pick():
    ts, front, feasible, first, refs, timer = setup(lambda index: 0.1 if index == (0, 2, 2) else 0.9)
    point, ratios, record = R.race(front, first, feasible, refs, tuple, timer)
    assert point == first and record["accepted"] is None
    assert 1 < len(record["attempts"]) <= R.ATTEMPTS
    assert ratios == {"infer@1": 0.9, "train@8": 0.9}


def test_replacements_stay_more_accurate_than_the_references():
    # every point but the (fast) reference measures slow; the only estimated-faster points under the budget
    # lose the accuracy advantage over the reference, so the race stops and keeps the least-drop pick
    ts, front, feasible, first, refs, timer = setup(lambda index: 0.1 if index == (0, 2, 2) else 0.9,
                                                    refs={"mode3": [0, 2, 2]})
    ref_drop = 0.1                                      # as if the reference were estimated this accurate
    point, _, record = R.race(front, first, feasible, refs, tuple, timer, max_drop=ref_drop)
    assert point == first and record["accepted"] is None
    assert [a["drop_estimated"] for a in record["attempts"]] == pytest.approx([0.06, 0.06, 0.09])   # then none < 0.1
    unbounded = R.race(front, first, feasible, refs, tuple, Timer(timer.measured))[2]
    assert any(a["drop_estimated"] >= ref_drop for a in unbounded["attempts"])


def test_estimates_off_in_scale_are_calibrated_on_the_measured_networks():
    # inside the network every saving is three times its estimate (as MindSpore measured on the digits model):
    # no point is estimated faster than the pick by the measured gap, so the race fits measured = a + s * estimated
    # to the reference and the pick and takes the least-drop point that line predicts faster than the reference
    ts, front, feasible, first, refs, timer = setup(
        lambda index: 1.0 - 3.0 * (1.0 - estimate(ts, index, BASE_LAT, BASE_PARAMS).latency_ratio),
        refs={"mode3": [0, 2, 2]})
    ref = estimate(ts, [0, 2, 2], BASE_LAT, BASE_PARAMS)
    point, ratios, record = R.race(front, first, feasible, refs, tuple, timer, max_drop=ref.drop,
                                   ref_estimates={"mode3": ref.latency_ratio})
    assert record["accepted"] == 2
    assert record["attempts"][0]["next_by"] == "calibrated"
    assert record["attempts"][0]["calibration"] == pytest.approx({"a": -2.0, "s": 3.0, "c": 0.0})
    assert point.index == (2, 2, 1)      # drop 0.15 < mode3 0.20, estimated 0.81 < 0.84 ((2, 2, 0) only ties it)
    assert ratios["infer@1"] == pytest.approx(1.0 - 3.0 * 0.19)
    # without the references' estimates there is one measured point per estimate: the old crawl, one step faster
    crawl = R.race(front, first, feasible, refs, tuple, Timer(timer.measured), max_drop=ref.drop)[2]
    assert crawl["attempts"][0]["next_by"] == "faster"
    assert crawl["attempts"][1]["drop_estimated"] == pytest.approx(0.06)     # (2, 1, 0): the least drop, 0.89


def test_calibration_needs_two_estimates_and_a_positive_slope():
    assert R.calibration([(0.8, 1, 0.5), (0.9, 1, 0.8)]) == pytest.approx({"a": -1.9, "s": 3.0, "c": 0.0})
    assert R.calibration([(0.8, 1, 0.5), (0.8, 2, 0.7)]) is None
    assert R.calibration([(0.8, 1, 0.8), (0.9, 1, 0.5)]) is None
    assert R.calibration([(0.8, 1, 0.5)]) is None
    # four records of full rank: the per-layer term is fitted (measured = 0.1 + 0.9 e - 0.05 n, exactly)
    recs = [(e, n, 0.1 + 0.9 * e - 0.05 * n) for e, n in ((0.8, 2), (0.7, 5), (0.9, 1), (0.75, 3))]
    assert R.calibration(recs) == pytest.approx({"a": 0.1, "s": 0.9, "c": -0.05})
    # the same counts everywhere: no count term, a line
    assert R.calibration([(e, 2, m) for e, _, m in recs])["c"] == 0.0


def test_a_per_layer_saving_the_estimates_miss_is_calibrated_from_four_networks():
    # inside the network every decomposed layer saves 0.1 more than its estimate (MindSpore's slow original
    # kernels): a pick decomposing two layers loses to the two-layer references, and the calibration on the
    # three references and the pick finds the three-layer point that wins
    def measured(index):
        return estimate(ts, index, BASE_LAT, BASE_PARAMS).latency_ratio - 0.1 * R.decomposed_count(index)
    ts, front, feasible, _, _, timer = setup(measured)
    first = next(p for p in front if p.index == (2, 1, 0))                   # drop 0.06, estimated 0.89, 1.67x
    refs = {"mode3": [0, 2, 2], "mode1": [2, 2, 0], "mode5": [0, 0, 2]}
    est = {m: estimate(ts, i, BASE_LAT, BASE_PARAMS) for m, i in refs.items()}
    point, ratios, record = R.race(front, first, feasible, refs, tuple, timer, max_drop=0.12,
                                   ref_estimates={m: e.latency_ratio for m, e in est.items()})
    assert record["attempts"][0]["next_by"] == "calibrated"
    assert record["attempts"][0]["calibration"] == pytest.approx({"a": 0.0, "s": 1.0, "c": -0.1}, abs=1e-6)
    assert record["accepted"] == 2 and point.index == (1, 1, 1)             # 0.91 - 0.3 = 0.61 < mode3's 0.64
    assert record["attempts"][1]["layers"] == 3
    assert ratios["infer@1"] == pytest.approx(0.61)
