"""CPD-EPC: the error bound holds, the sensitivity falls, and each factor step is the constrained optimum."""
import numpy as np
import pytest
import tensorly as tl
from scipy.optimize import minimize
from tensorly.tenalg import khatri_rao

import lrd_core.factorize.epc as E
from lrd_core.factorize.cp import cp3, cp3_factors, cp4, cp4_factors, cp_chain_factors, fold_cp
from lrd_core.factorize.epc import epc, gauge, reconstruct, residual_norm, sensitivity


def jacobian_norm2(factors):
    """||d vec([[U]]) / d(all factor entries)||_F^2 by central differences (exact: the map is linear in each entry)."""
    total = 0.0
    for n, f in enumerate(factors):
        for idx in np.ndindex(f.shape):
            plus = [g.copy() for g in factors]
            minus = [g.copy() for g in factors]
            plus[n][idx] += 0.5
            minus[n][idx] -= 0.5
            total += np.sum((reconstruct(plus) - reconstruct(minus)) ** 2)
    return total


@pytest.mark.parametrize("shape", [(5, 4, 3), (4, 3, 2, 3)])
def test_sensitivity_is_the_expected_first_order_change(shape):
    rng = np.random.default_rng(0)
    factors = [rng.standard_normal((n, 3)) for n in shape]
    assert sensitivity(factors) == pytest.approx(jacobian_norm2(factors), rel=1e-12)
    if len(shape) == 3:
        a, b, c = (np.sum(f * f, axis=0) for f in factors)
        i1, i2, i3 = shape
        assert sensitivity(factors) == pytest.approx(np.sum(i3 * a * b + i2 * a * c + i1 * b * c), rel=1e-12)
    # a tensorly (weights, factors) pair folds its weights into the first factor
    w = np.array([2.0, 0.5, 1.0])
    assert sensitivity((w, factors)) == pytest.approx(sensitivity([factors[0] * w] + factors[1:]), rel=1e-12)


def test_gauge_rescales_terms_to_their_least_sensitive_form():
    rng = np.random.default_rng(6)
    shape = (16, 12, 9)
    factors = [rng.standard_normal((n, 4)) for n in shape]
    out = gauge(factors)
    np.testing.assert_allclose(reconstruct(out), reconstruct(factors), atol=1e-12)
    # |u_r^(n)|^2 proportional to I_n; per term ss_r = N * P_r^(2/3) * (I1 I2 I3)^(1/3), P_r = prod |u_r^(n)|
    n2 = np.stack([np.sum(f * f, axis=0) for f in out])
    np.testing.assert_allclose(n2 / np.array(shape)[:, None], np.broadcast_to(n2[:1] / 16, n2.shape), rtol=1e-12)
    p = np.prod([np.linalg.norm(f, axis=0) for f in factors], axis=0)
    assert sensitivity(out) == pytest.approx(np.sum(3 * p ** (4 / 3) * np.prod(shape) ** (1 / 3)), rel=1e-12)
    for _ in range(20):                                     # no other rescaling of the terms does better
        s = np.exp(rng.normal(size=(3, 4)) * 0.3)
        s[2] = 1 / (s[0] * s[1])
        assert sensitivity([f * k[None, :] for f, k in zip(out, s)]) >= sensitivity(out)


def test_one_factor_step_is_the_constrained_optimum():
    """The closed form (1-D root in the multiplier) equals a generic solver on the same QCQP."""
    rng = np.random.default_rng(1)
    t = rng.standard_normal((5, 4, 3))
    f = cpd(t, 3)
    delta2 = residual_norm(t, f) ** 2
    kr, unf, d = khatri_rao(f, skip_matrix=0), tl.unfold(t, 0), E._penalty(f, 0)
    x, e = E._update(unf, kr, f[0], d, delta2, delta2)

    def objective(v):
        return np.sum(d * np.sum(v.reshape(5, 3) ** 2, axis=0))
    bound = {"type": "ineq", "fun": lambda v: (delta2 - np.sum((unf - v.reshape(5, 3) @ kr.T) ** 2)) / delta2}
    ref = minimize(objective, f[0].ravel(), constraints=[bound], method="SLSQP",
                   options={"ftol": 1e-15, "maxiter": 2000})
    assert e <= delta2 and np.sum((unf - x @ kr.T) ** 2) == pytest.approx(delta2, rel=1e-9)
    assert objective(x) == pytest.approx(ref.fun, rel=1e-8)                # 128.0916 both
    assert objective(x) < objective(f[0])


