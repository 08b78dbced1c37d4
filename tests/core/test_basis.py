"""Basis convolutions (seed 003): SVD / pivoted-QR chains, the alpha/beta combine variant, costs and op counts."""
import itertools

import numpy as np
import pytest
from scipy.linalg import qr, svdvals

from lrd_core.cost import (alpha_beta_speedup, basis_op_counts, chain_cost, decomposed_cost, forward_basis_limit,
                           training_basis_limit)
from lrd_core.errors import ConfigError, RankError, UnsupportedLayerError
from lrd_core.factorize import compose
from lrd_core.factorize.basis import (apply_combine, basis, basis_combine, basis_skeleton, combine_counts,
                                      factorize_basis, fold_basis)
from lrd_core.factorize.cp import cp3, cp4
from lrd_core.layers import LayerInfo

from .test_cp import conv2d, run_chain


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


W = np.random.default_rng(0).standard_normal((24, 8, 3, 3))
MAT = W.reshape(24, -1)


def test_svd_basis_is_eckart_young_and_the_chain_convolves_like_its_kernel():
    s = svdvals(MAT)
    b = np.random.default_rng(1).standard_normal(24)
    x = np.random.default_rng(2).standard_normal((2, 8, 9, 10))
    for c in (4, 10, 24):
        subs = basis(W, c, bias=b, stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2))
        assert [s_.weight.shape for s_ in subs] == [(c, 8, 3, 3), (24, c, 1, 1)]
        assert (subs[0].stride, subs[0].padding, subs[0].dilation) == ((2, 1), (1, 0, 2, 1), (1, 2))
        err = np.linalg.norm(compose(subs) - W)
        assert err == pytest.approx(np.sqrt(np.sum(s[c:] ** 2)), rel=1e-9, abs=1e-9)
        full = fold_basis(subs)
        np.testing.assert_allclose(full.weight, compose(subs), atol=1e-12)
        np.testing.assert_allclose(run_chain(x, subs), conv2d(x, full.weight, b, (2, 1), (1, 0, 2, 1), (1, 2)),
                                   atol=1e-10)


def test_qr_basis_keeps_real_filters_and_projects_the_rest():
    c = 7
    subs = basis(W.astype(np.float32), c, init="qr")
    kept = np.sort(qr(MAT.T, pivoting=True)[2][:c])
    np.testing.assert_array_equal(subs[0].weight, W[kept].astype(np.float32))       # exact copies
    coef = subs[1].weight[:, :, 0, 0]
    np.testing.assert_array_equal(coef[kept], np.eye(c, dtype=np.float32))
    # the other outputs are least-squares combinations: error = distance to the span of the kept rows
    q = np.linalg.qr(MAT[kept].T)[0]
    want = np.linalg.norm(MAT - MAT @ q @ q.T)
    assert np.linalg.norm(compose(subs).reshape(24, -1) - MAT) == pytest.approx(want, rel=1e-5)
    assert want >= np.sqrt(np.sum(svdvals(MAT)[c:] ** 2))                           # SVD is optimal
    # a kernel of row rank 5 is reproduced from 5 of its own filters
    low = (np.random.default_rng(3).standard_normal((24, 5)) @ MAT[:5]).reshape(W.shape)
    assert rel(compose(basis(low, 5, init="qr")), low) < 1e-10


def brute_force_error(mat, base, n_pair):
    """Smallest ||mat - approx|| over every choice of n_pair pair rows, best pair / copy per row."""
    def resid(row, cols):
        sub = base[list(cols)].T
        return np.sum((row - sub @ np.linalg.lstsq(sub, row, rcond=None)[0]) ** 2)
    copy = [min(resid(r, (j,)) for j in range(len(base))) for r in mat]
    pair = [min(resid(r, p) for p in itertools.combinations(range(len(base)), 2)) for r in mat]
    best = min(sum(pair[o] if o in chosen else copy[o] for o in range(len(mat)))
               for chosen in itertools.combinations(range(len(mat)), n_pair))
    return np.sqrt(best)


def test_assignment_is_optimal_for_the_kept_filters():
    w = np.random.default_rng(4).standard_normal((7, 3, 2, 2))
    mat = w.reshape(7, -1)
    n_basis, n_pair = combine_counts(7, 3 / 7, 3 / 7)
    assert (n_basis, n_pair) == (3, 3)
    subs = basis_combine(w, 3 / 7, 3 / 7, n_iter=0)
    base = subs[0].weight.reshape(3, -1)
    kept = np.sort(qr(mat.T, pivoting=True)[2][:3])
    np.testing.assert_array_equal(base, mat[kept])
    idx = subs[1].index
    assert idx.dtype == np.int64 and np.sum(idx[:, 0] != idx[:, 1]) == 3
    assert np.all(subs[1].weight[idx[:, 0] == idx[:, 1], 1] == 0)
    err = np.linalg.norm(fold_basis(subs).weight.reshape(7, -1) - mat)
    assert err == pytest.approx(brute_force_error(mat, base, 3), rel=1e-9)


