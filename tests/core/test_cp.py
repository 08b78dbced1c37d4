"""CP-3 / CP-4 chains against NumPy convolutions, planted CP tensors and known rank formulas."""
import numpy as np
import pytest
from scipy.signal import correlate

import lrd_core.factorize.cp as cpmod
from lrd_core.errors import BadWeightsError, DecompositionError, LRDError, RankError, UnsupportedLayerError
from lrd_core.factorize.cp import (cp3, cp4, cp_chain_factors, cp_diagnostics, cp_energy_rank, cp_redecompose,
                                   cp_skeleton, cp_vbmf_rank, factorize_cp, fold_cp, max_cp_rank, pr_cp3_rank,
                                   pr_cp4_rank, select_cp_rank)
from lrd_core.factorize.epc import sensitivity
from lrd_core.layers import LayerInfo


def conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation of NCHW ``x`` with an OIHW kernel, summing shifted slices (float64)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    t, b, l, r = padding
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    ho, wo = (h + t + b - dh * (kh - 1) - 1) // sh + 1, (wd + l + r - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for p in range(kh):
        for q in range(kw):
            patch = xp[:, :, p * dh:p * dh + sh * (ho - 1) + 1:sh, q * dw:q * dw + sw * (wo - 1) + 1:sw]
            for g in range(groups):
                out[:, g * og:(g + 1) * og] += np.einsum("oi,nihw->nohw", w[g * og:(g + 1) * og, :, p, q],
                                                         patch[:, g * cg:(g + 1) * cg])
    return out if bias is None else out + np.asarray(bias)[None, :, None, None]


def run_chain(x, subs):
    for s in subs:
        x = conv2d(x, s.weight, s.bias, s.stride, s.padding, s.dilation, s.groups)
    return x


def planted(shape, rank, seed):
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((n, rank)) for n in shape]
    return np.einsum("or,ir,hr,wr->oihw", *factors)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_conv_reference_matches_scipy_correlate():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 3, 7, 6)), rng.standard_normal((2, 3, 3, 2))
    ref = np.stack([correlate(x[0], w[o], mode="valid")[0] for o in range(2)])
    np.testing.assert_allclose(conv2d(x, w)[0], ref, atol=1e-12)


def test_pr_rank_formulas():
    assert pr_cp3_rank(64, 64, 3, 3, 2.0) == 134           # 36864 / (2 * 137) = 134.5
    assert pr_cp4_rank(64, 64, 3, 3, 2.0) == 137           # 36864 / (2 * 134) = 137.6
    assert pr_cp3_rank(512, 512, 3, 3, 3.0) == 761         # 2359296 / 3099 = 761.3
    assert pr_cp3_rank(2, 2, 1, 1, 100.0) == 1             # never below 1
    info = LayerInfo("l", "conv2d", 64, 128, (3, 3))
    assert max_cp_rank(info, "cp3") == 366 and max_cp_rank(info, "cp4") == 372   # 73728/201, 73728/198
    assert select_cp_rank(info, "cp3", "pr", ratio=2.0) == (183.0,)


@pytest.mark.parametrize("method,fn", [("cp3", cp3), ("cp4", cp4)])
def test_planted_cp_kernel_is_reproduced_exactly(method, fn):
    w = planted((12, 8, 3, 3), 5, seed=1)
    subs, report = fn(w, 5, tol=1e-14, n_iter=500)
    assert rel(fold_cp(subs), w) < 1e-6 and report["error"][0] < 1e-6
    assert report["error"][0] == report["error"][1] and report["sensitivity"][0] == report["sensitivity"][1]
    assert report["sensitivity"][0] == pytest.approx(sensitivity(cp_chain_factors(subs)), rel=1e-12)
    assert [s.position for s in subs] == ["first"] + ["core"] * (len(subs) - 2) + ["last"]
    assert [s.groups for s in subs] == [1] + [5] * (len(subs) - 2) + [1]
    assert subs[0].weight.shape == (5, 8, 1, 1) and subs[-1].weight.shape == (12, 5, 1, 1)
    # each rank-one term is balanced: equal column norms in every factor
    norms = np.stack([np.linalg.norm(f, axis=0) for f in cp_chain_factors(subs)])
    np.testing.assert_allclose(norms, np.broadcast_to(norms[:1], norms.shape), rtol=1e-6)


