"""`lrd export` end to end, and the clear errors for devices and runtimes that are not here."""
import os
import types

import pytest

from lrd_bench import lite as bench_lite
from lrd_cli.main import main
from lrd_core.errors import DeviceError, MismatchError


@pytest.fixture(scope="module")
def compressed_dir(tmp_path_factory):
    """A torch-compressed CIFAR-stem ResNet-18 saved as DIR/plan.json + DIR/model.pt."""
    import lrd_torch
    model = lrd_torch.models.resnet18(stem="cifar", width=16, num_classes=10, seed=0)
    plan = lrd_torch.plan(model, input_shape=(1, 3, 32, 32), mode="vanilla", ratio=2.0, rank_multiple=8)
    plan.meta["model_kwargs"] = {"stem": "cifar", "width": 16, "num_classes": 10}
    lrd_torch.compress(model, plan)
    return lrd_torch.save(model, plan, str(tmp_path_factory.mktemp("c") / "compressed"))


@pytest.mark.parametrize("framework, fmt, suffix", [("torch", "MINDIR", "mindir"), ("mindspore", "ONNX", "onnx"),
                                                    ("torch", "ONNX", "onnx")])
def test_lrd_export_from_compressed_dir(compressed_dir, tmp_path, capsys, framework, fmt, suffix):
    out = str(tmp_path / f"net.{suffix}")
    code = main(["export", "--framework", framework, "--model", "resnet18", "--compressed", compressed_dir,
                 "--format", fmt.lower(), "--out", out, "--batch", "2"])
    text = capsys.readouterr().out
    assert code == 0 and os.path.getsize(out) > 100_000
    assert "max abs diff" in text and ("dynamic" if fmt == "ONNX" else "static") in text
    assert os.listdir(tmp_path) == [f"net.{suffix}"]


def _one_line_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_export_errors(tmp_path, capsys):
    _one_line_error(capsys, ["export", "--model", "resnet18", "--compressed", str(tmp_path), "--format", "MINDIR",
                             "--out", str(tmp_path / "x.mindir")], "no plan.json", "lrd compress")
    assert os.listdir(tmp_path) == []


def test_missing_devices_give_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    _one_line_error(capsys, ["bench", "model", "--framework", "mindspore", "--model", "resnet18", "--device", "Ascend",
                             "--out", out], "Ascend", "--device CPU")
    _one_line_error(capsys, ["bench", "model", "--framework", "torch", "--model", "resnet18", "--device", "Ascend",
                             "--out", out], "--framework mindspore")
    _one_line_error(capsys, ["bench", "layer", "--framework", "mindspore", "--device", "GPU", "--out", out], "GPU")
    import torch
    if not torch.cuda.is_available():
        _one_line_error(capsys, ["bench", "model", "--framework", "torch", "--model", "resnet18", "--device", "GPU",
                                 "--out", out], "CUDA")
    assert not os.path.exists(out)


def test_device_checks_in_python():
    import lrd_mindspore
    import lrd_torch
    msl, tl = lrd_mindspore.latency, lrd_torch.latency
    with pytest.raises(DeviceError, match="Ascend"):
        msl.check_device("Ascend")
    with pytest.raises(DeviceError, match="Ascend"):
        tl.check_device("Ascend")
    for lat in (msl, tl):
        with pytest.raises(DeviceError, match="unknown device"):
            lat.check_device("TPU")
        assert lat.check_device("cpu") == "CPU"


def test_lite_missing_is_a_clear_error(tmp_path, capsys):
    try:
        import mindspore_lite  # noqa: F401
        pytest.skip("mindspore_lite is installed here")
    except ImportError:
        pass
    with pytest.raises(DeviceError, match="mindspore_lite is not installed"):
        bench_lite.import_lite()
    _one_line_error(capsys, ["bench", "lite", "--mindir", str(tmp_path / "a.mindir"), "--device", "Ascend",
                             "--out", str(tmp_path / "r.json")], "mindspore_lite is not installed", "same version")
    assert os.listdir(tmp_path) == []


def test_lite_version_mismatch_and_refused_mindir(tmp_path):
    old = types.SimpleNamespace(__version__="2.0.0")
    with pytest.raises(DeviceError, match="2.0.0.*2.10"):
        bench_lite.check_version(old, "2.10.0")
    bench_lite.check_version(types.SimpleNamespace(__version__="2.10.1"), "2.10.0")     # same minor: fine

    class Refusing:
        def build_from_file(self, path, kind, context):
            raise RuntimeError("model version is newer than the maximum mind ir version: 1")

    class Context:
        def __init__(self):
            self.ascend = types.SimpleNamespace(device_id=None)
    fake = types.SimpleNamespace(__version__="2.0.0", Context=Context, Model=Refusing,
                                 ModelType=types.SimpleNamespace(MINDIR="mindir"))
    path = tmp_path / "net.mindir"
    with pytest.raises(MismatchError, match="does not exist"):
        bench_lite.load(fake, str(path), "Ascend")
    path.write_bytes(b"\0")
    with pytest.raises(DeviceError, match="could not load .*maximum mind ir version"):
        bench_lite.load(fake, str(path), "Ascend")
