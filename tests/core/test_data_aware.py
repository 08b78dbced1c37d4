"""Data-aware SVD and Tucker-2 against NumPy references and the weight-space methods."""
import numpy as np
import pytest
from scipy.optimize import minimize

from lrd_core.calibrate import Accumulator
from lrd_core.errors import CalibrationError, ConfigError, RankError
from lrd_core.factorize import compose, skeleton, svd, tucker2
from lrd_core.factorize.data_aware import (data_aware_tucker2, error_curve, output_error, svd_error_curve,
                                           tucker2_error_curve, whitened_svd)
from lrd_core.layers import LayerInfo


def correlated(n, dim, mix_seed=1, seed=0):
    """Rows with a fixed, strongly correlated (decaying spectrum) distribution, ReLU'd."""
    mix = np.random.default_rng(mix_seed).standard_normal((dim, dim)) * np.exp(-np.arange(dim) / 4.0)
    return np.maximum(np.random.default_rng(seed).standard_normal((n, dim)) @ mix.T, 0)


def correlated_images(n, c, hw, seed):
    flat = correlated(n * hw * hw, c, mix_seed=2, seed=seed).reshape(n, hw, hw, c).transpose(0, 3, 1, 2)
    return flat + 0.5 * np.roll(flat, 1, axis=2) + 0.5 * np.roll(flat, 1, axis=3)   # spatial correlation


def second_moment(x):
    return x.T @ x / len(x)


def test_whitened_svd_attains_the_eckart_young_bound():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 40))
    cov = second_moment(correlated(400, 40))
    s = np.linalg.svd(w @ np.linalg.cholesky(cov), compute_uv=False)        # any square root works
    curve = svd_error_curve(w, cov, range(1, 31), floor=0)
    for r in (1, 3, 10, 25, 30):
        subs, rep = whitened_svd(w, r, cov, floor=0)
        bound = np.sqrt(np.sum(s[r:] ** 2) / np.sum(s ** 2))
        assert rep["output_error"] == pytest.approx(bound, rel=1e-7, abs=1e-7)
        assert output_error(w, compose(subs), cov) == pytest.approx(bound, rel=1e-5, abs=1e-6)
        assert curve[r - 1] == pytest.approx(bound, rel=1e-7, abs=1e-7)
        # neither the weight-space SVD nor random rank-r perturbations of the optimum do better
        assert output_error(w, compose(svd(w, r)), cov) >= bound
        best = compose(subs)
        for _ in range(5):
            u = np.linalg.qr(compose(subs[1:]) + 0.05 * rng.standard_normal((30, r)))[0]
            assert output_error(w, u @ (u.T @ best) + 0.01 * u @ rng.standard_normal((r, 40)), cov) > bound


