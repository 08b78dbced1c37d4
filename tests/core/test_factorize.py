"""SVD and Tucker-2 factorizations against NumPy references."""
import numpy as np
import pytest

from lrd_core.factorize import compose, skeleton, svd, tucker2, tucker2_factors
from lrd_core.layers import LayerInfo

rng = np.random.default_rng(0)


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("shape", [(20, 30), (30, 20), (16, 64, 1, 1)])
def test_svd_full_rank_is_exact(shape):
    w = rng.standard_normal(shape).astype(np.float32)
    subs = svd(w, min(shape[:2]))
    assert rel_err(compose(subs).reshape(shape), w) < 1e-6


def test_svd_error_is_eckart_young_and_monotone():
    w = rng.standard_normal((40, 60))
    s = np.linalg.svd(w, compute_uv=False)
    errors = []
    for r in range(1, 41):
        approx = compose(svd(w, r))
        err = np.linalg.norm(approx - w)
        assert err == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)), rel=1e-5, abs=1e-9)
        errors.append(err)
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_svd_layer_layout_stride_first_bias_last():
    w = rng.standard_normal((8, 6, 1, 1)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    first, last = svd(w, 3, bias=b, stride=(2, 2), padding=(1, 1, 1, 1))
    assert first.weight.shape == (3, 6, 1, 1) and last.weight.shape == (8, 3, 1, 1)
    assert first.stride == (2, 2) and first.padding == (1, 1, 1, 1) and first.bias is None
    assert last.stride == (1, 1) and last.padding == (0, 0, 0, 0) and np.array_equal(last.bias, b)
    assert (first.position, last.position) == ("first", "last")
    # singular values split evenly: both factors have the same singular values
    np.testing.assert_allclose(np.linalg.svd(first.weight[:, :, 0, 0], compute_uv=False),
                               np.linalg.svd(last.weight[:, :, 0, 0], compute_uv=False), rtol=1e-5)


@pytest.mark.parametrize("shape", [(32, 16, 3, 3), (16, 48, 3, 3), (24, 24, 5, 3), (8, 8, 1, 7)])
def test_tucker2_full_rank_is_exact(shape):
    w = rng.standard_normal(shape).astype(np.float32)
    subs = tucker2(w, shape[:2])
    assert rel_err(compose(subs), w) < 1e-6


def test_tucker2_error_monotone_in_rank_and_hooi_beats_hosvd():
    w = rng.standard_normal((48, 32, 3, 3))
    errors = []
    for r in (4, 8, 16, 24, 32):
        ranks = (int(r * 1.5), r)
        hooi = rel_err(compose(tucker2(w, ranks, n_iter=6)), w)
        hosvd = rel_err(compose(tucker2(w, ranks, n_iter=0)), w)
        assert hooi <= hosvd + 1e-9
        errors.append(hooi)
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-6


def test_tucker2_recovers_planted_multilinear_rank():
    core = rng.standard_normal((6, 5, 3, 3))
    u_out = np.linalg.qr(rng.standard_normal((40, 6)))[0]
    u_in = np.linalg.qr(rng.standard_normal((30, 5)))[0]
    w = np.einsum("abhw,oa,ib->oihw", core, u_out, u_in)
    assert rel_err(compose(tucker2(w, (6, 5))), w) < 1e-6


def test_tucker2_matches_tensorly_partial_tucker_error():
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import partial_tucker
    w = rng.standard_normal((64, 48, 3, 3))
    ours = rel_err(compose(tucker2(w, (24, 16), n_iter=10)), w)
    (core, factors), _ = partial_tucker(tl.tensor(w), rank=[24, 16], modes=[0, 1], n_iter_max=50, init="svd",
                                        tol=1e-10)
    theirs = rel_err(tl.tenalg.multi_mode_dot(core, factors, modes=[0, 1]), w)
    assert ours <= theirs * (1 + 1e-3)


def test_tucker2_layout():
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = np.arange(16, dtype=np.float32)
    first, core, last = tucker2(w, (6, 4), bias=b, stride=(2, 2), padding=(1, 1, 1, 1), dilation=(1, 1))
    assert first.weight.shape == (4, 8, 1, 1) and core.weight.shape == (6, 4, 3, 3)
    assert last.weight.shape == (16, 6, 1, 1)
    assert core.stride == (2, 2) and core.padding == (1, 1, 1, 1) and first.stride == (1, 1)
    assert first.bias is None and core.bias is None and np.array_equal(last.bias, b)
    # factors are orthonormal
    u_out, _, u_in = tucker2_factors(w, (6, 4))
    np.testing.assert_allclose(u_out.T @ u_out, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(u_in.T @ u_in, np.eye(4), atol=1e-10)


def test_factorization_is_deterministic():
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    a, b = tucker2(w, (6, 4)), tucker2(w.copy(), (6, 4))
    for x, y in zip(a, b):
        assert np.array_equal(x.weight, y.weight)


def test_skeleton_matches_factorization_shapes():
    info = LayerInfo("c", "conv2d", 8, 16, (3, 3), (2, 2), (1, 1, 1, 1), has_bias=True, input_hw=(10, 10))
    w = rng.standard_normal(info.weight_shape).astype(np.float32)
    real = tucker2(w, (6, 4), bias=np.zeros(16, np.float32), stride=(2, 2), padding=(1, 1, 1, 1))
    skel = skeleton(info, "tucker2", (6, 4))
    assert [s.weight.shape for s in skel] == [s.weight.shape for s in real]
    assert [(s.stride, s.padding, s.has_bias) for s in skel] == [(s.stride, s.padding, s.has_bias) for s in real]
    dense = LayerInfo("fc", "dense", 20, 10, has_bias=True)
    assert [s.weight.shape for s in skeleton(dense, "svd", (5,))] == [(5, 20), (10, 5)]


def test_bad_ranks_raise():
    with pytest.raises(ValueError):
        svd(np.ones((4, 5)), 5)
    with pytest.raises(ValueError):
        tucker2(np.ones((4, 5, 3, 3)), (5, 2))
    with pytest.raises(ValueError):
        svd(np.ones((4, 5, 3, 3)), 2)
