"""lrd_X.reduce (RON, ASNet) in both frameworks: NumPy references, save/load, export, torch == MindSpore."""
import os

import numpy as np
import pytest

from lrd_core.errors import CalibrationError, ConfigError, LRDError, RankError, ReductionError
from lrd_core.reduce import ASNetHead, forward as graph_forward, ron_reduce, with_reduction
from lrd_core.reduce.convert import convert
from lrd_core.reduce.pce import monomial_index
from lrd_data import load_digits
from tests.conftest import _load, perturb_bn

KW = dict(num_classes=10, stem="cifar", width=8)
DIGITS, TEST = load_digits(size=32)
CAL = [DIGITS.x[k:k + 24] for k in range(0, 72, 24)]          # 72 samples in 3 batches
XT = TEST.x[:6]


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def model(fw, seed=3):
    m = fw.models.resnet18(seed=seed, **KW)
    fw.load_numpy(m, perturb_bn(fw.state_to_numpy(m), seed))
    return m


def test_ron_keeps_channels_and_matches_its_numpy_reference(fw, tmp_path):
    original = model(fw)
    before = fw.predict(original, XT)
    reduced, plan = fw.reduce(original, "ron", calibration=CAL, energy=0.99)
    np.testing.assert_array_equal(fw.predict(original, XT), before)             # the input model is untouched
    rec = plan.meta["reduction"]
    streams = {s["name"]: s for s in rec["streams"]}
    assert streams["conv1"]["producers"] == ["conv1", "layer1.0.conv2", "layer1.1.conv2"]
    weights = fw.state_to_numpy(reduced)
    for s in rec["streams"]:                                  # every producer keeps exactly the stream's channels
        assert 1 <= len(s["kept"]) < s["channels"] and s["energy"] >= 0.99
        for p in s["producers"]:
            assert weights[p + ".weight"].shape[0] == len(s["kept"])
    assert weights["bn1.weight"].shape == (len(streams["conv1"]["kept"]),)
    last = next(s for s in rec["streams"] if "layer4.1.conv2" in s["producers"])
    assert weights["fc.weight"].shape == (10, len(last["kept"])) and "fc" in last["consumers"]
    # NumPy reference: RON of the float64 description of the model on the same calibration data
    conv = convert(fw.BACKEND, original, (1, 3, 32, 32))
    _, acts = graph_forward(conv.net, np.concatenate(CAL), record=True)
    ref = ron_reduce(conv.net, acts, (3, 32, 32), energy=0.99)
    assert [s.kept.tolist() for s in ref.streams] == [s["kept"] for s in rec["streams"]]
    assert rel(fw.predict(reduced, XT), graph_forward(ref.net, XT)) < 1e-5
    assert rec["totals"]["params_after"] == plan.totals["params_after"] < rec["totals"]["params_before"] / 2
    assert rec["macs_after"] == ref.macs_after == plan.totals["macs_after"] < 0.8 * rec["macs_before"]
    fw.save(reduced, plan, str(tmp_path / "r"))
    again = fw.load(str(tmp_path / "r"), fw.models.resnet18(**KW))
    np.testing.assert_array_equal(fw.predict(again, XT), fw.predict(reduced, XT))


def test_ron_error_shrinks_with_energy(fw):
    original = model(fw)
    ref = fw.predict(original, XT)
    errors, macs = [], []
    for energy in (0.9, 0.999, 1.0):
        reduced, plan = fw.reduce(original, "ron", calibration=CAL, energy=energy)
        errors.append(rel(fw.predict(reduced, XT), ref))
        macs.append(plan.meta["reduction"]["macs_after"])
    assert errors[0] > errors[1] > errors[2] and macs[0] < macs[1] <= macs[2]
    assert errors[2] < 1e-4                                      # all energy: only exact lifts remain


def test_ron_flop_budget_and_tucker_on_top(fw, tmp_path):
    original = model(fw)
    reduced, plan = fw.reduce(original, "ron", calibration=CAL, flop_budget=0.4)
    rec = plan.meta["reduction"]
    assert rec["macs_after"] <= 0.4 * rec["macs_before"]
    assert all(len(s["kept"]) == s["rank"] for s in rec["streams"])
    shape = (1, 3, 32, 32)
    tucker = fw.plan(reduced, input_shape=shape, mode="mode1", rank_selection="pr", ratio=1.5, rank_multiple=1)
    assert tucker.decomposed()
    fw.compress(reduced, tucker)
    with_reduction(tucker, plan)
    fw.save(reduced, tucker, str(tmp_path / "rt"))
    again = fw.load(str(tmp_path / "rt"), fw.models.resnet18(**KW))
    np.testing.assert_array_equal(fw.predict(again, XT), fw.predict(reduced, XT))
    with pytest.raises(ConfigError, match="made by reduce"):
        fw.compress(fw.models.resnet18(**KW), plan)


