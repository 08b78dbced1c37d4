"""ASNet numerics: frequent directions, active subspace, Hermite PCE head and its native form."""
import math

import numpy as np
import pytest
from numpy.polynomial import hermite_e

from lrd_core.errors import LRDError
from lrd_core.layers import SubLayer
from lrd_core.reduce import (ASNetHead, Act, FrequentDirections, Linear, Residual, active_subspace,
                             asnet_from_gradients, fit_head, hermite_features, multi_indices, n_terms, split_at)
from lrd_core.reduce.pce import fit_coefficients, hermite_to_monomial, monomial_features, monomial_index


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def decaying(n, d, seed, rate=0.8):
    rng = np.random.default_rng(seed)
    q1, _ = np.linalg.qr(rng.standard_normal((n, d)))
    q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q1 * rate ** np.arange(d)) @ q2.T * 10


@pytest.mark.parametrize("ell", [4, 10, 25])
def test_frequent_directions_guarantee(ell):
    A = decaying(500, 30, 0) + 0.3 * np.random.default_rng(1).standard_normal((500, 30))
    fd = FrequentDirections(30, ell)
    for start in range(0, 481, 37):                           # chunks of 36 rows, then one single row
        fd.update(A[start:start + 36]).update(A[start + 36])
    fd.update(A[481:])
    B = fd.sketch()
    assert B.shape == (ell, 30) and fd.rows_seen == 500
    gap = A.T @ A - B.T @ B
    bound = np.sum(A ** 2) / ell
    assert np.linalg.norm(gap, 2) <= bound
    assert np.linalg.eigvalsh(gap).min() >= -1e-9 * bound      # the sketch never over-estimates
    assert np.linalg.norm(gap, 2) > 0                         # a real sketch, not the data


def test_frequent_directions_exact_below_sketch_rank():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 40))
    B = FrequentDirections(40, 8).update(A).sketch()
    np.testing.assert_allclose(B.T @ B, A.T @ A, atol=1e-8 * np.sum(A ** 2))


def test_active_subspace_recovers_ridge_directions():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((2, 20))
    x = rng.standard_normal((100, 20))
    u = x @ W.T
    grads = (np.stack([2 * u[:, 0] + u[:, 1], u[:, 0] + 3], axis=1)) @ W     # grad of u0^2 + u0 u1 + 3 u1
    B = FrequentDirections(20, 6).update(grads).sketch()
    V, eig = active_subspace(B, 2)
    q, _ = np.linalg.qr(W.T)
    cosines = np.linalg.svd(q.T @ V, compute_uv=False)
    np.testing.assert_allclose(cosines, 1.0, atol=1e-10)
    assert eig[0] >= eig[1] > 0


@pytest.mark.parametrize("r,d", [(1, 1), (3, 2), (4, 3), (10, 2)])
def test_pce_terms_and_monomial_form(r, d):
    alphas = multi_indices(r, d)
    assert len(alphas) == n_terms(r, d) == math.comb(r + d, d)
    assert alphas.sum(axis=1).max() == d and len({tuple(a) for a in alphas}) == len(alphas)
    assert list(alphas.sum(axis=1)) == sorted(alphas.sum(axis=1)) and not alphas[0].any()
    z = np.random.default_rng(r).standard_normal((50, r))
    mono = np.concatenate([np.ones((50, 1)), monomial_features(z, monomial_index(r, d))], axis=1)
    expect = np.stack([np.prod(z ** a, axis=1) for a in alphas], axis=1)      # same index order
    np.testing.assert_allclose(mono, expect, rtol=1e-12)
    np.testing.assert_allclose(mono @ hermite_to_monomial(alphas), hermite_features(z, alphas), atol=1e-10)


def test_hermite_features_orthonormal_under_gaussian():
    nodes, weights = hermite_e.hermegauss(5)                 # exact up to degree 9 per variable
    weights = weights / np.sqrt(2 * np.pi)
    grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
    w = np.outer(weights, weights).ravel()
    phi = hermite_features(grid, multi_indices(2, 3))
    np.testing.assert_allclose(phi.T @ (w[:, None] * phi), np.eye(10), atol=1e-12)


def test_ridge_matches_normal_equations():
    rng = np.random.default_rng(4)
    phi, y = rng.standard_normal((30, 6)), rng.standard_normal((30, 2))
    coef, _ = fit_coefficients(phi, y, ridge=0.5)
    np.testing.assert_allclose(coef, np.linalg.solve(phi.T @ phi + 0.5 * np.eye(6), phi.T @ y), rtol=1e-10)


