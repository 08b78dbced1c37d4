"""RON numerics: bases, selection, weight transforms and whole reduced networks vs the NumPy forward."""
import numpy as np
import pytest

from lrd_core.errors import LRDError
from lrd_core.layers import SubLayer
from lrd_core.reduce import (OUTPUT, Act, BatchNorm, Flatten, GlobalAvgPool, Linear, MaxPool, Residual,
                             activation_basis, budget_ranks, forward, lift_input, record_points, ron_reduce,
                             select_channels, stream_samples)
from lrd_core.reduce.graph import conv2d_nchw


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# --- planted networks: channel c copies base channel b(c) up to a positive scale, so the
# activations after ReLU / max-pool are exactly low-rank ------------------------------------

class Planter:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def pattern(self, out, rank):
        assign = np.concatenate([np.arange(rank), self.rng.integers(0, rank, out - rank)])
        return assign, self.rng.uniform(0.5, 2.0, out)

    def layer(self, name, kind, out, cin, pattern, k=3, noise=0.0, **geo):
        """Conv/dense whose output rows are scaled copies of ``rank`` random base rows."""
        assign, scale = pattern
        k = k if kind == "conv2d" else 1
        shape = (int(assign.max()) + 1, cin) + ((k, k) if kind == "conv2d" else ())
        base = self.rng.standard_normal(shape) / np.sqrt(cin * k * k)
        bias = self.rng.uniform(0.0, 0.2, shape[0])
        w = base[assign] * scale.reshape((-1,) + (1,) * (len(shape) - 1))
        w = w + noise * np.abs(w).mean() * self.rng.standard_normal(w.shape)
        return Linear(name, SubLayer(kind, w, scale * bias[assign], **geo))

    def bn(self, name, pattern, conv_scale_like=None):
        """BN keeping the copy structure: out_c = g_c * BN_base(t_base) with t_c = s_c * t_base."""
        assign, g = pattern
        s = conv_scale_like if conv_scale_like is not None else np.ones_like(g)
        r = int(assign.max()) + 1
        gamma, beta = self.rng.uniform(0.5, 1.5, r), self.rng.uniform(0.0, 0.5, r)
        mean, var = self.rng.standard_normal(r) * 0.1, self.rng.uniform(1.0, 2.0, r)
        eps = 1e-5
        return BatchNorm(name, g * gamma[assign], g * beta[assign], s * mean[assign],
                         s ** 2 * (var[assign] + eps) - eps, eps)


def mlp(seed=0, noise=0.0):
    p = Planter(seed)
    pat1, pat2 = p.pattern(24, 4), p.pattern(20, 3)
    return [p.layer("fc1", "dense", 24, 10, pat1, noise=noise), Act("r1"),
            p.layer("fc2", "dense", 20, 24, pat2, noise=noise), Act("r2", "leaky_relu"),
            Linear("fc3", SubLayer("dense", p.rng.standard_normal((5, 20)), p.rng.standard_normal(5)))]


def cnn(seed=1, noise=0.0):
    """conv-BN-ReLU-maxpool-conv-ReLU-flatten-dense on 3 x 12 x 12."""
    p = Planter(seed)
    pat1, pat2 = p.pattern(12, 4), p.pattern(10, 3)
    unit = (pat1[0], np.ones(12))
    conv1 = p.layer("conv1", "conv2d", 12, 3, unit, padding=(1, 1, 1, 1), noise=noise)
    return [conv1, p.bn("bn1", pat1), Act("relu1"), MaxPool("pool", (2, 2)),
            p.layer("conv2", "conv2d", 10, 12, pat2, padding=(1, 0, 1, 0), stride=(2, 2), noise=noise),
            Act("relu2"), Flatten("flat"),
            Linear("fc", SubLayer("dense", p.rng.standard_normal((4, 10 * 3 * 3)) * 0.1, np.zeros(4)))]