def test_asnet_head_matches_numpy_and_reloads(fw, tmp_path):
    original = model(fw)
    labelled = [(DIGITS.x[k:k + 24], DIGITS.y[k:k + 24]) for k in range(0, 72, 24)]
    for data, kind in ((CAL, "outputs"), (labelled, "loss")):
        reduced, plan = fw.reduce(original, "asnet", calibration=data, cut="layer3", dim=4)
        rec = plan.meta["reduction"]
        assert rec["cut"] == "layer3.0" and rec["gradients"] == kind and rec["head"]["terms"] == 15
        assert rec["cut_shape"] == [16, 16, 16] and rec["head"]["features"] == 4096
    w = {k: v.astype(np.float64) for k, v in fw.state_to_numpy(reduced).items()}
    scale = w["head.norm.weight"] / np.sqrt(w["head.norm.running_var"] + rec["head"]["norm_eps"])
    np.testing.assert_allclose(w["head.projection.weight"] @ w["head.projection.weight"].T, np.eye(4), atol=1e-5)
    arrays = {"projection_weight": scale[:, None] * w["head.projection.weight"],         # the folded Dense
              "projection_bias": scale * (w["head.projection.bias"] - w["head.norm.running_mean"])
              + w["head.norm.bias"], "poly_index": monomial_index(4, 2),
              "output_weight": w["head.output.weight"], "output_bias": w["head.output.bias"]}
    conv = convert(fw.BACKEND, original, (1, 3, 32, 32))
    pre = conv.net[:[op.name for op in conv.net].index("layer3.0")]
    cut = graph_forward(pre, XT)
    assert rel(fw.predict(reduced, XT), ASNetHead.forward_arrays(arrays, cut)) < 1e-5
    assert not any(k.startswith(("layer3", "layer4", "fc")) for k in w)
    fw.save(reduced, plan, str(tmp_path / "a"))
    again = fw.load(str(tmp_path / "a"), fw.models.resnet18(**KW))
    np.testing.assert_array_equal(fw.predict(again, XT), fw.predict(reduced, XT))


def test_input_gradients_against_finite_differences(fw):
    m = model(fw)
    x = TEST.x[:2].astype(np.float64)
    out, g = fw.BACKEND.input_gradients(m, x.astype(np.float32),
                                        lambda o: [np.eye(10, dtype=np.float32)[[k, k]] for k in (2, 7)])
    assert g.shape == (2, 2, 3, 32, 32)
    net = convert(fw.BACKEND, m, (1, 3, 32, 32)).net            # float64 reference of the same model
    d = np.random.default_rng(0).standard_normal(x.shape)
    d /= np.linalg.norm(d.reshape(2, -1), axis=1)[:, None, None, None]
    eps = 1e-5
    fd = (graph_forward(net, x + eps * d) - graph_forward(net, x - eps * d)) / (2 * eps)
    for j, k in enumerate((2, 7)):
        np.testing.assert_allclose(np.einsum("nchw,nchw->n", g[j], d), fd[:, k], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(out, graph_forward(net, x), rtol=1e-4, atol=1e-5)


def test_plain_sequential_cnn_is_supported(fw):
    if fw.FRAMEWORK == "torch":
        from torch import nn
        net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 16 * 16, 32),
                            nn.ReLU(), nn.Linear(32, 10))
    else:
        from mindspore import nn
        net = nn.SequentialCell([nn.Conv2d(3, 12, 3, pad_mode="pad", padding=1, has_bias=True), nn.BatchNorm2d(12),
                                 nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(12, 16, 3, pad_mode="pad", padding=1,
                                                                         has_bias=True),
                                 nn.ReLU(), nn.Flatten(), nn.Dense(16 * 16 * 16, 32), nn.ReLU(), nn.Dense(32, 10)])
    rng = np.random.default_rng(1)
    fw.load_numpy(net, {k: (0.2 * rng.standard_normal(v.shape)).astype(np.float32) if not k.endswith("running_var")
                        else np.ones(v.shape, np.float32) for k, v in fw.state_to_numpy(net).items()
                        if not k.endswith("num_batches_tracked")})
    ref = fw.predict(net, XT)
    reduced, plan = fw.reduce(net, "ron", calibration=CAL, energy=1.0)
    assert rel(fw.predict(reduced, XT), ref) < 1e-4
    assert [s["name"] for s in plan.meta["reduction"]["streams"]] == ["0", "4", "7"]
    head, _ = fw.reduce(net, "asnet", calibration=CAL, cut="7", dim=3)
    assert fw.predict(head, XT).shape == (6, 10)