def cpd(t, rank, n_iter=200):
    """Balanced CPD factors of a 3-way or 4-way tensor (the layer code's own CPD)."""
    return cp3_factors(t[..., None], rank, n_iter=n_iter) if t.ndim == 3 else cp4_factors(t, rank, n_iter=n_iter)


@pytest.mark.parametrize("shape,rank", [((12, 10, 9), 12), ((8, 6, 3, 3), 10)])
def test_epc_keeps_the_error_and_lowers_sensitivity_on_random_tensors(shape, rank):
    t = np.random.default_rng(2).standard_normal(shape)
    start = cpd(t, rank)
    delta = residual_norm(t, start)
    out = epc(t, start, delta, n_iter=60)
    assert residual_norm(t, out) <= delta * (1 + 1e-9)
    assert sensitivity(out) < 0.98 * sensitivity(start)                  # 0.963 and 0.876 of the start
    # more sweeps never raise the sensitivity
    assert sensitivity(epc(t, start, delta, n_iter=120)) <= sensitivity(out)


def trained_like(o, i, kh, kw, seed):
    """A kernel with a geometric channel spectrum (0.75^k) and smooth-ish spatial taps."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((o, o)))[0]
    v = np.linalg.qr(rng.standard_normal((i * kh * kw, o)))[0]
    return ((u * 0.75 ** np.arange(o)) @ v.T).reshape(o, i, kh, kw)


@pytest.mark.parametrize("fn", [cp3, cp4])
def test_epc_on_a_trained_like_kernel_through_the_layer_api(fn):
    w = trained_like(16, 12, 3, 3, seed=3)
    subs, report = fn(w, 12, epc=True, epc_iter=40)
    (e0, e1), (s0, s1) = report["error"], report["sensitivity"]
    assert e1 <= e0 * (1 + 1e-9) and s1 < 0.85 * s0                     # 0.767 (CP-3), 0.689 (CP-4)
    # the chain carries the EPC factors: its kernel has the reported error and sensitivity
    t = w.reshape(16, 12, 9) if fn is cp3 else w
    assert np.linalg.norm(fold_cp(subs) - w) / np.linalg.norm(w) == pytest.approx(e1, rel=1e-9)
    assert sensitivity(cp_chain_factors(subs)) == pytest.approx(s1, rel=1e-9)
    plain, r_plain = fn(w, 12)
    assert r_plain["error"][0] == pytest.approx(e0, rel=1e-12) and r_plain["sensitivity"] == [s0, s0]
    assert residual_norm(t, cp_chain_factors(subs)) <= e0 * np.linalg.norm(w) * (1 + 1e-9)


def test_a_start_outside_the_bound_is_brought_inside():
    t = np.random.default_rng(4).standard_normal((10, 8, 5))
    rough = cpd(t, 8, n_iter=2)
    good = cpd(t, 8, n_iter=300)
    delta = 0.5 * (residual_norm(t, rough) + residual_norm(t, good))
    assert residual_norm(t, rough) > delta
    out = epc(t, rough, delta, n_iter=50)
    assert residual_norm(t, out) <= delta * (1 + 1e-9)


def test_a_looser_bound_allows_a_lower_sensitivity():
    t = np.random.default_rng(5).standard_normal((10, 8, 6))
    start = cpd(t, 10)
    delta = residual_norm(t, start)
    tight, loose = epc(t, start, delta, n_iter=30), epc(t, start, 1.2 * delta, n_iter=30)
    assert residual_norm(t, loose) <= 1.2 * delta * (1 + 1e-9)
    assert sensitivity(loose) < sensitivity(tight)


def test_bad_arguments():
    t = np.zeros((3, 4, 5))
    f = [np.ones((3, 2)), np.ones((4, 2)), np.ones((5, 2))]
    with pytest.raises(ValueError, match="do not match"):
        epc(t, f[:2], 1.0)
    with pytest.raises(ValueError, match="delta"):
        epc(t, f, -1.0)
