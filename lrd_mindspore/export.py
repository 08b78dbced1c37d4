"""Export a (compressed) MindSpore network to MindIR or ONNX and check the file against the live net.

MindIR is reloaded with ``nn.GraphCell(mindspore.load(path))``; ONNX runs in onnxruntime. Each file
is written next to its destination, checked, and only then renamed into place. MindSpore 2.10 cannot
export a padded max-pool to ONNX; such pools are swapped for an explicit zero pad plus a "valid"
pool during the export (exact when the pool's input is non-negative, e.g. after a ReLU; the output
check catches the other case).
"""
from __future__ import annotations

from . import _env  # noqa: F401

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Dict, List, Sequence  # noqa: E402

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn  # noqa: E402

from lrd_core.errors import ExportError  # noqa: E402

from .apply import replace  # noqa: E402

FORMATS = ("MINDIR", "ONNX")
SUFFIX = {"MINDIR": ".mindir", "ONNX": ".onnx"}


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def padded_pools(net: nn.Cell) -> List[str]:
    """Names of max-pools with explicit padding (not exportable to ONNX by MindSpore 2.10)."""
    return [n for n, c in net.cells_and_names() if isinstance(c, nn.MaxPool2d) and getattr(c, "use_pad", False)]


def _pool_workaround(name: str, pool: nn.MaxPool2d) -> nn.Cell:
    pads = tuple(pool.padding)[-2:]
    prim = getattr(pool, "max_pool", None)
    if prim is not None and (tuple(prim.attrs.get("dilation", (1, 1, 1)))[-2:] != (1, 1)
                             or prim.attrs.get("ceil_mode", False)):
        raise ExportError(f"layer {name}: a dilated or ceil-mode padded max-pool has no ONNX export in MindSpore "
                          f"{ms.__version__}; export MINDIR, or replace it by nn.Pad + a 'valid' max-pool")
    ph, pw = pads
    return nn.SequentialCell([nn.Pad(((0, 0), (0, 0), (ph, ph), (pw, pw))),
                              nn.MaxPool2d(_pair(pool.kernel_size), _pair(pool.stride), pad_mode="valid")])


@contextmanager
def _portable(net: nn.Cell, onnx: bool):
    """Temporarily swap cells for exportable equivalents; restore them afterwards.

    :class:`~lrd_mindspore.models.resnet.StemMaxPool` (a CPU-speed form) becomes its portable zero pad
    + "valid" max-pool in every format; for ONNX, padded ``nn.MaxPool2d`` cells (no ONNX export in
    MindSpore 2.10) become zero pad + "valid" max-pool too. Yields the names of the padded max-pools
    swapped for ONNX (their export is exact only for non-negative inputs, which the check verifies).
    """
    from .models.resnet import StemMaxPool

    cells = dict(net.cells_and_names())
    swapped, pools = [], []
    try:
        for name, cell in cells.items():
            if isinstance(cell, StemMaxPool):
                replace(net, name, cell.portable())
                swapped.append(name)
        if onnx:
            for name in padded_pools(net):
                replace(net, name, _pool_workaround(name, cells[name]))
                swapped.append(name)
                pools.append(name)
        yield pools
    finally:
        for name in reversed(swapped):
            replace(net, name, cells[name])


def _inputs(input_shape, dynamic_batch: bool):
    shape = list(input_shape)
    if dynamic_batch:
        return ms.Tensor(shape=[None] + shape[1:], dtype=ms.float32)
    return ms.Tensor(np.zeros(shape, np.float32))


def _check_batches(input_shape, dynamic_batch: bool) -> List[int]:
    b = int(input_shape[0])
    return sorted({b, 1, 3}) if dynamic_batch else [b]


def _live(net: nn.Cell, x: np.ndarray) -> np.ndarray:
    was = net.training
    net.set_train(False)
    try:
        return net(ms.Tensor(x)).asnumpy()
    finally:
        net.set_train(was)


