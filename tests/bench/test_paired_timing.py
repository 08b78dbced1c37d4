"""``lrd bench model`` times the original beside one variant at a time: paired ratios, a tick per round,
and each variant's networks released before the next one is built."""
import contextlib
import gc
import json
import weakref

import numpy as np
import pytest

from lrd_bench.timing import rounds, time_phase
from lrd_cli.main import main


class _Net:
    def __init__(self, ms_per_call):
        self.ms = ms_per_call


class _FakeBackend:
    """Runners that advance a fake clock by each network's fixed cost; records how many variants are alive."""

    def __init__(self):
        self.now = 0.0
        self.alive = weakref.WeakSet()
        self.most_alive = 0
        self.released = []

    def clock(self):
        return self.now

    def check_device(self, device):
        return device

    @contextlib.contextmanager
    def timing_scope(self, threads=None):
        yield 1

    def copy(self, net):
        return _Net(net.ms)

    def runners(self, models, shape, phase, device, num_classes=None):
        def run(net):
            def go():
                self.now += go.net.ms / 1000.0
            go.net = net
            return go
        return [run(m) for m in models]

    def release(self, runners):
        self.released += [fn.net.ms for fn in runners]

    def make(self, ms_per_call):
        def build():
            gc.collect()
            net = _Net(ms_per_call)
            self.alive.add(net)
            self.most_alive = max(self.most_alive, len(self.alive))
            return net
        return build


@pytest.mark.parametrize("phase", ["infer", "train"])
def test_pairs_give_the_known_ratios_and_one_tick_per_round(phase):
    backend, ticks = _FakeBackend(), []
    costs = [5.0, 20.0, 10.0]                    # ms per call; the original takes 10 ms
    base, pairs = time_phase(backend, _Net(10.0), [backend.make(c) for c in costs], (8, 3, 4, 4), "CPU", phase,
                             warmup=1, repeat=4, tick=lambda: ticks.append(1), clock=backend.clock)
    assert len(ticks) == rounds(3, 4) == 12
    assert len(pairs) == 3 and [len(p.variant.samples) for p in pairs] == [4, 4, 4]
    assert len(base.samples) == 12 and base.median_ms == pytest.approx(10.0)
    assert [float(np.median(p.round_ratios)) for p in pairs] == pytest.approx([0.5, 2.0, 1.0])
    assert backend.most_alive == 1 and len(backend.alive) == 0      # one variant at a time, none kept
    assert backend.released == costs + [10.0]               # each variant's runner when done, then the original's


def test_the_original_alone_still_ticks_every_round():
    backend, ticks = _FakeBackend(), []
    base, pairs = time_phase(backend, _Net(3.0), [], (1, 3, 4, 4), "CPU", "infer", warmup=0, repeat=3,
                             tick=lambda: ticks.append(1), clock=backend.clock)
    assert pairs == [] and len(ticks) == rounds(0, 3) == 3 and len(base.samples) == 3
    assert base.number == 2 and base.median_ms == pytest.approx(3.0)     # 3 ms < 4 ms: two calls per sample


def test_a_timed_variant_is_released(fw):
    """A compressed ViT timed for training beside the original is gone after its rounds (its compiled step
    cell, optimizer and runner hold it no longer)."""
    from lrd_core.frameworks import adapter

    model = fw.models.create_model("vit_tiny", seed=0, image_size=16, patch_size=8, depth=1, num_classes=4)
    plan = fw.plan(model, input_shape=(1, 3, 16, 16), mode="mlp", ratio=2.0, rank_multiple=8)
    refs = []

    def build():
        net = fw.latency.with_plan(model, plan)
        refs.append(weakref.ref(net))
        return net
    base, pairs = time_phase(adapter(fw.FRAMEWORK).BACKEND, model, [build, build], (2, 3, 16, 16), "CPU", "train",
                             warmup=0, repeat=2, threads=1, num_classes=4)
    gc.collect()
    assert len(refs) == 2 and [r() for r in refs] == [None, None]
    assert [len(p.variant.samples) for p in pairs] == [2, 2] and len(base.samples) == 4
    assert all(r > 0 for p in pairs for r in p.round_ratios)


class _Bar:
    made = []

    def __init__(self, total, desc, unit="it", progress=None):
        self.total, self.unit, self.n = total, unit, 0
        _Bar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, *a, **k):
        pass


def test_bench_model_ticks_once_per_round(fw, tmp_path, monkeypatch, capsys):
    import lrd_core.progress

    monkeypatch.setattr(lrd_core.progress, "bar", _Bar)
    _Bar.made.clear()
    out = tmp_path / "r.json"
    code = main(["bench", "model", "--framework", fw.FRAMEWORK, "--model", "vit_tiny", "--input-size", "16",
                 "--patch-size", "8", "--depth", "1", "--num-classes", "4", "--batch", "2", "--modes",
                 "original,mlp,all", "--exclude", r"patch_embed\.proj", "--ratio", "2", "--rank-multiple", "8",
                 "--sequential", "all", "--repeat", "2", "--warmup", "0", "--threads", "1", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    # infer bs2 and bs1: 2 variants x 2 rounds each; train: (2 variants + 2 freezing phases of all) x 2 rounds
    timing = [b for b in _Bar.made if b.unit == "round"]
    assert len(timing) == 1 and timing[0].total == timing[0].n == 2 * 2 + 2 * 2 + 4 * 2
    rows = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    assert list(rows) == ["original", "mlp", "all", "all+sequential"]
    for row in (rows["mlp"], rows["all"]):
        for key in ("infer", "infer_bs1", "train"):
            assert len(row[key + "_round_ratios"]) == 2
            assert row[key + "_ms"] == pytest.approx(rows["original"][key + "_ms"] * row[key + "_ratio"])
        assert row["infer_throughput"] == pytest.approx(2000.0 / row["infer_ms"])
    seq = rows["all+sequential"]
    assert seq["freeze_phases"] == len(seq["train_phase_ratios"]) == 2
    assert seq["train_ratio"] == pytest.approx(np.mean(seq["train_phase_ratios"]))
    assert seq["train_ms"] == pytest.approx(rows["original"]["train_ms"] * seq["train_ratio"])
