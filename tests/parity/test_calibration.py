"""Calibration through the adapters: statistics against NumPy references and across frameworks,
data-aware plans (JSON, compress, reload, cache), bad calibration data."""
import os

import numpy as np
import pytest

from lrd_core import calibrate as C
from lrd_core.api import calibration as K
from lrd_core.errors import CalibrationError, ConfigError, LRDError, MismatchError
from lrd_core.factorize import compose
from lrd_core.factorize.data_aware import output_error
from lrd_core.multistage import StageConfig
from lrd_core.plan import Plan

from ..conftest import perturb_bn

SHAPE = (1, 3, 16, 16)


def tiny(fw, arrays=None, width=8):
    model = fw.models.create_model("resnet18", num_classes=10, stem="cifar", width=width)
    if arrays is not None:
        fw.load_numpy(model, arrays)
    return model


def reference_arrays(width=8):
    import lrd_torch
    return perturb_bn(lrd_torch.state_to_numpy(tiny(lrd_torch, width=width)), seed=3)


def images(n, seed=0, hw=16):
    """Smooth positive images (spatially correlated like natural ones)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, hw // 4, hw // 4)).astype(np.float32)
    return np.repeat(np.repeat(x, 4, axis=2), 4, axis=3) + 0.3 * rng.standard_normal((n, 3, hw, hw)).astype(np.float32)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("LRD_CACHE_DIR", str(path))
    return path


def test_statistics_match_numpy_and_the_other_framework(fw):
    import lrd_torch

    arrays = reference_arrays()
    model, twin = tiny(fw, arrays), tiny(lrd_torch, arrays)
    x = images(40)
    batches = [x[:16], x[16:32], x[32:]]
    infos = fw.inspect(model, input_shape=SHAPE)
    got = K.statistics(fw.BACKEND, model, infos, batches, cache=False)
    ref = K.statistics(lrd_torch.BACKEND, twin, lrd_torch.inspect(twin, input_shape=SHAPE), batches, cache=False)
    assert set(got.stats) == {i.name for i in infos}
    worst = max(np.abs(got.stats[n].gram - ref.stats[n].gram).max() / np.abs(ref.stats[n].gram).max()
                for n in got.stats)
    assert worst < 1e-5                                            # 3e-7 measured
    stem = next(i for i in infos if i.name == "conv1")            # reads the images themselves: exact patches
    rows = np.concatenate(list(C.patch_rows(x.astype(np.float64), stem.kernel, stem.stride, stem.padding,
                                            stem.dilation)))
    s = K.statistics(fw.BACKEND, model, [stem], batches, cache=False, max_rows=None).stats["conv1"]
    assert (s.kind, s.rows, s.samples) == ("patch", 40 * 256, 40)
    np.testing.assert_allclose(s.gram, rows.T @ rows, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(s.total, rows.sum(axis=0), rtol=1e-5, atol=1e-3)
    # the kept rows are sampled where positions far outnumber what d needs (16 d per layer)
    deep = got.stats["layer1.0.conv1"]
    assert deep.rows == 40 * int(np.ceil(C.PATCH_MAX_ROWS * 72 / 40)) < 40 * 256


def test_data_aware_plan_json_compress_reload_and_cache(fw, cache_dir, tmp_path):
    arrays = reference_arrays()
    model = tiny(fw, arrays)
    x, held = images(64), images(32, seed=5)
    plan = fw.plan(model, input_shape=SHAPE, mode="mode3", ratio=2.0, rank_multiple=4, calibration=x,
                   data_aware=True, calibration_cache=str(cache_dir))
    assert plan.meta["calibration"]["cache"] == "miss" and plan.meta["calibration"]["samples"] == 64
    d = plan.to_dict()
    aware = [l for l in d["layers"] if l.get("data_aware")]
    assert len(aware) == len(plan.decomposed()) == 18
    for l in aware:
        assert l["method"] in ("svd", "tucker2")
        c = l["calibration"]
        assert {"stats", "rows", "floor", "floor_kind", "floored", "output_error", "weight_space_error"} <= set(c)
        assert c["floor"] == 1e-3 and c["output_error"] < c["weight_space_error"]
    path = plan.to_json(str(tmp_path / "plan.json"))
    back = Plan.from_json(path)
    assert [lp.data_aware for lp in back.layers] == [lp.data_aware for lp in plan.layers]
    assert back["fc"].calibration == plan["fc"].calibration
    # compress: in-process chains == chains recomputed from the cached statistics of the JSON plan
    ref = fw.predict(model, held)
    a, b = tiny(fw, arrays), tiny(fw, arrays)
    fw.compress(a, plan)
    fw.compress(b, back)
    ya, yb = fw.predict(a, held), fw.predict(b, held)
    np.testing.assert_allclose(ya, yb, atol=1e-5)
    assert np.abs(ya - ref).max() > 1e-3                           # something was decomposed
    # held-out output error of one layer is below the weight-space chain's at the same ranks
    w = fw.BACKEND.weight(dict(fw.BACKEND.named_layers(model))["layer3.0.conv2"])
    held_stats = K.statistics(fw.BACKEND, model, [plan["layer3.0.conv2"].info], [held], cache=False)
    da = compose(fw.multistage.read_chains(a, plan)["layer3.0.conv2"])
    ws = fw.plan(model, input_shape=SHAPE, mode="mode3", ratio=2.0, rank_multiple=4)
    wsm = tiny(fw, arrays)
    fw.compress(wsm, ws)
    wsc = compose(fw.multistage.read_chains(wsm, ws)["layer3.0.conv2"])
    cov = held_stats.stats["layer3.0.conv2"].cov
    assert output_error(w, da, cov) < output_error(w, wsc, cov)
    # a second plan on the same model and data is a cache hit with the same decisions
    again = fw.plan(model, input_shape=SHAPE, mode="mode3", ratio=2.0, rank_multiple=4, calibration=x,
                    data_aware=True, calibration_cache=str(cache_dir))
    assert again.meta["calibration"]["cache"] == "hit"
    assert [l.get("calibration") for l in again.to_dict()["layers"]] == [l.get("calibration") for l in d["layers"]]
    # without the cache the JSON plan needs the data again; with it, the result is the same
    empty = str(tmp_path / "empty")
    os.environ["LRD_CACHE_DIR"] = empty
    with pytest.raises(CalibrationError, match="calibration data again"):
        fw.compress(tiny(fw, arrays), back)
    c = tiny(fw, arrays)
    fw.compress(c, back, calibration=x)
    np.testing.assert_allclose(fw.predict(c, held), ya, atol=1e-5)
    # other weights than the ones calibrated: refused
    other = tiny(fw, perturb_bn(arrays, seed=9))
    os.environ["LRD_CACHE_DIR"] = str(cache_dir)
    with pytest.raises(MismatchError, match="weights differ"):
        fw.compress(other, back)


def test_saved_data_aware_model_rebuilds_freezes_and_recompresses(fw, tmp_path, cache_dir):
    arrays = reference_arrays()
    model = tiny(fw, arrays)
    plan = fw.plan(model, input_shape=SHAPE, mode="mode3", ratio=2.0, rank_multiple=4, calibration=images(48),
                   data_aware=True)
    fw.compress(model, plan)
    x = images(8, seed=2)
    y = fw.predict(model, x)
    fw.save(model, plan, str(tmp_path / "c"))
    back = fw.load(str(tmp_path / "c"), tiny(fw))
    np.testing.assert_allclose(fw.predict(back, x), y, atol=1e-6)
    fw.freeze_phase(back, plan, {"policy": "sequential"}, phase=0)        # SVD: first, Tucker-2: first trains
    frozen = set(fw.frozen_names(back))
    assert "layer3.0.conv2.1.weight" in frozen and "layer3.0.conv2.0.weight" not in frozen
    fmt = "MINDIR" if fw.FRAMEWORK == "mindspore" else "ONNX"
    report = fw.export(back, str(tmp_path / f"net.{fmt.lower()}"), input_shape=(1, 3, 16, 16), format=fmt)
    assert report["max_abs_diff"] < 1e-4                               # the exported graph checked on reload
    new = fw.multistage.next_plan(back, plan, StageConfig(rank_selection="pr", ratios=(3.0,)), 2)
    assert new.totals["params_after"] < plan.totals["params_after"]
    fw.multistage.recompress(back, plan, new)
    assert np.isfinite(fw.predict(back, x)).all()


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 1, 16, 16), np.float32), "does not match the model input"),
    (np.zeros((4, 3, 16, 16), np.uint8), "dtype uint8"),
    (np.full((4, 3, 16, 16), np.nan, np.float32), "NaN or Inf"),
    (np.full((4, 3, 16, 16), 3e38, np.float32), "NaN or Inf"),      # finite inputs, overflowing activations
    ([], "empty"),
])
def test_bad_calibration_data_is_one_clear_error_and_writes_nothing(fw, cache_dir, bad, match):
    model = tiny(fw, reference_arrays())
    with pytest.raises(CalibrationError, match=match) as exc:
        fw.plan(model, input_shape=SHAPE, mode="mode3", rank_multiple=4, calibration=bad, data_aware=True)
    assert isinstance(exc.value, LRDError) and "\n" not in str(exc.value)
    assert not cache_dir.exists() or not any(cache_dir.rglob("*"))


def test_too_few_samples_for_the_rank_and_missing_data(fw, cache_dir):
    model = tiny(fw, reference_arrays())
    with pytest.raises(CalibrationError, match="fewer than the rank"):       # fc: 2 vectors, rank 8
        fw.plan(model, input_shape=SHAPE, mode=None, include=["fc"], rank_selection="manual", ranks={"fc": 8},
                calibration=images(2), data_aware=True)
    with pytest.raises(CalibrationError, match="calibration="):
        fw.plan(model, input_shape=SHAPE, mode="mode3", data_aware=True)
    with pytest.raises(ConfigError, match="sequential"):
        fw.plan(model, input_shape=SHAPE, mode="mode3", sequential=True, calibration=images(4))
    with pytest.raises(ConfigError, match="calibration data is used by"):
        fw.plan(model, input_shape=SHAPE, mode="mode3", calibration=images(4))


def test_sequential_statistics_are_taken_after_the_earlier_layers(fw, cache_dir):
    arrays = reference_arrays()
    model = tiny(fw, arrays)
    x = images(32)
    names = ["layer1.0.conv1", "layer1.0.conv2"]
    plan = fw.plan(model, input_shape=SHAPE, mode=None, include=names, ratio=2.0, rank_multiple=4, calibration=x,
                   data_aware=True, sequential=True)
    cal = plan.calibration
    assert plan.meta["calibration"]["sequential"] and set(cal.stats) == set(names)
    first = tiny(fw, arrays)                           # layer1.0.conv1 replaced, then layer1.0.conv2 observed
    fw.compress(first, fw.plan(first, input_shape=SHAPE, mode=None, include=names[:1], ratio=2.0, rank_multiple=4,
                               calibration=x, data_aware=True))
    seen = K.statistics(fw.BACKEND, first, [plan[names[1]].info], [x], cache=False).stats[names[1]]
    np.testing.assert_allclose(cal.stats[names[1]].gram, seen.gram, rtol=1e-5, atol=1e-6 * np.abs(seen.gram).max())
    plain = K.statistics(fw.BACKEND, model, [plan[names[1]].info], [x], cache=False).stats[names[1]]
    assert np.abs(plain.gram - seen.gram).max() > 1e-3 * np.abs(seen.gram).max()


def test_a_torch_plan_compresses_the_mindspore_twin_alike(lrd_torch, lrd_mindspore, cache_dir, tmp_path):
    arrays = reference_arrays()
    x, held = images(48), images(8, seed=4)
    source = tiny(lrd_torch, arrays)
    plan = lrd_torch.plan(source, input_shape=SHAPE, mode="mode3", ratio=2.0, rank_multiple=4, calibration=x,
                          data_aware=True)
    lrd_torch.compress(source, plan)
    back = Plan.from_json(plan.to_json(str(tmp_path / "plan.json")))      # chains from the shared cache
    for p in (plan, back):
        twin = tiny(lrd_mindspore, arrays)
        lrd_mindspore.compress(twin, p)
        diff = np.abs(lrd_mindspore.predict(twin, held) - lrd_torch.predict(source, held)).max()
        assert diff < 1e-4
