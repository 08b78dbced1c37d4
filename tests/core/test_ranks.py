"""Rank selection (PR, EVBMF, energy) and rank quantization."""
import math

import numpy as np
import pytest

from lrd_core import ranks as R
from lrd_core.cost import decomposed_cost, layer_params
from lrd_core.layers import LayerInfo
from lrd_core.ranks import evbmf_rank, quantize_rank


@pytest.mark.parametrize("q,rounding,raw,full,expected", [
    (32, "nearest", 47.9, 512, 32), (32, "nearest", 48.0, 512, 64), (32, "up", 33, 512, 64),
    (32, "down", 63.9, 512, 32), (32, "down", 5, 512, 32), (32, "nearest", 900, 512, 512),
    (32, "nearest", 10, 16, 16), (1, "nearest", 0.2, 10, 1), (1, "up", 4.1, 10, 5), (8, "nearest", 100, 96, 96),
])
def test_quantize_rules(q, rounding, raw, full, expected):
    assert quantize_rank(raw, q, full, rounding) == expected


def conv_info(cin, cout, k=3, hw=14):
    return LayerInfo("c", "conv2d", cin, cout, (k, k), (1, 1), (k // 2,) * 4, input_hw=(hw, hw))


@pytest.mark.parametrize("cin,cout,k", [(64, 64, 3), (128, 256, 3), (512, 512, 3), (256, 1024, 1), (2048, 1000, 1),
                                        (64, 256, 1), (96, 48, 5)])
@pytest.mark.parametrize("ratio", [1.5, 2.0, 3.0, 5.0])
def test_pr_hits_target_ratio_within_quantization_step(cin, cout, k, ratio):
    info = conv_info(cin, cout, k)
    method = R.method_for(info)
    before = layer_params(info)
    raw = R.select(info, method, "pr", ratio=ratio)
    # unquantized: exact solution of the parameter equation
    if method == "svd":
        assert raw[0] * (cin + cout) == pytest.approx(before / ratio)
    else:
        r_out, r_in = raw
        assert cin * r_in + k * k * r_in * r_out + r_out * cout == pytest.approx(before / ratio)
        assert r_out / r_in == pytest.approx(cout / cin)
    for q in (1, 8, 32):
        ranks = R.quantize(raw, R.full_ranks(info, method), q)
        after = decomposed_cost(info, method, ranks)[0]
        lo = decomposed_cost(info, method, tuple(max(r - q, 1) for r in ranks))[0]
        hi = decomposed_cost(info, method, tuple(r + q for r in ranks))[0]
        assert lo <= before / ratio <= hi, (q, ranks)
        if q == 1:
            assert before / after == pytest.approx(ratio, rel=0.05)


@pytest.mark.parametrize("shape,rank,noise", [((64, 576), 10, 0.1), ((256, 256), 30, 0.1), ((128, 1152), 40, 0.2),
                                              ((100, 50), 5, 0.05), ((512, 2048), 64, 0.1)])
def test_evbmf_recovers_planted_rank(shape, rank, noise):
    rng = np.random.default_rng(1)
    m, n = shape
    signal = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    signal *= np.sqrt(m * n) / np.linalg.norm(signal)   # unit entry variance
    assert evbmf_rank(signal + noise * rng.standard_normal(shape)) == rank
    assert evbmf_rank((signal + noise * rng.standard_normal(shape)).T) == rank


def test_evbmf_on_pure_noise_is_zero():
    rng = np.random.default_rng(2)
    assert evbmf_rank(rng.standard_normal((128, 300))) == 0
    assert evbmf_rank(np.zeros((5, 7))) == 0


def test_vbmf_weakening_interpolates_between_full_and_estimate():
    rng = np.random.default_rng(3)
    core = rng.standard_normal((8, 6, 3, 3))
    w = np.einsum("abhw,oa,ib->oihw", core, rng.standard_normal((64, 8)), rng.standard_normal((32, 6)))
    w += 0.01 * rng.standard_normal(w.shape)
    info = conv_info(32, 64)
    assert R.select(info, "tucker2", "vbmf", weight=w, vbmf_weakening=1.0) == (8, 6)
    assert R.select(info, "tucker2", "vbmf", weight=w, vbmf_weakening=0.0) == (64, 32)
    assert R.select(info, "tucker2", "vbmf", weight=w, vbmf_weakening=0.5) == (36, 19)


def test_energy_rank_against_numpy():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((30, 40)) * np.linspace(3, 0.1, 40)
    s2 = np.linalg.svd(a, compute_uv=False) ** 2
    for e in (0.5, 0.9, 0.99):
        r = R.energy_rank(a, e)
        assert s2[:r].sum() / s2.sum() >= e > s2[: r - 1].sum() / s2.sum()


def test_pr_closed_form_svd():
    assert R.pr_svd_rank(1000, 2048, 2.0) == pytest.approx(1000 * 2048 / (2 * 3048))
    r_out, r_in = R.pr_tucker2_ranks(64, 64, 3, 3, 3.0)
    assert math.isclose(64 * r_in + 9 * r_in * r_out + 64 * r_out, 64 * 64 * 9 / 3.0)
