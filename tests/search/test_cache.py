"""The latency cache: hits and misses, persistence, invalidation on a new framework version."""
import json
import os

from lrd_core.latency import Timing, interleaved, objective_phases, paired_ratio
from lrd_core.latency_cache import LatencyCache, entry_key, environment
from lrd_core.layers import LayerInfo, Role
from lrd_core.profile import Profiler
from lrd_core.search import search_plan

ENV = dict(device="CPU", framework="torch", version="2.13.0", threads=1, host="test-cpu x2")
LAYER = LayerInfo("layer3.0.conv2", "conv2d", 256, 256, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, (14, 14),
                  Role(stage=3))


def test_hits_misses_and_persistence(tmp_path):
    path = str(tmp_path / "lat.json")
    cache = LatencyCache(environment(**ENV), path)
    key = entry_key("infer@8", "sig", "tucker2:64x64")
    assert cache.get(key) is None and (cache.hits, cache.misses) == (0, 1)
    cache.put(key, 2.5, 0.5)
    assert cache.get(key)["ratio"] == 0.5 and (cache.hits, cache.misses) == (1, 1)
    assert not os.path.exists(path)                       # nothing written before save
    cache.save()
    assert os.listdir(tmp_path) == ["lat.json"]           # no temporary file left behind
    again = LatencyCache(environment(**ENV), path)
    assert len(again) == 1 and again.get(key)["ms"] == 2.5 and again.hits == 1 and again.misses == 0


def test_new_version_or_other_host_misses_and_stale_entries_go(tmp_path):
    path = str(tmp_path / "lat.json")
    key = entry_key("train@8", "sig", "original")
    old = LatencyCache(environment(**ENV), path)
    old.put(key, 10.0, 1.0)
    old.save()
    gpu = LatencyCache(environment(**{**ENV, "device": "GPU"}), path)
    gpu.put(key, 1.0, 1.0)
    gpu.save()
    new = LatencyCache(environment(**{**ENV, "version": "2.14.0"}), path)
    assert new.get(key) is None and new.misses == 1
    assert LatencyCache(environment(**{**ENV, "host": "other x64"}), path).get(key) is None
    new.put(key, 9.0, 1.0)
    new.save()
    with open(path) as fh:
        envs = json.load(fh)["envs"]
    versions = sorted((e["env"]["device"], e["env"]["version"]) for e in envs.values())
    assert versions == [("CPU", "2.14.0"), ("GPU", "2.13.0")]     # old CPU 2.13 numbers dropped, GPU kept
    assert LatencyCache(environment(**ENV), path).get(key) is None


def test_unreadable_or_foreign_file_starts_empty(tmp_path):
    path = tmp_path / "lat.json"
    path.write_text("{ not json")
    cache = LatencyCache(environment(**ENV), str(path))
    assert len(cache) == 0
    cache.put("k", 1.0, 1.0)
    cache.save()
    path.write_text(json.dumps({"schema": 999, "envs": {}}))
    assert len(LatencyCache(environment(**ENV), str(path))) == 0


class CountingTimer:
    def __init__(self):
        self.calls = 0

    def __call__(self, info, variants, phase):
        self.calls += 1
        return [Timing(samples=[10.0 if m == "none" else 4.0 + r[0] / 256] * 3) for m, r in variants]


def test_repeated_search_is_served_from_disk_including_the_network_check(tmp_path):
    path = str(tmp_path / "lat.json")
    options = dict(mode="auto", ratio=3.0, rank_multiple=32)
    verified = []

    def verify(plan):
        verified.append(len(plan.decomposed()))
        return {p: 0.5 for p in objective_phases("both", 8)}
    timer = CountingTimer()
    first_prof = Profiler(timer, LatencyCache(environment(**ENV), path))
    first = search_plan([LAYER], options, first_prof, verify=verify)
    assert timer.calls == 3 and verified == [1]           # one timer call per phase, one network check
    assert first_prof.cache.misses == 3 * 4 + 1           # original + 3 ranks per phase, + the network
    first_prof.cache.save()
    prof = Profiler(timer, LatencyCache(environment(**ENV), path))
    second = search_plan([LAYER], options, prof, verify=verify)
    assert timer.calls == 3 and verified == [1]           # nothing timed again
    assert prof.cache.misses == 0 and prof.cache.hits == 3 * 4 + 1
    assert second.to_dict()["layers"] == first.to_dict()["layers"]
    assert second.meta["auto"]["verify"] == first.meta["auto"]["verify"]


def test_interleaved_rounds_and_paired_ratio():
    ticks = iter(range(10_000))
    order = []

    def make(name, cost):
        def fn():
            order.append(name)
            for _ in range(cost - 1):
                next(ticks)
        return fn
    timings = interleaved([make("a", 4), make("b", 2)], warmup=1, repeat=4, min_sample_s=0,
                          clock=lambda: float(next(ticks)))
    assert [len(t.samples) for t in timings] == [4, 4]
    timed = order[4:]                                      # after warm-up and calibration
    assert timed == ["a", "b", "b", "a", "a", "b", "b", "a"]   # rotated order every round
    assert timings[0].samples == [4000.0] * 4 and timings[1].samples == [2000.0] * 4
    assert paired_ratio(timings[1], timings[0]) == 0.5
    assert paired_ratio(Timing([2.0, 4.0, 100.0]), Timing([4.0, 8.0, 10.0])) == 0.5
