"""The public contract: both adapters expose the same names with the same full signatures (bound from one
implementation in lrd_core.api); the core never loads a framework; the adapters never import each other."""
import ast
import inspect as pyinspect
import pathlib
import subprocess
import sys

import lrd_mindspore
import lrd_torch
from lrd_core import api

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = ["models", "inspect", "plan", "compress", "rebuild", "save", "load", "state_to_numpy", "load_numpy",
            "measure_latency", "export", "set_frozen", "frozen_names", "freeze_phase", "unfreeze", "load_checkpoint",
            "read_checkpoint", "write_checkpoint", "count_params", "predict", "evaluate", "multistage", "latency"]


def test_adapters_expose_the_same_names_and_full_signatures():
    assert sorted(lrd_torch.__all__) == sorted(lrd_mindspore.__all__)
    for name in CONTRACT:
        assert name in lrd_torch.__all__, name
    for name in api.FUNCTIONS:
        t, m = getattr(lrd_torch, name), getattr(lrd_mindspore, name)
        assert pyinspect.signature(t) == pyinspect.signature(m), name     # names, kinds and defaults
        assert t.__doc__ == m.__doc__ and t.__doc__, name
    for group, names in (("multistage", api.MULTISTAGE), ("latency", api.LATENCY)):
        for name in names:
            t, m = getattr(getattr(lrd_torch, group), name), getattr(getattr(lrd_mindspore, group), name)
            assert pyinspect.signature(t) == pyinspect.signature(m), (group, name)
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "create_model", "register_model",
                 "list_models"):
        assert callable(getattr(lrd_torch.models, name)) and callable(getattr(lrd_mindspore.models, name))
    assert lrd_torch.models.list_models() == lrd_mindspore.models.list_models()


def test_both_backends_implement_the_whole_protocol():
    from lrd_core.backend import Backend

    wanted = {n for n in dir(Backend) if not n.startswith("_")} | set(Backend.__annotations__)
    for fw in (lrd_torch, lrd_mindspore):
        missing = sorted(n for n in wanted if not hasattr(fw.BACKEND, n))
        assert not missing, (fw.FRAMEWORK, missing)


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_adapters_never_import_each_other_and_no_module_shadows_a_function():
    for own, other in (("lrd_torch", "lrd_mindspore"), ("lrd_mindspore", "lrd_torch")):
        for path in (ROOT / own).rglob("*.py"):
            bad = [m for m in _imports(path) if m.split(".")[0] == other]
            assert not bad, (str(path), bad)
        modules = {p.stem for p in (ROOT / own).glob("*.py")} | {p.name for p in (ROOT / own).iterdir() if p.is_dir()}
        assert not modules & set(api.FUNCTIONS), (own, modules & set(api.FUNCTIONS))


def test_core_imports_no_framework():
    code = ("import pkgutil, importlib, sys, lrd_core\n"
            "for m in pkgutil.walk_packages(lrd_core.__path__, 'lrd_core.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'mindspore', 'onnx', 'onnxruntime', "
            "'matplotlib', 'lrd_torch', 'lrd_mindspore'})\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"lrd_core imported {out.stdout.strip()}"


def test_each_adapter_imports_without_the_other_framework():
    """lrd_torch works where MindSpore is not importable, and the reverse (checked with a blocking import hook)."""
    for own, other in (("lrd_torch", "mindspore"), ("lrd_mindspore", "torch")):
        code = ("import sys, importlib.abc\n"
                "class Block(importlib.abc.MetaPathFinder):\n"
                f"    def find_spec(self, name, path, target=None):\n"
                f"        if name.split('.')[0] == {other!r}: raise ImportError('blocked ' + name)\n"
                "sys.meta_path.insert(0, Block())\n"
                f"import {own}\n"
                f"m = {own}.models.resnet18(num_classes=4, stem='cifar', width=8, seed=0)\n"
                f"p = {own}.plan(m, input_shape=(1, 3, 32, 32), mode='vanilla', rank_multiple=4)\n"
                f"{own}.compress(m, p)\n"
                "print(len(p.decomposed()))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        assert int(out.stdout.strip().splitlines()[-1]) > 0
