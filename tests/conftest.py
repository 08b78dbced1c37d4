"""Shared test set-up: the framework fixture runs the same case against torch and MindSpore."""
import importlib
import os

import lrd_mindspore._env  # noqa: F401  (oneDNN ISA cap + quiet logs before mindspore loads)

import mindspore as ms
import numpy as np
import pytest

os.environ.setdefault("GLOG_v", "3")
ms.set_device("CPU")     # once, before any kernel runs (MindSpore refuses it later)

FRAMEWORKS = ("torch", "mindspore")


def _load(name):
    module = importlib.import_module("lrd_" + name)
    if name == "mindspore":
        ms.set_context(mode=ms.PYNATIVE_MODE)
    return module


@pytest.fixture(params=FRAMEWORKS)
def fw(request):
    """The adapter module (``lrd_torch`` or ``lrd_mindspore``); MindSpore starts in PyNative mode."""
    return _load(request.param)


@pytest.fixture
def lrd_torch():
    return _load("torch")


@pytest.fixture
def lrd_mindspore():
    return _load("mindspore")


def forward(fw, model, x: np.ndarray) -> np.ndarray:
    """Eval-mode logits of a torch or MindSpore model as NumPy."""
    if fw.FRAMEWORK == "torch":
        import torch
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    import mindspore as ms
    model.set_train(False)
    return model(ms.Tensor(np.ascontiguousarray(x, np.float32))).asnumpy()


def perturb_bn(arrays: dict, seed: int = 0) -> dict:
    """Give BatchNorm non-trivial statistics so eval-mode BN is really exercised."""
    rng = np.random.default_rng(seed)
    out = dict(arrays)
    for k, v in arrays.items():
        if v.ndim == 1 and k.endswith(("running_mean", "bias")):
            out[k] = (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype)
        elif v.ndim == 1 and k.endswith(("running_var", "weight")):
            out[k] = (v * rng.uniform(0.5, 1.5, v.shape)).astype(v.dtype)
    return out
