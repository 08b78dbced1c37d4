"""Export a (compressed) model and check the written file against the live model, for any backend.

The file is written into a temporary directory beside its destination, reloaded (MindIR through the
framework, ONNX through onnxruntime), compared with the live model on random inputs, and only then
renamed into place: a file that does not reproduce the model is never left behind.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Sequence

import numpy as np

from ..errors import ExportError
from ..frameworks import OTHER, adapter
from ..io import atomic_file
from ..registry import model_plan, model_spec
from . import checks
from .model import layer_infos
from .state import state_to_numpy

SUFFIXES = {".mindir": "MINDIR", ".onnx": "ONNX"}


def onnx_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """Run an ONNX file with onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install onnxruntime "
                          "(or skip the check with check=False / --no-check)") from None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def check_batches(input_shape, dynamic_batch: bool) -> List[int]:
    b = int(input_shape[0])
    return sorted({b, 1, 3}) if dynamic_batch else [b]


def compare(run, live, input_shape, batches: Sequence[int], rtol: float, atol: float, what: str,
            workarounds: Sequence[str] = ()) -> Dict:
    """Largest |file - live| over random inputs at ``batches``; NaN anywhere is a mismatch."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for b in batches:
        x = rng.standard_normal((b,) + tuple(input_shape[1:])).astype(np.float32)
        ref, got = np.asarray(live(x)), np.asarray(run(x))
        if got.shape != ref.shape:
            raise ExportError(f"{what}: output shape {got.shape} at batch {b} differs from the live model's {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise ExportError(f"{what}: the live model outputs NaN or Inf at batch {b}; its weights are broken "
                              f"(check them with lrd inspect / load a good checkpoint)")
        if not np.array_equal(np.isfinite(got), np.isfinite(ref)):
            raise ExportError(f"{what}: the exported file outputs NaN or Inf where the live model does not "
                              f"(batch {b}); an operator changed meaning in export")
        diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        worst = max(worst, diff)
        if diff > atol + rtol * float(np.max(np.abs(ref), initial=0.0)):
            why = ("workarounds applied: " + "; ".join(workarounds)) if workarounds else \
                "an operator changed meaning in export"
            raise ExportError(f"{what}: output differs from the live model by {diff:.3g} at batch {b} ({why}); "
                              f"export another format or replace that operator")
    return {"max_abs_diff": worst, "checked_batches": list(batches)}


def resolve_format(backend, path: str, format) -> str:
    if format is None:
        fmt = SUFFIXES.get(os.path.splitext(path)[1].lower(), backend.export_formats[0])
    else:
        fmt = str(format).upper()
    if fmt not in SUFFIXES.values():
        raise ExportError(f"unknown export format {format!r}; use MINDIR or ONNX")
    return fmt


def twin(backend, model):
    """The same network in the other framework: rebuilt from the registry name and keywords the model was
    created with, the plan it was compressed with, and its weights (the cross-framework converter)."""
    spec = model_spec(model)
    if spec is None:
        raise ExportError(f"{backend.name} cannot write this format itself and the model was not built through "
                          f"lrd's model registry, so its twin in the other framework cannot be rebuilt: build it "
                          f"with lrd_X.models.create_model, or convert the weights (lrd convert) and export there")
    other = adapter(OTHER[backend.name])
    net = other.models.create_model(spec[0], **spec[1])
    plan = model_plan(model)
    if plan is not None:
        other.rebuild(net, plan)
    other.load_numpy(net, state_to_numpy(backend, model))
    return other, net


def export(backend, model, path: str, input_shape=(1, 3, 224, 224), format=None, dynamic_batch: bool = False,
           check: bool = True, opset: int = 17, rtol: float = 1e-4, atol: float = 1e-4) -> Dict:
    """Write ``model`` (eval mode) to ``path`` as MindIR or ONNX, checked against the live model.

    Parameters
    ----------
    model : native model
        A plain or compressed model (e.g. from ``load``).
    path : str
        Destination; written only after the check passes.
    input_shape : tuple
        ``(N, C, H, W)``; with ``dynamic_batch`` the batch is symbolic and batches 1, 3 and N are checked.
    format : {'MINDIR', 'ONNX'}, optional
        Default: from the file suffix (``.mindir``, ``.onnx``), else the framework's first format. A format
        this framework cannot write (MindIR from torch) is written by the other framework's twin of the
        model, rebuilt from the registry name, plan and weights (the report adds ``twin_max_abs_diff``).
    opset : int
        ONNX opset where the exporter takes one (torch).

    Returns
    -------
    dict
        ``format``, ``path``, ``dynamic_batch``, ``max_abs_diff``, ``checked_batches``, ``bytes``, ``workarounds``.
    """
    checks.model(backend, model)
    path = os.path.abspath(checks.path(path))
    shape = checks.shape(input_shape, rank=0)
    fmt = resolve_format(backend, path, format)
    layer_infos(backend, model, (1,) + tuple(shape[1:]))    # runs at this input size, not too small for it
    if fmt not in backend.export_formats:          # e.g. MindIR of a torch model: export its MindSpore twin
        other, net = twin(backend, model)
        x = np.random.default_rng(1).standard_normal((2,) + tuple(shape[1:])).astype(np.float32)
        diff = float(np.max(np.abs(other.BACKEND.forward(net, x) - backend.forward(model, x))))
        report = other.export(net, path, input_shape=shape, format=fmt, dynamic_batch=dynamic_batch, check=check,
                              opset=opset, rtol=rtol, atol=atol)
        report.update(twin_framework=other.FRAMEWORK, twin_max_abs_diff=diff)
        return report
    with atomic_file(path, suffix="." + fmt.lower()) as written:
        notes = backend.export_native(model, written, fmt, shape, bool(dynamic_batch), int(opset))
        report = {"format": fmt, "path": path, "dynamic_batch": bool(dynamic_batch), "workarounds": list(notes)}
        if check:
            run = backend.exported_runner(written, fmt) or onnx_runner(written)
            report.update(compare(run, lambda x: backend.forward(model, x), shape,
                                  check_batches(shape, dynamic_batch), rtol, atol, f"{fmt} file", notes))
    report["bytes"] = os.path.getsize(path)
    return report