GEOMETRIES = [((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (1, 1, 1, 1), (1, 1)), ((2, 1), (1, 0, 2, 1), (1, 1)),
              ((1, 2), (2, 2, 0, 1), (2, 1)), ((2, 3), (0, 0, 0, 0), (1, 2))]


@pytest.mark.parametrize("method,fn", [("cp3", cp3), ("cp4", cp4)])
@pytest.mark.parametrize("stride,padding,dilation", GEOMETRIES)
def test_chain_convolution_equals_reconstructed_kernel(method, fn, stride, padding, dilation):
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal((6, 4, 3, 5)), rng.standard_normal(6)
    x = rng.standard_normal((2, 4, 11, 13))
    subs, report = fn(w, 7, bias=b, stride=stride, padding=padding, dilation=dilation, n_iter=50)
    full = fold_cp(subs)
    want = conv2d(x, full, b, stride, padding, dilation)
    got = run_chain(x, subs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the chain approximates the original layer exactly as well as its kernel does
    orig = conv2d(x, w, b, stride, padding, dilation)
    assert rel(full, w) == pytest.approx(report["error"][1], rel=1e-9)
    assert 0 < rel(got - b[None, :, None, None], orig - b[None, :, None, None]) < 1


def test_planted_cp4_chain_reproduces_the_original_layer():
    rng = np.random.default_rng(3)
    w = planted((10, 6, 3, 3), 4, seed=3).astype(np.float32)
    x = rng.standard_normal((1, 6, 9, 9))
    subs, _ = cp4(w, 4, stride=(2, 2), padding=(1, 1, 1, 1), tol=1e-14, n_iter=500)
    assert all(s.weight.dtype == np.float32 for s in subs)
    want = conv2d(x, w.astype(np.float64), None, (2, 2), (1, 1, 1, 1))
    assert rel(run_chain(x, subs), want) < 1e-5


def test_deterministic_for_a_seed():
    w = np.random.default_rng(4).standard_normal((8, 8, 3, 3))
    a, _ = cp3(w, 10, seed=3, n_iter=40)
    b, _ = cp3(w, 10, seed=3, n_iter=40)
    assert all(np.array_equal(x.weight, y.weight) for x, y in zip(a, b))


def test_skeleton_matches_the_decomposed_chain():
    info = LayerInfo("layer1.0.conv2", "conv2d", 6, 10, (3, 3), (2, 1), (1, 1, 0, 2), (1, 2), has_bias=True)
    w = np.random.default_rng(5).standard_normal(info.weight_shape)
    for method in ("cp3", "cp4"):
        subs, _ = factorize_cp(info, method, w, np.zeros(10), 7, n_iter=20)
        skel = cp_skeleton(info, method, 7)
        assert [(s.weight.shape, s.stride, s.padding, s.dilation, s.groups, s.position, s.has_bias)
                for s in skel] == [(s.weight.shape, s.stride, s.padding, s.dilation, s.groups, s.position,
                                    s.has_bias) for s in subs]
        assert not any(np.any(s.weight) for s in skel)


def test_channel_rank_selectors():
    rng = np.random.default_rng(6)
    # mode-0 rank 6, mode-1 rank 4, plus faint noise
    core = rng.standard_normal((6, 4, 3, 3))
    u, v = np.linalg.qr(rng.standard_normal((40, 6)))[0], np.linalg.qr(rng.standard_normal((32, 4)))[0]
    w = np.einsum("abhw,oa,ib->oihw", core, u, v) + 1e-4 * rng.standard_normal((40, 32, 3, 3))
    assert cp_vbmf_rank(w, 1.0) == 6
    assert cp_vbmf_rank(w, 0.5) == max(40 - 0.5 * 34, 32 - 0.5 * 28)      # 23
    assert cp_vbmf_rank(w, 0.5, current=12) == 12 - 0.5 * 6
    assert cp_energy_rank(w, 0.999) == 6
    info = LayerInfo("c", "conv2d", 32, 40, (3, 3))
    assert select_cp_rank(info, "cp4", "vbmf", weight=w, vbmf_weakening=1.0) == (6.0,)


def test_redecompose_shrinks_a_chain_to_its_planted_rank():
    w = planted((10, 8, 3, 3), 3, seed=7)
    subs, _ = cp3(w, 3, bias=np.ones(10), stride=(2, 2), padding=(1, 1, 1, 1), tol=1e-14, n_iter=500)
    wide = cp3(fold_cp(subs) + 0.0, 9, bias=np.ones(10), stride=(2, 2), padding=(1, 1, 1, 1), n_iter=200)[0]
    small, report = cp_redecompose(wide, 3, tol=1e-14, n_iter=500)
    assert [s.weight.shape[0] for s in small[:-1]] == [3, 3]
    assert (small[1].stride, small[1].padding) == ((2, 2), (1, 1, 1, 1)) and np.array_equal(small[-1].bias, np.ones(10))
    assert rel(fold_cp(small), fold_cp(wide)) < 1e-6 and report["error"][0] < 1e-6
    four = cp4(w, 6, n_iter=200, padding=(1, 0, 1, 0))[0]
    small4, _ = cp_redecompose(four, 3, tol=1e-14, n_iter=500)
    assert len(small4) == 4 and small4[1].padding == (1, 0, 0, 0) and small4[2].padding == (0, 0, 1, 0)
    with pytest.raises(RankError, match="only shrink"):
        cp_redecompose(small, 4)


def degenerate_kernel():
    """Rank 3 but border rank 2: the best rank-2 CPD does not exist and ALS norms diverge."""
    rng = np.random.default_rng(1)
    q = [np.linalg.qr(rng.standard_normal((n, 2)))[0] for n in (4, 3, 9)]
    a, b = [m[:, 0] for m in q], [m[:, 1] for m in q]
    t = (np.einsum("i,j,k->ijk", a[0], a[1], b[2]) + np.einsum("i,j,k->ijk", a[0], b[1], a[2])
         + np.einsum("i,j,k->ijk", b[0], a[1], a[2]))
    return t.reshape(4, 3, 3, 3)


def test_degenerate_cpd_is_reported_not_returned(monkeypatch):
    w = degenerate_kernel()
    t = w.reshape(4, 3, 9)
    early = cp_diagnostics(t, cpmod.cp3_factors(w, 2, n_iter=100, tol=0))
    late = cp_diagnostics(t, cpmod.cp3_factors(w, 2, n_iter=700, tol=0))
    assert late["intensity"] > early["intensity"] * 1.5 and late["congruence"] < -0.95     # 3.9 vs 2.0, -0.967
    with pytest.raises(DecompositionError, match="layer3.0.conv1 at rank 2 is degenerate .*triple cosine -0.967"):
        cp3(w, 2, n_iter=700, tol=0, min_congruence=-0.95, name="layer3.0.conv1")
    healthy = np.random.default_rng(8).standard_normal((4, 3, 3, 3))
    subs, _ = cp3(healthy, 2, n_iter=300, tol=0, min_congruence=-0.95)
    assert cp_diagnostics(healthy.reshape(4, 3, 9), cp_chain_factors(subs))["congruence"] > -0.95

    # ALS run far into divergence: two terms ~577x the kernel's norm cancel to leave it
    a, b, c = (np.linalg.qr(np.random.default_rng(n).standard_normal((n, 2)))[0] for n in (4, 3, 9))
    big = [np.stack([x[:, 0], x[:, 0] + 1e-3 * x[:, 1]], axis=1) for x in (a, b, c)]
    big[2][:, 0] *= -1
    w_div = np.einsum("or,ir,kr->oik", *big).reshape(4, 3, 3, 3)

    def diverged(tensor, rank, **_):
        return (np.ones(rank), [f.copy() for f in big]), [0.0]
    monkeypatch.setattr(cpmod, "parafac", diverged)
    with pytest.raises(DecompositionError, match=r"component 577x the kernel norm, limit 100;"):
        cp3(w_div, 2)


def test_singular_and_nan_cpd_raise_decomposition_error(monkeypatch):
    e = lambda i, n: np.eye(n)[i]                                         # noqa: E731
    axis = (np.einsum("i,j,k->ijk", e(0, 4), e(0, 3), e(1, 9)) + np.einsum("i,j,k->ijk", e(0, 4), e(1, 3), e(0, 9))
            + np.einsum("i,j,k->ijk", e(1, 4), e(0, 3), e(0, 9))).reshape(4, 3, 3, 3)
    with pytest.raises(DecompositionError, match="layer conv9 .*singular"):
        cp3(axis, 2, name="conv9")

    def nan_parafac(tensor, rank, **_):
        return (np.ones(rank), [np.full((n, rank), np.nan) for n in tensor.shape]), [0.0]
    monkeypatch.setattr(cpmod, "parafac", nan_parafac)
    with pytest.raises(DecompositionError, match="NaN"):
        cp4(np.ones((4, 3, 3, 3)), 2)


def test_bad_inputs_raise_clear_errors():
    w = np.random.default_rng(9).standard_normal((8, 4, 3, 3))
    top = pr_cp3_rank(8, 4, 3, 3, 1.0)                                     # 288 / 21 = 13
    assert top == 13
    with pytest.raises(RankError, match=r"layer c1 must be an integer in \[1, 13\]"):
        cp3(w, 14, name="c1")
    for bad in (0, -1, 2.5):
        with pytest.raises(RankError):
            cp3(w, bad)
    with pytest.raises(UnsupportedLayerError, match="grouped"):
        factorize_cp(LayerInfo("g", "conv2d", 8, 8, (3, 3), groups=2), "cp3", w, None, 4)
    with pytest.raises(UnsupportedLayerError, match="OIHW"):
        cp4(np.ones((8, 4)), 2)
    bad = w.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(BadWeightsError, match="layer c2"):
        cp4(bad, 2, name="c2")
    assert issubclass(DecompositionError, LRDError) and issubclass(DecompositionError, RuntimeError)