def test_refinement_lowers_the_error_monotonically():
    errors = [rel(fold_basis(basis_combine(W, 0.25, 0.5, n_iter=k)).weight, W) for k in (0, 1, 3, 10)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < errors[0] - 0.03                        # 0.797 -> 0.765 -> 0.754 -> 0.753
    # dense mix with the same C' is never worse (it is the unconstrained least squares)
    assert rel(compose(basis(W, 6, init="svd")), W) < errors[-1]              # 0.717


def test_planted_copies_and_pairs_are_recovered():
    rng = np.random.default_rng(5)
    b = rng.standard_normal((4, 45))
    rows = [2.0 * b[i] for i in range(4)] + [(i + 1.5) * b[i % 4] for i in range(5)]
    rows += [b[p] - 0.5 * b[q] for p, q in ((0, 1), (2, 3), (1, 3))]
    w = np.array(rows).reshape(12, 5, 3, 3)
    subs = basis_combine(w, 4 / 12, 3 / 12, bias=np.arange(12.0))
    assert rel(fold_basis(subs).weight, w) < 1e-12
    assert np.sum(subs[1].index[:, 0] != subs[1].index[:, 1]) == 3


def test_combine_layer_matches_the_folded_convolution():
    b = np.random.default_rng(6).standard_normal(24)
    x = np.random.default_rng(7).standard_normal((2, 8, 7, 9))
    subs = basis_combine(W, 0.3, 0.4, bias=b, stride=(2, 2), padding=(1, 1, 1, 1), n_iter=3)
    assert [s.kind for s in subs] == ["conv2d", "combine"] and subs[0].weight.shape == (7, 8, 3, 3)
    assert subs[1].weight.shape == (24, 2) and subs[1].index.shape == (24, 2) and subs[1].index.max() < 7
    mid = conv2d(x, subs[0].weight, None, (2, 2), (1, 1, 1, 1))
    got = apply_combine(mid, subs[1])
    loop = np.stack([subs[1].weight[o, 0] * mid[:, subs[1].index[o, 0]]
                     + subs[1].weight[o, 1] * mid[:, subs[1].index[o, 1]] + b[o] for o in range(24)], axis=1)
    np.testing.assert_allclose(got, loop, atol=1e-12)
    full = fold_basis(subs)
    assert (full.stride, full.padding) == ((2, 2), (1, 1, 1, 1)) and np.array_equal(full.bias, b)
    np.testing.assert_allclose(got, conv2d(x, full.weight, b, (2, 2), (1, 1, 1, 1)), atol=1e-10)


def test_skeleton_and_costs_match_the_chains():
    info = LayerInfo("layer3.0.conv2", "conv2d", 8, 24, (3, 3), (2, 2), (1, 1, 1, 1), has_bias=True, input_hw=(16, 16))
    for ranks, subs in (((6,), factorize_basis(info, W, np.zeros(24), (6,))),
                        ((7, 10), factorize_basis(info, W, np.zeros(24), alpha=0.3, beta=0.4))):
        skel = basis_skeleton(info, ranks)
        assert [(s.kind, s.weight.shape, s.stride, s.has_bias) for s in skel] == \
               [(s.kind, s.weight.shape, s.stride, s.has_bias) for s in subs]
        assert decomposed_cost(info, "basis", ranks) == chain_cost(subs, info.input_hw)
    # 8x8 output: dense mix C'=6: 6*72 + 24*6 weights (+24 bias), MACs (432 + 144) * 64
    assert decomposed_cost(info, "basis", (6,)) == (432 + 144 + 24, (432 + 144) * 64)
    # combine C'=7 with 10 pairs: 7*72 + 48 (+24), MACs 504*64 + (14 copies + 2*10) * 64
    assert decomposed_cost(info, "basis", (7, 10)) == (504 + 48 + 24, 504 * 64 + 34 * 64)


def test_cp_chain_costs():
    info = LayerInfo("c", "conv2d", 16, 32, (3, 3), (2, 2), (1, 1, 1, 1), has_bias=True, input_hw=(16, 16))
    w = np.random.default_rng(8).standard_normal(info.weight_shape)
    r = 10
    # CP-3: 1x1 at 16x16, depthwise 3x3 stride 2 -> 8x8, 1x1 at 8x8
    assert decomposed_cost(info, "cp3", (r,)) == (r * (16 + 9 + 32) + 32, r * 16 * 256 + r * 9 * 64 + r * 32 * 64)
    # CP-4: 3x1 stride (2, 1) -> 8x16, 1x3 stride (1, 2) -> 8x8
    assert decomposed_cost(info, "cp4", (r,)) == (r * (16 + 3 + 3 + 32) + 32,
                                                   r * 16 * 256 + r * 3 * 128 + r * 3 * 64 + r * 32 * 64)
    for fn, method in ((cp3, "cp3"), (cp4, "cp4")):
        subs, _ = fn(w, r, np.zeros(32), info.stride, info.padding, n_iter=5)
        assert chain_cost(subs, info.input_hw) == decomposed_cost(info, method, (r,))


def test_seed_operation_counts():
    k, hw, cin, cout = (3, 3), (8, 8), 16, 32
    ops = basis_op_counts(k, hw, cin, cout, n_basis=4, alpha=0.25, beta=0.5)
    assert ops["forward_original"] == ops["backward_original"] == 9 * 64 * 16 * 32
    assert ops["forward_restore"] == 32 * 4 * 16 * 9 + 9 * 64 * 16 * 32
    assert ops["forward"] == 9 * 64 * 16 * 4 + 32 * 4 * 64 and ops["backward"] == 64 * 32 * 4 * 9 * 16
    assert ops["forward_ab"] == 9 * 64 * 16 * 8 + 16 * 64 + 2 * 16 * 64
    assert ops["backward_ab"] == 64 * 16 * 9 * 16 + 2 * 64 * 16 * 9 * 16
    # Delta'' = K^2 W H Cin Cout (C' + C'/Cout + C'/(K^2 Cin) - 2)
    for cb in (1, 2, 3, 8):
        o = basis_op_counts(k, hw, cin, cout, n_basis=cb)
        delta = o["forward"] + o["backward"] - o["forward_original"] - o["backward_original"]
        assert delta == pytest.approx(9 * 64 * 16 * 32 * (cb + cb / 32 + cb / 144 - 2), rel=1e-12)
        assert (delta < 0) == (cb < training_basis_limit(k, cin, cout))                 # limit 1.98
        assert (o["forward"] < o["forward_original"]) == (cb < forward_basis_limit(k, cin, cout))
    assert forward_basis_limit(k, cin, cout) == pytest.approx(32 / (1 + 32 / 144))       # 26.18
    for cb in (26, 27):
        o = basis_op_counts(k, hw, cin, cout, n_basis=cb)
        assert (o["forward"] < o["forward_original"]) == (cb == 26)
    # the exact alpha/beta condition is the sign of Delta'''; alpha + beta < 1 is its simplification
    for a, b in itertools.product(np.linspace(0.05, 1, 20), np.linspace(0.05, 1, 20)):
        o = basis_op_counts(k, hw, cin, cout, alpha=a, beta=b)
        delta = o["forward_ab"] + o["backward_ab"] - o["forward_original"] - o["backward_original"]
        assert (delta < 0) == alpha_beta_speedup(a, b, k, cin)
        assert alpha_beta_speedup(a, b) == (a + b < 1)
    assert alpha_beta_speedup(0.5, 0.49) and not alpha_beta_speedup(0.5, 0.49, (1, 1), 8)


@pytest.mark.parametrize("call,error,text", [
    (lambda: basis(W, 25), RankError, r"\[1, 24\]"),
    (lambda: basis(W, 0), RankError, "basis count"),
    (lambda: basis(W, 4, init="lu"), ConfigError, "init"),
    (lambda: basis(W, 4, groups=2, name="l2"), UnsupportedLayerError, "layer l2 is a grouped"),
    (lambda: basis_combine(W, 0.0, 0.5), ConfigError, r"alpha .* must be in \(0, 1\]"),
    (lambda: basis_combine(W, 1.2, 0.5), ConfigError, "alpha"),
    (lambda: basis_combine(W, 0.5, 0.0), ConfigError, r"beta .* must be in \(0, 1\]"),
    (lambda: basis_combine(W, 0.5, -0.1), ConfigError, "beta"),
    (lambda: basis_combine(W, 0.5, 0.5, require_speedup=True, name="x"), ConfigError, "alpha \\+ beta of layer x is 1"),
    (lambda: basis_combine(W, 0.02, 0.5), ConfigError, "pairs need two"),
    (lambda: basis_combine(np.ones((4, 4)), 0.5, 0.2), UnsupportedLayerError, "OIHW"),
])
def test_bad_inputs_raise_one_line_errors(call, error, text):
    with pytest.raises(error, match=text) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_speed_condition_only_when_asked():
    subs = basis_combine(W, 0.5, 0.5, n_iter=0)                  # alpha + beta = 1 is fine without require_speedup
    assert subs[0].weight.shape[0] == 12
    assert basis_combine(W, 0.5, 0.25, require_speedup=True, n_iter=0)[0].weight.shape[0] == 12
