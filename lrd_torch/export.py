"""Export a (compressed) torch model to ONNX and check the file with onnxruntime against the live model.

MindIR is MindSpore's format: a torch checkpoint is exported to MindIR by loading it into the
MindSpore twin (``lrd export --format MINDIR`` does this; ``lrd_mindspore.load`` reads ``model.pt``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from lrd_core.errors import ExportError

FORMATS = ("ONNX",)


def _live(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        p = next(model.parameters(), None)
        t = torch.from_numpy(x)
        if p is not None:
            t = t.to(p.device)
        return model(t).cpu().numpy()


def _onnx(model: nn.Module, path: str, input_shape, dynamic_batch: bool, opset: int) -> None:
    p = next(model.parameters(), None)
    x = torch.zeros(tuple(input_shape), device=None if p is None else p.device)
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes=axes, opset_version=opset)
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported the same way
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"torch {torch.__version__} cannot export this model to ONNX ({first}); replace "
                          f"the operator named there, or export from the MindSpore twin") from None


def _ort_runner(path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install onnxruntime "
                          "(or skip the check with check=False / --no-check)") from None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _compare(run, model, input_shape, batches: Sequence[int], rtol: float, atol: float) -> Dict:
    rng = np.random.default_rng(0)
    worst = 0.0
    for b in batches:
        x = rng.standard_normal((b,) + tuple(input_shape[1:])).astype(np.float32)
        ref, got = _live(model, x), np.asarray(run(x))
        if got.shape != ref.shape:
            raise ExportError(f"ONNX file: output shape {got.shape} at batch {b} differs from the live model's "
                              f"{ref.shape}")
        diff = float(np.max(np.abs(got - ref)))
        worst = max(worst, diff)
        if diff > atol + rtol * float(np.max(np.abs(ref))):
            raise ExportError(f"ONNX file: output differs from the live model by {diff:.3g} at batch {b}; "
                              f"an operator changed meaning in export")
    return {"max_abs_diff": worst, "checked_batches": list(batches)}


def export(model: nn.Module, path: str, input_shape=(1, 3, 224, 224), format: str = "ONNX",
           dynamic_batch: bool = True, check: bool = True, opset: int = 17, rtol: float = 1e-4,
           atol: float = 1e-4) -> Dict:
    """Write ``model`` (eval mode) to ``path`` as ONNX, checked with onnxruntime.

    Parameters
    ----------
    model : nn.Module
        A plain or compressed model (e.g. from ``lrd_torch.load``).
    path : str
        Destination; written only after the check passes.
    input_shape : tuple
        ``(N, C, H, W)``; with ``dynamic_batch`` batches 1, 3 and N are checked.
    format : {'ONNX'}
        ``'MINDIR'`` raises :class:`~lrd_core.errors.ExportError` naming the MindSpore route.

    Returns
    -------
    dict
        ``format``, ``path``, ``dynamic_batch``, ``max_abs_diff``, ``checked_batches``, ``bytes``.
    """
    fmt = str(format).upper()
    if fmt == "MINDIR":
        raise ExportError("MindIR is written by MindSpore: use lrd_mindspore.export on the MindSpore twin "
                          "(lrd_mindspore.load reads this model.pt), or `lrd export --format MINDIR`")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; torch exports ONNX")
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".tmp-", dir=os.path.dirname(path))
    was = model.training
    model.eval()
    try:
        written = os.path.join(tmp, "model.onnx")
        _onnx(model, written, input_shape, dynamic_batch, opset)
        report = {"format": fmt, "path": path, "dynamic_batch": bool(dynamic_batch), "workarounds": []}
        if check:
            batches: List[int] = sorted({int(input_shape[0]), 1, 3}) if dynamic_batch else [int(input_shape[0])]
            report.update(_compare(_ort_runner(written), model, input_shape, batches, rtol, atol))
        os.replace(written, path)
        report["bytes"] = os.path.getsize(path)
        return report
    finally:
        model.train(was)
        shutil.rmtree(tmp, ignore_errors=True)