def _compare(run, net, input_shape, batches: Sequence[int], rtol: float, atol: float, what: str,
             workarounds: Sequence[str] = ()) -> Dict:
    rng = np.random.default_rng(0)
    worst = 0.0
    for b in batches:
        x = rng.standard_normal((b,) + tuple(input_shape[1:])).astype(np.float32)
        ref = _live(net, x)
        got = np.asarray(run(x))
        if got.shape != ref.shape:
            raise ExportError(f"{what}: output shape {got.shape} at batch {b} differs from the live net's {ref.shape}")
        diff = float(np.max(np.abs(got - ref)))
        worst = max(worst, diff)
        if diff > atol + rtol * float(np.max(np.abs(ref))):
            why = (f"the padded max-pool(s) {', '.join(workarounds)} were exported as zero pad + valid pool, "
                   f"which is exact only for non-negative inputs (put a ReLU before them or use pad_mode='same')"
                   if workarounds else "an operator changed meaning in export")
            raise ExportError(f"{what}: output differs from the live net by {diff:.3g} at batch {b}: {why}; "
                              f"or export MINDIR")
    return {"max_abs_diff": worst, "checked_batches": list(batches)}


def _mindir(net, tmp: str, x) -> str:
    base = os.path.join(tmp, "model")
    ms.export(net, x, file_name=base, file_format="MINDIR")
    return base + ".mindir"


def _onnx(net, tmp: str, x, dynamic_batch: bool) -> str:
    path = os.path.join(tmp, "model.onnx")
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    try:
        ms.onnx.export(net, x, file_name=path, input_names=["x"], output_names=["y"], dynamic_axes=axes)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"MindSpore {ms.__version__} cannot export this network to ONNX ({first}); export "
                          f"MINDIR instead, or replace that operator") from None
    if dynamic_batch:
        _onnx_batch_dim(path)
    return path


def _onnx_batch_dim(path: str) -> None:
    """MindSpore writes the traced batch into the output shape; make it symbolic like the input."""
    import onnx

    model = onnx.load(path)
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    onnx.save(model, path)


def _ort_runner(path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install onnxruntime "
                          "(or skip the check with check=False / --no-check)") from None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def _graph_runner(path: str):
    cell = nn.GraphCell(ms.load(path))
    return lambda x: cell(ms.Tensor(x)).asnumpy()


def export(net: nn.Cell, path: str, input_shape=(1, 3, 224, 224), format: str = "MINDIR",
           dynamic_batch: bool = False, check: bool = True, rtol: float = 1e-4, atol: float = 1e-4) -> Dict:
    """Write ``net`` (eval mode) to ``path`` as MindIR or ONNX, checked against the live network.

    Parameters
    ----------
    net : nn.Cell
        A plain or compressed network (e.g. from ``lrd_mindspore.load``).
    path : str
        Destination; written only after the check passes.
    input_shape : tuple
        ``(N, C, H, W)``; with ``dynamic_batch`` the batch is symbolic and batches 1, 3 and N are checked.
    format : {'MINDIR', 'ONNX'}

    Returns
    -------
    dict
        ``format``, ``path``, ``dynamic_batch``, ``max_abs_diff``, ``checked_batches``, ``bytes``, ``workarounds``.
    """
    fmt = str(format).upper()
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; use MINDIR or ONNX")
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".tmp-", dir=os.path.dirname(path))
    was = net.training
    net.set_train(False)
    try:
        x = _inputs(input_shape, dynamic_batch)
        with _portable(net, onnx=fmt == "ONNX") as workarounds:
            written = _mindir(net, tmp, x) if fmt == "MINDIR" else _onnx(net, tmp, x, dynamic_batch)
        if check:
            runner = _graph_runner(written) if fmt == "MINDIR" else _ort_runner(written)
        report = {"format": fmt, "path": path, "dynamic_batch": bool(dynamic_batch), "workarounds": [
            f"{n}: padded max-pool exported as zero pad + valid max-pool" for n in workarounds]}
        if check:
            report.update(_compare(runner, net, input_shape, _check_batches(input_shape, dynamic_batch),
                                   rtol, atol, f"{fmt} file", workarounds))
        os.replace(written, path)
        report["bytes"] = os.path.getsize(path)
        return report
    finally:
        net.set_train(was)
        shutil.rmtree(tmp, ignore_errors=True)
