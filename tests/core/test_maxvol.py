"""maxvol / rect_maxvol against their defining properties and brute force."""
import itertools

import numpy as np
import pytest

from lrd_core.errors import LRDError
from lrd_core.reduce import maxvol, rect_maxvol


def _tall(n, r, seed):
    return np.random.default_rng(seed).standard_normal((n, r))


@pytest.mark.parametrize("n,r,seed", [(200, 6, 0), (50, 10, 1), (12, 12, 2), (300, 1, 3)])
def test_maxvol_coefficients_bounded_and_identity_rows(n, r, seed):
    A = _tall(n, r, seed)
    rows, coef = maxvol(A, tol=1.05)
    assert len(set(rows.tolist())) == r
    np.testing.assert_allclose(coef, A @ np.linalg.inv(A[rows]), atol=1e-10)
    np.testing.assert_allclose(coef[rows], np.eye(r), atol=1e-12)
    assert np.abs(coef).max() <= 1.05 + 1e-12


def test_maxvol_determinant_vs_brute_force_and_random_choices():
    A = _tall(11, 3, 4)
    rows, _ = maxvol(A, tol=1.0)
    det = abs(np.linalg.det(A[rows]))
    best = max(abs(np.linalg.det(A[list(c)])) for c in itertools.combinations(range(11), 3))
    # A dominant submatrix (|coef| <= 1) is within r^(r/2) of the maximum volume (Hadamard).
    assert det >= best / 3 ** 1.5 - 1e-12
    assert det <= best + 1e-12
    B = _tall(400, 5, 5)
    rows, _ = maxvol(B)
    det = abs(np.linalg.det(B[rows]))
    rng = np.random.default_rng(6)
    random_dets = [abs(np.linalg.det(B[rng.choice(400, 5, replace=False)])) for _ in range(300)]
    assert det >= max(random_dets)


def test_maxvol_swaps_grow_volume_from_bad_start():
    A = _tall(100, 4, 7)
    start = np.arange(4)
    assert np.abs(A @ np.linalg.inv(A[start])).max() > 2        # not dominant: swaps are needed
    rows, coef = maxvol(A, tol=1.05, start=start)
    assert np.abs(coef).max() <= 1.05 + 1e-12
    np.testing.assert_allclose(coef, A @ np.linalg.inv(A[rows]), atol=1e-10)
    assert abs(np.linalg.det(A[rows])) > 2 * abs(np.linalg.det(A[start]))
    free, _ = maxvol(A, tol=1.05)
    assert abs(np.linalg.det(A[rows])) >= abs(np.linalg.det(A[free])) / 1.05 ** 4 / 4 ** 2


@pytest.mark.parametrize("tol", [1.0, 1.05, 1.5])
def test_rect_maxvol_row_norms_and_pinv(tol):
    A = _tall(300, 8, 8)
    rows, coef = rect_maxvol(A, tol=tol)
    assert 8 <= len(rows) == len(set(rows.tolist()))
    np.testing.assert_allclose(coef, A @ np.linalg.pinv(A[rows]), atol=1e-10)
    np.testing.assert_allclose(coef @ A[rows], A, atol=1e-10)
    assert np.linalg.norm(coef, axis=1).max() <= tol + 1e-10
    # Greedy additions only grow the Gram determinant beyond the square start.
    square, _ = maxvol(A)
    assert np.linalg.det(A[rows].T @ A[rows]) >= np.linalg.det(A[square].T @ A[square])
    if tol == 1.0:          # the 1.05 square start alone has rows with norm above 1
        assert len(rows) > 8


def test_rect_maxvol_max_rows_and_min_add():
    A = _tall(300, 8, 9)
    rows, _ = rect_maxvol(A, tol=1.0, max_rows=9)
    assert len(rows) == 9
    rows, coef = rect_maxvol(A, tol=100.0, min_add=4)
    assert len(rows) == 12
    np.testing.assert_allclose(coef, A @ np.linalg.pinv(A[rows]), atol=1e-10)


def test_bad_inputs_raise_lrd_errors():
    with pytest.raises(LRDError, match="tall"):
        maxvol(_tall(3, 5, 0))
    with pytest.raises(LRDError, match="NaN"):
        maxvol(np.full((5, 2), np.nan))
    with pytest.raises(LRDError, match="rank"):
        maxvol(np.ones((6, 2)))
    with pytest.raises(LRDError, match="distinct"):
        maxvol(_tall(10, 3, 0), start=[1, 1, 2])
    with pytest.raises(LRDError, match="max_rows"):
        rect_maxvol(_tall(10, 3, 0), max_rows=2)
    with pytest.raises(LRDError, match="tol"):
        maxvol(_tall(10, 3, 0), tol=0.5)
