"""`lrd reduce`: RON/ASNet directories that export and convert; bad input -> one line, exit 2, nothing written."""
import json
import os

import numpy as np
import pytest

from tests.cli.conftest import run

SMALL = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "8", "--input-size", "32"]


def test_reduce_export_convert(framework, tmp_path, capsys):
    from lrd_data import load_digits

    out_dir = tmp_path / "asnet"
    train, _ = load_digits(size=32)
    cal = tmp_path / "cal.npz"                    # labelled: loss gradients, and the fine-tune's (small) data
    np.savez(cal, x=train.x[:48], y=train.y[:48])
    tune = ["--finetune-epochs", "1"] if framework == "torch" else []     # MindSpore's trainer: test_reduce.py
    code, out, err = run(["reduce", "--framework", framework, *SMALL, "--method", "asnet", "--cut", "layer4",
                          "--dim", "4", "--calibration", str(cal), *tune, "--out", str(out_dir)], capsys)
    assert code == 0 and "cut before 'layer4.0'" in out and "r = 4" in out, err
    plan = json.loads((out_dir / "plan.json").read_text())
    rec = plan["meta"]["reduction"]
    assert rec["method"] == "asnet" and rec["gradients"] == "loss" and rec["samples"] == 48
    assert rec["totals"]["params_after"] < rec["totals"]["params_before"]
    if tune:
        assert plan["meta"]["finetune"]["epochs"] == 1 and plan["meta"]["finetune"]["distill"]["alpha"] == 0.5
    onnx = tmp_path / "a.onnx"
    code, out, _ = run(["export", "--framework", framework, "--model", "resnet18", "--compressed", str(out_dir),
                        "--format", "ONNX", "--out", str(onnx)], capsys)
    assert code == 0 and onnx.is_file() and "max abs diff" in out
    other = "torch" if framework == "mindspore" else "mindspore"
    code, _, _ = run(["convert", "--src", str(out_dir), "--to", other, "--out", str(tmp_path / "c")], capsys)
    assert code == 0
    import importlib
    fw_a, fw_b = (importlib.import_module(f"lrd_{f}") for f in (framework, other))
    kw = {"num_classes": 10, "stem": "cifar", "width": 8}
    a = fw_a.load(str(out_dir), fw_a.models.resnet18(**kw))
    b = fw_b.load(str(tmp_path / "c"), fw_b.models.resnet18(**kw))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(fw_a.predict(a, x), fw_b.predict(b, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra,text", [
    (["--method", "asnet", "--cut", "nope"], "no layer named 'nope'"),
    (["--method", "asnet", "--cut", "layer2.0.conv1"], "inside residual block 'layer2.0'"),
    (["--method", "asnet", "--cut", "layer4", "--dim", "40"], "dim=40 must be"),
    (["--method", "ron", "--rank", "layer4.0.conv1=200", "--layers", "layer4.0.conv1"], "rank 200"),
    (["--method", "ron", "--input-size", "64", "--calibration", "CAL"], "does not match the model input"),
])
def test_bad_input_one_line_nothing_written(framework, tmp_path, capsys, extra, text):
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.zeros((8, 3, 32, 32), np.float32))
    extra = [str(cal) if e == "CAL" else e for e in extra]
    out_dir = tmp_path / "out"
    code, _, err = run(["reduce", "--framework", framework, *SMALL, "--samples", "24", *extra,
                        "--out", str(out_dir)], capsys)
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists() and os.listdir(tmp_path) == ["cal.npz"]