def resnet(seed=2):
    """stem + identity block (one residual stream with the stem) + projection block + GAP + fc."""
    p = Planter(seed)
    s1, inner1 = p.pattern(8, 3), p.pattern(6, 2)
    s2, inner2 = p.pattern(10, 3), p.pattern(10, 4)
    one = lambda pat: (pat[0], np.ones(len(pat[0])))             # noqa: E731  conv scale 1, BN scales
    pad = dict(padding=(1, 1, 1, 1))
    block1 = Residual("layer1.0", [p.layer("layer1.0.conv1", "conv2d", 6, 8, one(inner1), **pad),
                                   p.bn("layer1.0.bn1", inner1), Act("layer1.0.relu"),
                                   p.layer("layer1.0.conv2", "conv2d", 8, 6, one(s1), **pad),
                                   p.bn("layer1.0.bn2", s1)], [])
    block2 = Residual("layer2.0", [p.layer("layer2.0.conv1", "conv2d", 10, 8, one(inner2), stride=(2, 2), **pad),
                                   p.bn("layer2.0.bn1", inner2), Act("layer2.0.relu"),
                                   p.layer("layer2.0.conv2", "conv2d", 10, 10, one(s2), **pad),
                                   p.bn("layer2.0.bn2", s2)],
                      [p.layer("layer2.0.downsample.0", "conv2d", 10, 8, one(s2), k=1, stride=(2, 2)),
                       p.bn("layer2.0.downsample.1", s2)])
    return [p.layer("conv1", "conv2d", 8, 3, one(s1), **pad), p.bn("bn1", s1), Act("relu"), block1, block2,
            GlobalAvgPool("avgpool"), Flatten("flatten"),
            Linear("fc", SubLayer("dense", p.rng.standard_normal((4, 10)), p.rng.standard_normal(4)))]


def data(shape, n, seed):
    return np.random.default_rng(seed).standard_normal((n,) + shape)


# --- the NumPy reference forward -----------------------------------------------------------