def test_whitened_svd_layout_and_floor_one_is_the_weight_space_svd():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((12, 8, 1, 1)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    cov = second_moment(correlated(100, 8))
    subs, rep = whitened_svd(w, 3, cov, bias=b, stride=(2, 2), padding=(1, 1, 1, 1))
    ref = skeleton(LayerInfo("c", "conv2d", 8, 12, stride=(2, 2), padding=(1, 1, 1, 1), has_bias=True), "svd", (3,))
    for got, want in zip(subs, ref):
        assert (got.weight.shape, got.stride, got.padding, got.position) == \
               (want.weight.shape, want.stride, want.padding, want.position)
        assert got.weight.dtype == np.float32
    assert subs[0].bias is None and np.array_equal(subs[1].bias, b)
    np.testing.assert_allclose(np.linalg.svd(subs[0].weight[:, :, 0, 0], compute_uv=False),
                               np.linalg.svd(subs[1].weight[:, :, 0, 0], compute_uv=False), rtol=1e-4)
    same, rep1 = whitened_svd(w, 3, cov, floor=1.0)                        # C' = max(l) I
    np.testing.assert_allclose(compose(same), compose(svd(w, 3)), atol=1e-5)
    assert rep1["floored"] == 7 and rep1["floor_kind"] == "clamp"


@pytest.mark.parametrize("n", [5, 200])
def test_singular_covariances_work_and_report_the_floor(n):
    rng = np.random.default_rng(3)
    x = correlated(n, 32)
    x[:, 7] = 0.0                                                            # a dead ReLU channel
    cov = second_moment(x)
    lam = np.linalg.eigvalsh(cov)
    w = rng.standard_normal((24, 32))
    subs, rep = whitened_svd(w, 4, cov, floor=1e-3)
    assert rep["floor"] == 1e-3 and rep["floor_abs"] == pytest.approx(1e-3 * lam[-1], rel=1e-9)
    assert rep["floored"] == int(np.sum(lam < 1e-3 * lam[-1])) and rep["floored"] >= 32 - min(n, 31)
    for floor in (0.0, 1e-3):
        subs, rep = whitened_svd(w, 4, cov, floor=floor)
        assert all(np.isfinite(s.weight).all() for s in subs)
        assert rep["output_error"] < output_error(w, compose(svd(w, 4)), cov)


def test_whitened_svd_beats_weight_space_on_held_out_data():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((48, 64))
    cal, held = second_moment(correlated(256, 64, seed=0)), second_moment(correlated(4000, 64, seed=9))
    for r in (4, 8, 16, 32):
        ours = output_error(w, compose(whitened_svd(w, r, cal)[0]), held)
        base = output_error(w, compose(svd(w, r)), held)
        assert ours < 0.8 * base, (r, ours, base)


def conv_stats(x, info):
    acc = Accumulator(info)
    acc.update(x.astype(np.float32))
    return acc.result().cov


def test_data_aware_tucker2_beats_hooi_on_held_out_data_and_layout():
    rng = np.random.default_rng(5)
    info = LayerInfo("l.conv2", "conv2d", 12, 16, (3, 3), (2, 2), (1, 1, 1, 1), input_hw=(8, 8), has_bias=True)
    w = rng.standard_normal((16, 12, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    cal, held = conv_stats(correlated_images(40, 12, 8, 0), info), conv_stats(correlated_images(200, 12, 8, 5), info)
    channel = Accumulator(info, kind="channel")
    channel.update(correlated_images(40, 12, 8, 0).astype(np.float32))
    for ranks in ((4, 3), (8, 6), (12, 8)):
        subs, rep = data_aware_tucker2(w, ranks, cal, bias=b, stride=(2, 2), padding=(1, 1, 1, 1))
        ours = output_error(w, compose(subs), held)
        base = output_error(w, compose(tucker2(w, ranks)), held)
        by_channel = output_error(w, compose(data_aware_tucker2(w, ranks, channel.result().cov)[0]), held)
        assert ours < 0.85 * base and by_channel < base, (ranks, ours, by_channel, base)
        assert ours <= by_channel * 1.01                                     # patch statistics know more
        for got, want in zip(subs, skeleton(info, "tucker2", ranks)):
            assert (got.weight.shape, got.stride, got.padding, got.dilation, got.position) == \
                   (want.weight.shape, want.stride, want.padding, want.dilation, want.position)
        assert np.array_equal(subs[2].bias, b) and subs[0].bias is None and subs[1].bias is None


def test_tucker2_with_identity_covariance_is_weight_space_hooi_and_full_rank_is_exact():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((10, 8, 3, 3))
    hooi = np.linalg.norm(compose(tucker2(w, (5, 4), n_iter=500)) - w) / np.linalg.norm(w)
    for cov in (np.eye(8), np.eye(72)):
        subs, rep = data_aware_tucker2(w, (5, 4), cov, n_iter=500, floor=0)
        assert rep["output_error"] == pytest.approx(hooi, rel=1e-5)
        assert rep["weight_error"] == pytest.approx(hooi, rel=1e-5)
    cov = conv_stats(correlated_images(10, 8, 6, 1), LayerInfo("c", "conv2d", 8, 10, (3, 3), padding=(1, 1, 1, 1)))
    subs, rep = data_aware_tucker2(w, (10, 8), cov)
    assert np.linalg.norm(compose(subs) - w) / np.linalg.norm(w) < 1e-6 and rep["errors"] == [0.0]


def test_patch_path_on_a_kronecker_covariance_equals_the_channel_path():
    rng = np.random.default_rng(12)
    w = rng.standard_normal((10, 6, 3, 3))
    c = second_moment(correlated(50, 6))
    a, rep_a = data_aware_tucker2(w, (5, 3), c, floor=0, n_iter=10)
    b, rep_b = data_aware_tucker2(w, (5, 3), np.kron(c, np.eye(9)), floor=0, n_iter=10)
    np.testing.assert_allclose(rep_a["errors"], rep_b["errors"], rtol=1e-8)
    np.testing.assert_allclose(compose(a), compose(b), rtol=1e-6, atol=1e-8)


def test_als_errors_never_increase_and_reach_a_stationary_point():
    rng = np.random.default_rng(7)
    o, i, kh, kw, ranks = 6, 5, 2, 2, (3, 2)
    w = rng.standard_normal((o, i, kh, kw))
    x = rng.standard_normal((60, i * kh * kw)) @ rng.standard_normal((i * kh * kw, i * kh * kw))
    cov = second_moment(x)                                                   # far from Kronecker
    subs, rep = data_aware_tucker2(w, ranks, cov, n_iter=200, cg_iters=30, floor=0)
    errs = np.asarray(rep["errors"])
    assert len(errs) > 2 and np.all(np.diff(errs) <= 1e-12) and errs[-1] < errs[0]
    assert rep["output_error"] == pytest.approx(errs[-1], rel=1e-6)
    a0, g0, u0 = (s.weight.astype(np.float64) for s in subs)
    sizes = [a0.size, g0.size, u0.size]

    def loss(theta):
        a, g, u = np.split(theta, np.cumsum(sizes)[:2])
        approx = compose([type(s)(s.kind, p.reshape(s.weight.shape)) for s, p in zip(subs, (a, g, u))])
        return output_error(w, approx, cov) ** 2

    start = np.concatenate([a0.ravel(), g0.ravel(), u0.ravel()])
    polished = minimize(loss, start, method="L-BFGS-B", options={"maxiter": 500})
    assert polished.fun >= loss(start) * (1 - 1e-5)                          # no descent direction left


def test_error_curves_match_the_factorizations():
    rng = np.random.default_rng(8)
    info = LayerInfo("c", "conv2d", 8, 12, (3, 3), padding=(1, 1, 1, 1))
    w = rng.standard_normal((12, 8, 3, 3))
    cov = conv_stats(correlated_images(20, 8, 6, 3), info)
    ranks = [(12, 8), (8, 6), (6, 4), (3, 2)]
    curve = tucker2_error_curve(w, cov, ranks)
    assert np.all(np.diff(curve) > 0) and curve[0] < 1e-6
    for r, e in zip(ranks[1:], curve[1:]):
        rep = data_aware_tucker2(w, r, cov)[1]
        assert rep["errors"][0] == pytest.approx(e, rel=1e-6) and rep["errors"][-1] <= e + 1e-12
    dense = rng.standard_normal((20, 16))
    dcov = second_moment(correlated(50, 16))
    np.testing.assert_allclose(error_curve("svd", dense, dcov, [(2,), (9,)]),
                               [whitened_svd(dense, r, dcov)[1]["output_error"] for r in (2, 9)], rtol=1e-7)


def test_output_error_channel_form_is_the_kronecker_patch_form():
    rng = np.random.default_rng(9)
    w, approx = rng.standard_normal((6, 4, 3, 3)), rng.standard_normal((6, 4, 3, 3))
    c = second_moment(rng.standard_normal((30, 4)))
    assert output_error(w, approx, c) == pytest.approx(output_error(w, approx, np.kron(c, np.eye(9))), rel=1e-12)


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((6, 4))
    with pytest.raises(CalibrationError, match="does not fit the weight"):
        whitened_svd(w, 2, np.eye(5), name="fc")
    with pytest.raises(CalibrationError, match="NaN"):
        whitened_svd(w, 2, np.full((4, 4), np.nan))
    with pytest.raises(CalibrationError, match="all zero"):
        whitened_svd(w, 2, np.zeros((4, 4)), name="fc")
    with pytest.raises(RankError, match="fc"):
        whitened_svd(w, 5, np.eye(4), name="fc")
    with pytest.raises(ConfigError, match="floor"):
        whitened_svd(w, 2, np.eye(4), floor=2.0)
    with pytest.raises(RankError):
        data_aware_tucker2(rng.standard_normal((6, 4, 3, 3)), (7, 2), np.eye(36))
    with pytest.raises(CalibrationError, match="all zero"):
        data_aware_tucker2(rng.standard_normal((6, 4, 3, 3)), (3, 2), np.zeros((36, 36)))


def test_zero_weights_give_zero_errors_and_finite_factors():
    for cov in (np.eye(27), np.eye(3)):
        subs, rep = data_aware_tucker2(np.zeros((4, 3, 3, 3)), (2, 2), cov)
        assert rep["errors"][-1] == rep["output_error"] == 0.0 and all(np.isfinite(s.weight).all() for s in subs)
    assert svd_error_curve(np.zeros((4, 3)), np.eye(3), [1, 2]).tolist() == [0.0, 0.0]
