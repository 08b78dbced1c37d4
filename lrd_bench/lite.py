"""``lrd bench lite``: time exported MindIR files through MindSpore Lite (Ascend 310 inference, or CPU).

Needs only ``mindspore_lite`` and NumPy on the inference host (MindSpore itself is not imported).
The Lite wheel must match the MindSpore version that exported the MindIR: a Lite 2.0 runtime
refuses MindIR written by MindSpore 2.10 ("maximum mind ir version").
"""
from __future__ import annotations

import os
import time

import numpy as np

from lrd_core import latency as L
from lrd_core.errors import DeviceError, MismatchError

TARGETS = {"Ascend": "ascend", "GPU": "gpu", "CPU": "cpu"}
INSTALL = ("install the MindSpore Lite wheel of the same version as the MindSpore that exported the MindIR "
           "(pip install mindspore-lite==<version> or the wheel from the MindSpore download page; Ascend "
           "needs the Ascend build and CANN)")


def import_lite():
    """``mindspore_lite`` or a :class:`DeviceError` naming the fix."""
    try:
        import mindspore_lite as mslite
    except ImportError:
        raise DeviceError(f"mindspore_lite is not installed here; on the Ascend 310 host {INSTALL}") from None
    return mslite


def expected_version() -> str:
    """Version of the MindSpore that would have exported the MindIR here ('' if not installed)."""
    try:
        from importlib.metadata import version
        return version("mindspore")
    except Exception:  # noqa: BLE001 - any lookup failure means "unknown"
        return ""


def check_version(mslite, exporter: str) -> None:
    lite = getattr(mslite, "__version__", "")
    if exporter and lite and lite.split(".")[:2] != exporter.split(".")[:2]:
        raise DeviceError(f"mindspore_lite {lite} cannot be trusted with MindIR from MindSpore {exporter}; "
                          f"{INSTALL}")


def load(mslite, path: str, device: str, device_id: int = 0):
    """A built Lite model for ``path`` on ``device`` (``Ascend``, ``GPU`` or ``CPU``)."""
    if not os.path.isfile(path):
        raise MismatchError(f"MindIR file {path} does not exist; make it with `lrd export --format MINDIR`")
    context = mslite.Context()
    context.target = [TARGETS[device]]
    if device == "Ascend":
        context.ascend.device_id = device_id
    elif device == "GPU":
        context.gpu.device_id = device_id
    model = mslite.Model()
    try:
        model.build_from_file(path, mslite.ModelType.MINDIR, context)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeviceError(f"MindSpore Lite {getattr(mslite, '__version__', '?')} could not load {path} on "
                          f"{device} ({first}); {INSTALL}") from None
    return model


def runner(model, shape):
    inputs = model.get_inputs()
    if list(inputs[0].shape) != list(shape):
        model.resize(inputs, [list(shape)])
        inputs = model.get_inputs()
    x = np.random.default_rng(0).standard_normal(tuple(shape)).astype(np.float32)
    inputs[0].set_data_from_numpy(x)

    def run():
        model.predict(inputs)[0].get_data_to_numpy()
    return run


def run(args) -> dict:
    mslite = import_lite()
    check_version(mslite, expected_version())
    shape = (args.batch, 3, args.input_size, args.input_size)
    files = ([args.baseline] if args.baseline else []) + [args.mindir]
    fns = [runner(load(mslite, f, args.device, args.device_id), shape) for f in files]
    timings = L.interleaved(fns, warmup=args.warmup, repeat=args.repeat)
    rows = []
    for k, (f, t) in enumerate(zip(files, timings)):
        rows.append({"file": f, "role": "baseline" if args.baseline and k == 0 else "compressed",
                     "median_ms": t.median_ms, "throughput": 1000.0 * args.batch / t.median_ms,
                     "ratio": L.paired_ratio(t, timings[0]) if args.baseline and k else None})
    return {"device": args.device, "runtime": f"mindspore_lite {getattr(mslite, '__version__', '?')}",
            "batch": args.batch, "input_size": args.input_size, "repeat": args.repeat,
            "date": time.strftime("%Y-%m-%d %H:%M"), "results": rows}