def test_reference_conv_and_maxpool_against_loops():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 7, 6))
    sub = SubLayer("conv2d", rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6), stride=(2, 1),
                   padding=(1, 2, 0, 1), dilation=(2, 1), groups=2)
    y = conv2d_nchw(x, sub)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))
    want = np.zeros((2, 6, (10 - 4 - 1) // 2 + 1, 7 - 1 - 1 + 1))
    for o in range(6):
        g = o // 3
        for i in range(want.shape[2]):
            for j in range(want.shape[3]):
                patch = xp[:, 2 * g:2 * g + 2, 2 * i:2 * i + 5:2, j:j + 2]
                want[:, o, i, j] = np.einsum("ncij,cij->n", patch, sub.weight[o]) + sub.bias[o]
    np.testing.assert_allclose(y, want, atol=1e-12)
    pool = MaxPool("p", (3, 3), (2, 2), (1, 1, 1, 1))
    z = pool.forward(x)
    assert z.shape[2:] == pool.out_shape(x.shape[1:])[1:] == (4, 3)
    assert z[1, 2, 0, 0] == x[1, 2, :2, :2].max() and z[0, 3, 2, 1] == x[0, 3, 3:6, 1:4].max()


# --- bases and pure transforms ------------------------------------------------------------

def test_randomized_basis_matches_exact_svd():
    rng = np.random.default_rng(0)
    q1, _ = np.linalg.qr(rng.standard_normal((600, 40)))
    q2, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    X = (q1 * 0.7 ** np.arange(40)) @ q2.T
    fast = activation_basis(X, rank=8, seed=3)
    exact = activation_basis(X, rank=8, randomized=False)
    np.testing.assert_allclose(fast.singular, exact.singular, rtol=1e-8)
    proj = lambda v: v @ v.T                                    # noqa: E731
    assert np.linalg.norm(proj(fast.vectors) - proj(exact.vectors), 2) < 1e-6
    np.testing.assert_allclose(np.abs(fast.vectors.T @ exact.vectors), np.eye(8), atol=1e-6)
    s2 = np.linalg.svd(X, compute_uv=False) ** 2
    for energy in (0.5, 0.9, 0.999):
        want = int(np.searchsorted(np.cumsum(s2) / s2.sum(), energy) + 1)
        b = activation_basis(X, energy=energy, seed=1)
        assert b.rank == want and b.energy >= energy - 1e-12
        assert b.energy == pytest.approx(np.sum(s2[:want]) / s2.sum(), rel=1e-9)


def test_stream_samples_flatten_equals_nchw():
    x = data((5, 3, 4), 2, 0)
    a = stream_samples(x, 5)
    b = stream_samples(x.reshape(2, -1), 5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (24, 5) and np.array_equal(a[1], x[0, :, 0, 1])


def test_interpolation_error_bounded_by_projection_error():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 30)) + 0.05 * rng.standard_normal((500, 30))
    for energy in (0.9, 0.99, 0.9999):
        b = activation_basis(X, energy=energy)
        rows, P = select_channels(b.vectors)
        np.testing.assert_allclose(P @ b.vectors[rows], np.eye(b.rank), atol=1e-10)
        lift = b.vectors @ P
        err = np.linalg.norm(X - X[:, rows] @ lift.T)
        proj = np.sqrt((1 - b.energy) * np.sum(X ** 2))
        # (I - L S) V = 0, so the error is (I - L S) applied to the projection residual.
        assert err <= (1 + np.linalg.norm(lift, 2)) * proj + 1e-9
        assert np.linalg.norm(lift, axis=1).max() <= 1.05 + 1e-9


def test_lift_input_conv_and_flattened_dense():
    rng = np.random.default_rng(2)
    V = np.linalg.qr(rng.standard_normal((9, 3)))[0]
    x = np.einsum("cr,nrhw->nchw", V, rng.standard_normal((2, 3, 7, 6)))   # every pixel in span(V)
    rows, P = select_channels(V)
    conv = SubLayer("conv2d", rng.standard_normal((5, 9, 3, 2)), rng.standard_normal(5), stride=(2, 1),
                    padding=(1, 0, 2, 1), dilation=(1, 2))
    small = lift_input(conv, V @ P)
    assert small.weight.shape == (5, len(rows), 3, 2)
    assert rel(conv2d_nchw(x[:, rows], small), conv2d_nchw(x, conv)) < 1e-12
    dense = SubLayer("dense", rng.standard_normal((4, 9 * 7 * 6)))
    small = lift_input(dense, V @ P)
    assert small.weight.shape == (4, len(rows) * 42)
    assert rel(x[:, rows].reshape(2, -1) @ small.weight.T, x.reshape(2, -1) @ dense.weight.T) < 1e-12


def test_budget_ranks_greedy_by_macs_per_energy():
    # stream 0: 4 channels, read by a 3-output layer; stream 1: 4 channels, read by a 30-output layer.
    fr = [np.array([0.5, 0.3, 0.15, 0.05]), np.array([0.4, 0.3, 0.2, 0.1])]
    layers = [(0, 4, -1, 10, 1.0), (-1, 3, 0, 4, 1.0), (1, 4, -1, 10, 1.0), (-1, 30, 1, 4, 1.0)]
    # full cost 13*4 + 40*4 = 212; dropping one of stream 1 saves 40 per step, stream 0 saves 13.
    assert budget_ranks(fr, layers, 212) == [4, 4]
    assert budget_ranks(fr, layers, 172) == [4, 3]      # 40/0.1 = 400 beats 13/0.05 = 260
    # then 13/0.05 = 260 beats 40/0.2 = 200 (cost 159), then 200 beats 13/0.15 = 87 (cost 119)
    assert budget_ranks(fr, layers, 132) == [3, 2]
    with pytest.raises(LRDError, match="budget"):
        budget_ranks(fr, layers, 50)


# --- whole networks ------------------------------------------------------------------------

def test_mlp_exactly_low_rank_is_reproduced():
    net = mlp()
    _, rec = forward(net, data((10,), 300, 0), record=True)
    assert record_points(net, (10,)) == ["fc2", "fc3"]
    res = ron_reduce(net, rec, (10,), energy=1 - 1e-10)
    assert [s.rank for s in res.streams] == [4, 3]
    xt = data((10,), 64, 1)
    assert rel(forward(res.net, xt), forward(net, xt)) < 1e-6
    fc1, fc2, fc3 = (op.layer for op in res.net if isinstance(op, Linear))
    k1, k2 = (len(s.kept) for s in res.streams)
    assert fc1.weight.shape == (k1, 10) and fc2.weight.shape == (k2, k1) and fc3.weight.shape == (5, k2)
    assert res.macs_before == 24 * 10 + 20 * 24 + 5 * 20 and res.macs_after == k1 * 10 + k2 * k1 + 5 * k2
    rec_d = res.to_dict()
    assert rec_d["streams"][0]["kept"] == res.streams[0].kept.tolist() and rec_d["streams"][1]["rank"] == 3


def test_mlp_reduced_output_gets_lift_layer():
    net = mlp()
    _, rec = forward(net, data((10,), 300, 0), record=True)
    res = ron_reduce(net, rec, (10,), layers=["fc1", "fc2", "fc3"], ranks={"fc1": 4, "fc2": 3, "fc3": 5})
    assert [op.name for op in res.appended] == ["fc3.ron_lift"] and res.net[-1] is res.appended[0]
    xt = data((10,), 32, 2)
    assert rel(forward(res.net, xt), forward(net, xt)) < 1e-6
    res = ron_reduce(net, rec, (10,), layers=["fc2", "fc3"], flop_budget=0.5)
    assert res.appended and res.macs_after <= 0.5 * res.macs_before
    with pytest.raises(LRDError, match="fc9"):
        ron_reduce(net, rec, (10,), ranks={"fc1": 4, "fc2": 3, "fc9": 2})


def test_cnn_exactly_low_rank_is_reproduced():
    net = cnn()
    _, rec = forward(net, data((3, 12, 12), 20, 3), record=True)
    res = ron_reduce(net, rec, (3, 12, 12), energy=1 - 1e-10, seed=5)
    assert [s.name for s in res.streams] == ["conv1", "conv2"] and [s.rank for s in res.streams] == [4, 3]
    xt = data((3, 12, 12), 8, 4)
    assert rel(forward(res.net, xt), forward(net, xt)) < 1e-6
    k1, k2 = (len(s.kept) for s in res.streams)
    byname = {op.name: op for op in res.net}
    assert byname["conv1"].layer.weight.shape == (k1, 3, 3, 3)
    assert byname["bn1"].gamma.shape == (k1,)
    assert byname["conv2"].layer.weight.shape == (k2, k1, 3, 3)
    assert byname["fc"].layer.weight.shape == (4, k2 * 9)
    assert set(res.replaced) == {"conv1", "bn1", "conv2", "fc"}
    assert res.macs_after < res.macs_before / 2


def test_residual_stream_shares_one_selection():
    net = resnet()
    _, rec = forward(net, data((3, 8, 8), 12, 5), record=True)
    res = ron_reduce(net, rec, (3, 8, 8), energy=1 - 1e-10)
    by = {s.name: s for s in res.streams}
    assert set(by) == {"conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.conv2"}
    assert by["conv1"].producers == ["conv1", "layer1.0.conv2"]
    assert by["layer2.0.conv2"].producers == ["layer2.0.conv2", "layer2.0.downsample.0"]
    assert sorted(by["conv1"].consumers) == ["layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0"]
    assert [by[k].rank for k in ("conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.conv2")] == [3, 2, 4, 3]
    xt = data((3, 8, 8), 6, 6)
    assert rel(forward(res.net, xt), forward(net, xt)) < 1e-6
    block1 = next(op for op in res.net if op.name == "layer1.0")
    assert block1.shortcut == []                                     # identity path stays plain
    k = len(by["conv1"].kept)
    assert block1.main[3].layer.weight.shape[0] == k == res.net[0].layer.weight.shape[0]
    assert block1.main[4].gamma.shape == (k,)


def test_error_follows_energy_on_nearly_low_rank_cnn():
    net = cnn(seed=7, noise=0.03)
    _, rec = forward(net, data((3, 12, 12), 20, 8), record=True)
    xt = data((3, 12, 12), 8, 9)
    ref = forward(net, xt)
    errors, macs = [], []
    for energy in (0.9, 0.99, 0.999, 0.99999, 1.0):
        res = ron_reduce(net, rec, (3, 12, 12), energy=energy)
        errors.append(rel(forward(res.net, xt), ref))
        macs.append(res.macs_after)
    assert all(a >= b for a, b in zip(errors, errors[1:])) and all(a <= b for a, b in zip(macs, macs[1:]))
    assert errors[0] > 1e-3 and errors[-1] < 1e-10


def test_flop_budget_is_met_and_tighter_budgets_cost_accuracy():
    net = cnn(seed=7, noise=0.03)
    _, rec = forward(net, data((3, 12, 12), 20, 8), record=True)
    xt = data((3, 12, 12), 8, 9)
    ref = forward(net, xt)
    errors = []
    for budget in (0.8, 0.4, 0.15):
        res = ron_reduce(net, rec, (3, 12, 12), flop_budget=budget)
        assert res.macs_after <= budget * res.macs_before
        assert all(len(s.kept) == s.rank for s in res.streams)
        errors.append(rel(forward(res.net, xt), ref))
    assert errors[0] < errors[-1]


def test_bad_inputs_raise_one_clear_error():
    net = cnn()
    x = data((3, 12, 12), 4, 0)
    _, rec = forward(net, x, record=True)
    with pytest.raises(LRDError, match="'conv2'"):
        ron_reduce(net, {k: v for k, v in rec.items() if k != "conv2"}, (3, 12, 12))
    with pytest.raises(LRDError, match="shape"):
        ron_reduce(net, dict(rec, conv2=rec["conv2"][:, :, :3]), (3, 12, 12))
    with pytest.raises(LRDError, match="nope"):
        ron_reduce(net, rec, (3, 12, 12), layers=["nope"])
    with pytest.raises(LRDError, match="only one"):
        ron_reduce(net, rec, (3, 12, 12), energy=0.9, ranks=2)
    with pytest.raises(LRDError, match="rank 13"):
        ron_reduce(net, rec, (3, 12, 12), ranks={"conv1": 13, "conv2": 2})
    mlp_net = mlp()
    _, rec = forward(mlp_net, data((10,), 3, 0), record=True)
    with pytest.raises(LRDError, match="samples"):
        ron_reduce(mlp_net, rec, (10,), ranks=4)
    with pytest.raises(LRDError, match="NaN"):
        ron_reduce(mlp_net, dict(rec, fc2=np.full_like(rec["fc2"], np.nan)), (10,))
    with pytest.raises(LRDError, match="input of"):
        ron_reduce(mlp_net, {OUTPUT: rec[OUTPUT]}, (10,))
    grouped = cnn()
    grouped[4].layer.groups, grouped[4].layer.weight = 2, grouped[4].layer.weight[:, :6]
    _, rec = forward(grouped, x, record=True)
    with pytest.raises(LRDError, match="'conv2' is a grouped conv"):
        ron_reduce(grouped, rec, (3, 12, 12), layers=["conv1"])
    with pytest.raises(LRDError, match="'conv2' is a grouped conv"):
        ron_reduce(grouped, rec, (3, 12, 12), layers=["conv2"])
    with pytest.raises(LRDError, match="unique"):
        ron_reduce(mlp_net + [Linear("fc1", SubLayer("dense", np.eye(5)))], {}, (10,))
