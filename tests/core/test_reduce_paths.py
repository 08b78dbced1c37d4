"""Fast paths of the reduced-order numerics against the plain dense computations they replace."""
import numpy as np
import scipy.linalg

from lrd_core.reduce import FrequentDirections, activation_basis
from lrd_core.reduce.ron import TALL, _gram_svd
from lrd_core.reduce.rsvd import exact_svd


def spectrum(m, n, seed, rate=0.8):
    rng = np.random.default_rng(seed)
    q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q1 * rate ** np.arange(n)) @ q2.T


def test_gram_basis_equals_the_dense_svd():
    X = spectrum(5000, 24, 0)
    s, vt = _gram_svd(X)
    _, s_ref, vt_ref = exact_svd(X, 24)
    np.testing.assert_allclose(s[:12], s_ref[:12], rtol=1e-10)
    np.testing.assert_allclose(vt[:12], vt_ref[:12], atol=1e-7)            # same signs, same vectors
    b = activation_basis(X, energy=0.99)
    want = int(np.searchsorted(np.cumsum(s_ref ** 2) / np.sum(s_ref ** 2), 0.99) + 1)
    assert b.rank == want


def test_randomized_basis_on_a_wide_matrix():
    X = spectrum(60, 40, 1)                                   # fewer than TALL rows per column: randomized SVD
    assert X.shape[0] < TALL * X.shape[1]
    fast = activation_basis(X, rank=6, seed=2)
    exact = activation_basis(X, rank=6, randomized=False)
    np.testing.assert_allclose(fast.singular, exact.singular, rtol=1e-6)
    assert np.linalg.norm(fast.vectors @ fast.vectors.T - exact.vectors @ exact.vectors.T, 2) < 1e-5


def _svd_shrink(buf, ell):
    _, s, vt = scipy.linalg.svd(buf, full_matrices=False)
    delta = s[ell - 1] ** 2
    return np.sqrt(np.maximum(s ** 2 - delta, 0.0))[:, None] * vt


def test_frequent_directions_shrink_equals_the_svd_form():
    rng = np.random.default_rng(3)
    buf = rng.standard_normal((16, 300)) * np.linspace(3, 0.1, 16)[:, None]
    fd = FrequentDirections(300, 8)
    out, keep = fd._shrink(buf)
    ref = _svd_shrink(buf, 8)
    assert keep == 7                                          # the 8th direction is shrunk to zero
    np.testing.assert_allclose(out[:keep].T @ out[:keep], ref.T @ ref, atol=1e-9 * np.sum(buf ** 2))
    assert not out[keep:].any()