def _quadratic_logits(u, seed, k=4):
    """k outputs, each a random polynomial of total degree 2 in the columns of u."""
    rng = np.random.default_rng(seed)
    r = u.shape[1]
    lin, quad, const = rng.standard_normal((r, k)), rng.standard_normal((r, r, k)), rng.standard_normal(k)
    y = const + u @ lin + np.einsum("ni,nj,ijk->nk", u, u, quad)
    grad = lin[None] + np.einsum("nj,ijk->nik", u, quad + quad.transpose(1, 0, 2))     # (n, r, k) d y_k / d u
    return y, grad


def test_pce_head_exact_on_polynomial_target_and_native_arrays_match():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 3, 2, 2)) + 1.0                 # a conv cut activation, D = 12
    V = np.linalg.qr(rng.standard_normal((12, 3)))[0]
    y, _ = _quadratic_logits(x.reshape(200, -1) @ V, 6)
    head = fit_head(x, y, V, degree=2)
    assert head.residual < 1e-10 and head.coef.shape == (10, 4)
    xt = rng.standard_normal((40, 3, 2, 2)) + 1.0
    yt, _ = _quadratic_logits(xt.reshape(40, -1) @ V, 6)
    assert rel(head.predict(xt), yt) < 1e-10
    z = head.reduce(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)
    arrays = head.arrays()
    assert arrays["projection_weight"].shape == (3, 12) and arrays["poly_index"].shape == (9, 2)
    assert arrays["output_weight"].shape == (4, 9) and arrays["output_bias"].shape == (4,)
    assert rel(ASNetHead.forward_arrays(arrays, xt), yt) < 1e-5              # float32 arrays
    assert head.to_dict() == {"method": "asnet", "dim": 3, "degree": 2, "terms": 10, "features": 12,
                              "outputs": 4, "residual": head.residual}


def test_asnet_from_gradients_end_to_end():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, 30))
    x = rng.standard_normal((150, 30))
    y, gu = _quadratic_logits(x @ W.T, 8)
    rows = np.einsum("nik,id->nkd", gu, W)                      # per sample, per output gradient rows
    head = asnet_from_gradients(x, y, rows, dim=3, degree=2, seed=0)
    xt = rng.standard_normal((50, 30))
    yt, _ = _quadratic_logits(xt @ W.T, 8)
    assert rel(head.predict(xt), yt) < 1e-8
    short = asnet_from_gradients(x, y, rows, dim=2, degree=2)   # a 2-D subspace cannot be exact
    assert rel(short.predict(xt), yt) > 1e-3


def _net():
    lin = lambda n: Linear(n, SubLayer("dense", np.eye(4)))     # noqa: E731
    return [lin("fc1"), Act("relu1"), Residual("block", [lin("block.fc"), Act("block.relu")], []), lin("fc2")]


def test_split_at_cut_layers():
    pre, post = split_at(_net(), "block")
    assert [op.name for op in pre] == ["fc1", "relu1"] and [op.name for op in post] == ["block", "fc2"]
    with pytest.raises(LRDError, match="inside residual block 'block'"):
        split_at(_net(), "block.fc")
    with pytest.raises(LRDError, match="no layer named 'conv9'.*fc2"):
        split_at(_net(), "conv9")


def test_bad_inputs_raise_one_clear_error():
    rng = np.random.default_rng(9)
    x, y, V = rng.standard_normal((20, 6)), rng.standard_normal((20, 3)), np.eye(6)[:, :2]
    grads = rng.standard_normal((40, 6))
    with pytest.raises(LRDError, match="dim=7"):
        asnet_from_gradients(x, y, grads, dim=7)
    with pytest.raises(LRDError, match="dim=5.*samples"):
        asnet_from_gradients(x[:4], y[:4], grads, dim=5)
    with pytest.raises(LRDError, match="degree"):
        fit_head(x, y, V, degree=0)
    with pytest.raises(LRDError, match="NaN"):
        fit_head(np.where(x > 2, np.nan, x), y, V)
    with pytest.raises(LRDError, match="NaN"):
        asnet_from_gradients(x, y, np.full_like(grads, np.inf), dim=2)
    with pytest.raises(LRDError, match="same N"):
        fit_head(x, y[:5], V)
    with pytest.raises(LRDError, match="features"):
        asnet_from_gradients(x, y, rng.standard_normal((40, 7)), dim=2)
    with pytest.raises(LRDError, match="terms"):
        fit_head(x[:8], y[:8], np.eye(6)[:, :4], degree=2)          # 15 terms, 8 samples
    head = fit_head(x[:8], y[:8], np.eye(6)[:, :4], degree=2, ridge=1e-3)
    assert head.coef.shape == (15, 3)
    with pytest.raises(LRDError, match="ell"):
        FrequentDirections(6, 0)
