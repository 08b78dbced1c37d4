"""Calibration statistics against direct NumPy references."""
import os

import numpy as np
import pytest

from lrd_core.calibrate import (Accumulator, Collector, cache_key, cache_path, check_samples, choose_statistics,
                                digest, load_cached, load_stats, patch_rows, save_stats, stats_bytes,
                                validate_batch)
from lrd_core.errors import CalibrationError, LRDError, MismatchError
from lrd_core.layers import LayerInfo

from .resnet_infos import resnet_infos

rng = np.random.default_rng(0)   # exact comparisons only: results do not depend on the draw


def conv_nchw(x, w, stride, padding, dilation):
    """Direct convolution with explicit loops over output pixels and kernel taps."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    t, b, l, r = padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    ho = (h + t + b - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, ho, wo))
    for p in range(ho):
        for q in range(wo):
            for i in range(kh):
                for j in range(kw):
                    tap = xp[:, :, p * stride[0] + i * dilation[0], q * stride[1] + j * dilation[1]]
                    y[:, :, p, q] += tap @ w[:, :, i, j].T
    return y


CASES = [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
         ((3, 2), (2, 1), (1, 2, 0, 1), (1, 2)),
         ((5, 3), (2, 3), (0, 1, 2, 0), (2, 1)),
         ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1))]


@pytest.mark.parametrize("kernel,stride,padding,dilation", CASES)
def test_patch_rows_reproduce_the_convolution(kernel, stride, padding, dilation):
    x = rng.standard_normal((3, 4, 11, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4) + kernel)
    rows = np.concatenate(list(patch_rows(x, kernel, stride, padding, dilation)))
    y = conv_nchw(x.astype(np.float64), w, stride, padding, dilation)
    assert rows.shape == (y.shape[0] * y.shape[2] * y.shape[3], 4 * kernel[0] * kernel[1])
    np.testing.assert_allclose(rows @ w.reshape(5, -1).T, y.transpose(0, 2, 3, 1).reshape(-1, 5), atol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,dilation", CASES)
def test_patch_statistics_give_the_output_energy_and_are_chunk_invariant(kernel, stride, padding, dilation):
    info = LayerInfo("blk.conv", "conv2d", 4, 5, kernel, stride, padding, dilation, input_hw=(11, 9))
    x = rng.standard_normal((5, 4, 11, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4) + kernel)
    big, tiny = Accumulator(info), Accumulator(info, chunk_bytes=64)   # tiny: one output row per block
    big.update(x)
    for i in range(5):
        tiny.update(x[i:i + 1])
    s, t = big.result(), tiny.result()
    y = conv_nchw(x.astype(np.float64), w, stride, padding, dilation)
    wm = w.reshape(5, -1)
    assert s.rows == t.rows == y.shape[0] * y.shape[2] * y.shape[3] and s.samples == 5
    # E||W x||^2 from the statistics equals the mean squared output of the direct convolution
    assert np.trace(wm @ s.cov @ wm.T) == pytest.approx(np.mean(np.sum(y ** 2, axis=1)), rel=1e-12)
    np.testing.assert_allclose(t.gram, s.gram, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s.mean @ wm.T, y.mean(axis=(0, 2, 3)), atol=1e-12)
    assert np.array_equal(s.gram, s.gram.T)


def test_channel_and_dense_statistics_and_output_moment():
    x = rng.standard_normal((4, 6, 5, 7)).astype(np.float32)
    info = LayerInfo("c", "conv2d", 6, 3, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(5, 7))
    acc = Accumulator(info, kind="channel", output=True)
    y = rng.standard_normal((4, 3, 5, 7)).astype(np.float32)
    acc.update(x, y)
    s = acc.result()
    flat = x.transpose(0, 2, 3, 1).reshape(-1, 6).astype(np.float64)
    yflat = y.transpose(0, 2, 3, 1).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(s.cov, flat.T @ flat / 140, rtol=1e-12)
    np.testing.assert_allclose(s.out_cov, yflat.T @ yflat / 140, rtol=1e-12)
    np.testing.assert_allclose(s.centred(), np.cov(flat.T, bias=True), rtol=1e-10, atol=1e-12)
    dense = LayerInfo("fc", "dense", 6, 2, has_bias=True)
    acc = Accumulator(dense)
    tokens = rng.standard_normal((3, 4, 6)).astype(np.float32)
    acc.update(tokens)
    acc.update(flat[:7])
    t = acc.result()
    ref = np.concatenate([tokens.reshape(-1, 6), flat[:7]]).astype(np.float64)
    assert (t.rows, t.samples) == (19, 10)
    np.testing.assert_allclose(t.gram, ref.T @ ref, rtol=1e-12)


def test_memory_choice_for_resnet50_at_224():
    infos = resnet_infos(50, 224)
    choices = choose_statistics(infos, memory_cap=2 * 2 ** 30)
    total = sum(c.bytes for c in choices)
    assert all(c.kind == "patch" for c in choices)
    assert 0.9 * 2 ** 30 < total < 0.95 * 2 ** 30                        # 0.93 GiB kept
    by = {c.name: c for c in choices}
    assert by["layer4.0.conv2"].dim == 512 * 9 and by["fc"].dim == 2048
    capped = choose_statistics(infos, memory_cap=2 ** 29)
    small = [c.name for c in capped if c.kind == "channel"]
    assert small == ["layer4.0.conv2", "layer4.1.conv2", "layer4.2.conv2"]   # largest patches go first
    assert sum(c.bytes for c in capped) <= 2 ** 29 and all(c.reason for c in capped if c.kind == "channel")
    assert stats_bytes(infos[0], "patch") == 147 * 147 * 8 + 147 * 8
    with pytest.raises(CalibrationError, match="cap"):
        choose_statistics(infos, memory_cap=2 ** 20)


@pytest.mark.parametrize("bad,match", [
    (np.ones((2, 4, 6, 6), dtype=np.int64), "dtype int64"),
    (np.ones((2, 5, 6, 6), dtype=np.float32), r"shape \(N, 4, H, W\)"),
    (np.ones((4, 6, 6), dtype=np.float32), r"shape \(N, 4, H, W\)"),
    (np.ones((0, 4, 6, 6), dtype=np.float32), "empty"),
    (np.ones((2, 4, 1, 1), dtype=np.float32), "smaller than the 3x3 kernel"),
    (np.full((2, 4, 6, 6), np.nan, dtype=np.float32), "NaN or Inf"),
])
def test_bad_layer_inputs_raise_one_clear_error(bad, match):
    info = LayerInfo("layer1.0.conv2", "conv2d", 4, 4, (3, 3), input_hw=(6, 6))
    acc = Accumulator(info)
    with pytest.raises(CalibrationError, match=match) as exc:
        acc.update(bad, source="batch 3")
    assert "layer1.0.conv2" in str(exc.value) and isinstance(exc.value, LRDError)
    assert acc.rows == 0                                                   # nothing was accumulated


def test_bad_batches_samples_and_missing_layers():
    with pytest.raises(CalibrationError, match="does not match the model input"):
        validate_batch(np.zeros((2, 1, 32, 32), np.float32), (1, 3, 32, 32), 4)
    with pytest.raises(CalibrationError, match="dtype uint8"):
        validate_batch(np.zeros((2, 3, 32, 32), np.uint8), (1, 3, 32, 32))
    with pytest.raises(CalibrationError, match="Inf"):
        validate_batch(np.full((2, 3, 8, 8), np.inf, np.float32), (1, 3, 8, 8))
    assert validate_batch(np.zeros((5, 3, 8, 8), np.float32), (1, 3, 8, 8)).shape == (5, 3, 8, 8)
    fc = LayerInfo("fc", "dense", 8, 4)
    acc = Accumulator(fc)
    acc.update(rng.standard_normal((6, 8)).astype(np.float32))
    check_samples(acc.result(), 6)
    with pytest.raises(CalibrationError, match="6 calibration vectors are fewer than the rank 7"):
        check_samples(acc.result(), 7)
    col = Collector([fc, LayerInfo("head", "dense", 4, 2)])
    col.update("fc", np.ones((2, 8), np.float32))
    with pytest.raises(CalibrationError, match="no calibration input reached layer"):
        col.result()
    with pytest.raises(CalibrationError, match="not being calibrated"):
        col.update("nope", np.ones((2, 8), np.float32))


def test_save_load_roundtrip_cache_and_keys(tmp_path):
    infos = [LayerInfo("a", "conv2d", 3, 4, (3, 3), (1, 1), (1, 1, 1, 1), input_hw=(6, 6)),
             LayerInfo("fc", "dense", 5, 2, has_bias=True)]
    col = Collector(infos, output=True)
    col.update("a", rng.standard_normal((2, 3, 6, 6)).astype(np.float32), rng.standard_normal((2, 4, 6, 6)))
    col.update("fc", rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((7, 2)))
    stats = col.result()
    weights = {"a.weight": np.ones((4, 3, 3, 3), np.float32)}
    data = [np.zeros((2, 3, 6, 6), np.float32)]
    key = cache_key(infos, digest(weights), digest(data), memory_cap=2 ** 31)
    path = cache_path(key, str(tmp_path))
    save_stats(path, stats, key)
    assert os.listdir(os.path.dirname(path)) == [f"{key}.npz"]              # no temp file left
    back = load_cached(key, str(tmp_path))
    for name, s in stats.items():
        b = back[name]
        assert (b.kind, b.rows, b.samples, b.kernel, b.out_rows) == (s.kind, s.rows, s.samples, s.kernel, s.out_rows)
        assert np.array_equal(b.gram, s.gram) and np.array_equal(b.total, s.total)
        assert np.array_equal(b.out_gram, s.out_gram)
    changed = [cache_key(infos, digest({"a.weight": np.zeros((4, 3, 3, 3), np.float32)}), digest(data),
                         memory_cap=2 ** 31),
               cache_key(infos, digest(weights), digest([np.ones((2, 3, 6, 6), np.float32)]), memory_cap=2 ** 31),
               cache_key(infos[:1], digest(weights), digest(data), memory_cap=2 ** 31),
               cache_key(infos, digest(weights), digest(data), memory_cap=2 ** 30)]
    assert key == cache_key(infos, digest(weights), digest(data), memory_cap=2 ** 31)
    assert len(set(changed + [key])) == 5
    with pytest.raises(MismatchError, match="another model"):
        load_stats(path, key="0" * 32)
    assert load_cached("f" * 32, str(tmp_path)) is None
    with open(path, "wb") as fh:
        fh.write(b"not a zip")
    with pytest.raises(MismatchError, match="recalibrate"):
        load_stats(path)
    assert load_cached(key, str(tmp_path)) is None
