"""The public contract: both adapters expose the same names; the core never loads a framework."""
import inspect as pyinspect
import subprocess
import sys

import lrd_mindspore
import lrd_torch

CONTRACT = ["models", "inspect", "plan", "compress", "rebuild", "save", "load", "state_to_numpy", "load_numpy",
            "measure_latency", "export", "set_frozen", "frozen_names", "freeze_phase", "unfreeze"]


def test_adapters_expose_the_same_public_names():
    assert sorted(lrd_torch.__all__) == sorted(lrd_mindspore.__all__)
    for name in CONTRACT:
        assert name in lrd_torch.__all__, name
        for fw in (lrd_torch, lrd_mindspore):
            assert getattr(fw, name) is not None, (fw.__name__, name)
    for name in ("plan", "compress", "measure_latency", "export", "freeze_phase"):
        t = list(pyinspect.signature(getattr(lrd_torch, name)).parameters)
        m = list(pyinspect.signature(getattr(lrd_mindspore, name)).parameters)
        extra = {"opset"}                             # torch.onnx's opset has no MindSpore counterpart
        assert [a for a in t[1:] if a not in extra] == m[1:], (name, t, m)   # first argument: the model/net
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "create_model"):
        assert callable(getattr(lrd_torch.models, name)) and callable(getattr(lrd_mindspore.models, name))


def test_core_imports_no_framework():
    code = ("import pkgutil, importlib, sys, lrd_core\n"
            "for m in pkgutil.walk_packages(lrd_core.__path__, 'lrd_core.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'mindspore', 'onnx', 'onnxruntime', "
            "'matplotlib'})\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"lrd_core imported {out.stdout.strip()}"