def test_bad_inputs_raise_one_line_errors(fw):
    m = model(fw)
    cases = [
        (ReductionError, "no layer named 'nope'", dict(method="asnet", cut="nope")),
        (ReductionError, "inside residual block 'layer2.0'", dict(method="asnet", cut="layer2.0.conv2")),
        (RankError, "dim=80 must be", dict(method="asnet", cut="layer3", dim=80)),
        (RankError, "rank 99", dict(method="ron", ranks=99, layers=["layer4.0.conv1"], calibration=CAL[:1])),
        (ConfigError, "belongs to method='asnet'", dict(method="ron", cut="fc")),
        (ConfigError, "unknown reduce method", dict(method="pca")),
        (CalibrationError, r"shape \(24, 3, 28, 28\)", dict(method="ron", calibration=[CAL[0], CAL[1][:, :, :28, :28]])),
        (CalibrationError, "dtype int64", dict(method="ron", calibration=[CAL[0].astype(np.int64)])),
    ]
    for error, text, kw in cases:
        kw = dict({"calibration": CAL}, **kw)
        with pytest.raises(error, match=text) as info:
            fw.reduce(m, **kw)
        assert "\n" not in str(info.value)


def test_unsupported_structure_is_refused(fw):
    if fw.FRAMEWORK == "torch":
        import torch
        from torch import nn

        class Cat(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b, self.fc = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.Linear(8 * 32 * 32, 10)

            def forward(self, x):
                return self.fc(torch.flatten(torch.cat([self.a(x), self.b(x)], 1), 1))
    else:
        from mindspore import nn, ops

        class Cat(nn.Cell):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Conv2d(3, 4, 1, has_bias=True), nn.Conv2d(3, 4, 1, has_bias=True)
                self.fc = nn.Dense(8 * 32 * 32, 10)

            def construct(self, x):
                return self.fc(ops.flatten(ops.cat((self.a(x), self.b(x)), 1)))
    with pytest.raises(ReductionError, match="not supported") as info:
        fw.reduce(Cat(), "ron", calibration=CAL)
    assert "\n" not in str(info.value)


def test_torch_and_mindspore_reduce_to_the_same_network():
    lt, lm = _load("torch"), _load("mindspore")
    mt, mm = model(lt), model(lm)
    mm_arrays = lm.state_to_numpy(mm)
    lt.load_numpy(mt, {k: v for k, v in mm_arrays.items()})
    for method, kw in (("ron", dict(energy=0.98)), ("asnet", dict(cut="layer4", dim=5))):
        rt, pt = lt.reduce(mt, method, calibration=CAL, **kw)
        rm, pm = lm.reduce(mm, method, calibration=CAL, **kw)
        if method == "ron":
            assert [s["kept"] for s in pt.meta["reduction"]["streams"]] == \
                [s["kept"] for s in pm.meta["reduction"]["streams"]]
        a, b = lt.state_to_numpy(rt), lm.state_to_numpy(rm)
        assert sorted(k for k in a if not k.endswith("num_batches_tracked")) == sorted(b)
        for k in b:                          # lifted weights carry pinv(V[I]): float32 noise x its norm
            assert np.linalg.norm(a[k] - b[k]) <= 1e-4 * np.linalg.norm(b[k]) + 1e-6, (method, k)
        assert rel(lt.predict(rt, XT), lm.predict(rm, XT)) < 1e-5


@pytest.mark.parametrize("method,kw", [("ron", dict(energy=0.95)), ("asnet", dict(cut="layer4", dim=3))])
def test_export_reloads_and_matches(fw, tmp_path, method, kw):
    reduced, _ = fw.reduce(model(fw), method, calibration=CAL, **kw)
    formats = ("MINDIR", "ONNX") if fw.FRAMEWORK == "mindspore" else ("ONNX",)
    for fmt in formats:
        path = str(tmp_path / f"m.{fmt.lower()}")
        report = fw.export(reduced, path, input_shape=(2, 3, 32, 32), format=fmt, dynamic_batch=fmt == "ONNX")
        assert os.path.isfile(path) and report["max_abs_diff"] < 1e-4


def test_distillation_loss_in_both_trainers(fw):
    import importlib

    train = importlib.import_module(f"lrd_{fw.FRAMEWORK}.train")
    from lrd_data.loader import train_loader

    teacher = model(fw)
    if fw.FRAMEWORK == "torch":
        from torch import nn
        student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    else:
        from mindspore import nn
        student = nn.SequentialCell([nn.Flatten(), nn.Dense(3 * 32 * 32, 10)])
    rng = np.random.default_rng(0)
    fw.load_numpy(student, {"1.weight": (0.01 * rng.standard_normal((10, 3072))).astype(np.float32),
                            "1.bias": np.zeros(10, np.float32)})
    data = DIGITS.take(64)
    out = train.fit(student, data, [0.0] * 2, 1, batch_size=32, log=None, weight_decay=0.0, teacher=teacher,
                    distill={"alpha": 0.7, "temperature": 3.0})
    x, y = train_loader(data, 32, 0, 0, 1).batch(0, 0)
    s, t = fw.predict(student, x).astype(np.float64), fw.predict(teacher, x).astype(np.float64)

    def log_softmax(a):
        a = a - a.max(1, keepdims=True)
        return a - np.log(np.exp(a).sum(1, keepdims=True))
    lp, lq = log_softmax(s / 3), log_softmax(t / 3)
    want = 0.7 * 9 * (np.exp(lq) * (lq - lp)).sum(1).mean() - 0.3 * log_softmax(s)[np.arange(32), y].mean()
    assert out["curve"][0][1] == pytest.approx(want, abs=2e-5)
    with pytest.raises(LRDError, match="alpha"):
        train.fit(student, data, [0.0] * 2, 1, batch_size=32, log=None, teacher=teacher, distill={"alpha": 2})


def test_calibration_forms_give_the_same_batches(fw):
    from lrd_core.api.reduce import calibration_batches

    want = np.concatenate([DIGITS.x[:40]])
    forms = [[DIGITS.x[:24], DIGITS.x[24:40]], DIGITS.x[:40], DIGITS.take(40),
             [(DIGITS.x[:20], DIGITS.y[:20]), (DIGITS.x[20:40], DIGITS.y[20:40])]]
    if fw.FRAMEWORK == "torch":
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        forms.append(DataLoader(TensorDataset(torch.from_numpy(DIGITS.x[:40]), torch.from_numpy(DIGITS.y[:40])),
                                batch_size=16))
    else:
        import mindspore.dataset as ds
        forms.append(ds.NumpySlicesDataset({"x": DIGITS.x[:40], "y": DIGITS.y[:40]}, shuffle=False).batch(16))
    for form in forms:
        batches, shape = calibration_batches(fw.BACKEND, form)
        assert shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), want)
        labels = [y for _, y in batches]
        if labels[0] is not None:
            np.testing.assert_array_equal(np.concatenate(labels), DIGITS.y[:40])
    batches, _ = calibration_batches(fw.BACKEND, DIGITS, max_samples=70)
    assert [len(x) for x, _ in batches] == [64, 6]
    with pytest.raises(CalibrationError, match="mixes"):
        calibration_batches(fw.BACKEND, [DIGITS.x[:4], (DIGITS.x[4:8], DIGITS.y[4:8])])
    with pytest.raises(ConfigError, match="calibration="):
        calibration_batches(fw.BACKEND, None)


def test_public_zoo_resnets_are_read_and_reduced(fw):
    if fw.FRAMEWORK == "torch":
        from pytorchcv.model_provider import get_model
        net, names = get_model("resnet20_cifar10", pretrained=False), ("features.init_block.conv", "output")
    else:
        from mindcv.models import create_model
        net, names = create_model("resnet18", num_classes=10), ("conv1", "classifier")
    reduced, plan = fw.reduce(net, "ron", calibration=CAL[:1], energy=0.999)
    rec = plan.meta["reduction"]
    assert rec["streams"][0]["producers"][0] == names[0] and rec["verify_error"] < 1e-5
    assert any(names[1] in s["consumers"] for s in rec["streams"])
    seen = CAL[0][:6]            # 24 samples span at most 24 directions of layer4's 1x1 maps: test in-sample
    assert rel(fw.predict(reduced, seen), fw.predict(net, seen)) < 0.15
