"""Checkpoint file formats, one registry for both frameworks.

``.npz`` (NumPy, torch-style names) is read and written here. A framework's own format is handled
by that framework's backend (``.pt``/``.pth`` by ``lrd_torch``, ``.ckpt`` by ``lrd_mindspore``),
imported only when such a file is met, so converting needs the other framework only for its own
file format — and says so clearly when it is not installed.
"""
from __future__ import annotations

import importlib
import os
from typing import Dict, Tuple

import numpy as np

from .errors import ConfigError, MismatchError
from .io import atomic_file

#: suffix -> (framework, module whose ``BACKEND`` reads/writes it)
FORMATS: Dict[str, Tuple[str, str]] = {}
INSTALL = {"torch": "pip install torch==2.13.0", "mindspore": "pip install mindspore==2.10.0"}


def register_format(suffix: str, framework: str, module: str) -> None:
    """Route files ending in ``suffix`` to ``module.BACKEND.read_native / write_native``."""
    FORMATS[suffix.lower()] = (framework, module)


register_format(".pt", "torch", "lrd_torch.backend")
register_format(".pth", "torch", "lrd_torch.backend")
register_format(".ckpt", "mindspore", "lrd_mindspore.backend")

SUFFIXES = (".npz",) + tuple(FORMATS)


def suffix_of(path: str) -> str:
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if path.lower().endswith(s):
            return s
    raise ConfigError(f"{path}: unknown checkpoint format; use a file ending in {', '.join(SUFFIXES)}")


def framework_of(path: str) -> str:
    """``"torch"``, ``"mindspore"`` or ``"numpy"`` for a checkpoint file name."""
    s = suffix_of(path)
    return "numpy" if s == ".npz" else FORMATS[s][0]


def backend_for(suffix: str):
    framework, module = FORMATS[suffix]
    try:
        return importlib.import_module(module).BACKEND
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "mindspore"):
            raise ConfigError(f"reading or writing {suffix} files needs {framework}, which is not installed here "
                              f"({INSTALL[framework]}); or convert the file to .npz where {framework} is "
                              f"installed (lrd convert --src FILE --out FILE.npz)") from None
        raise


def read_npz(path: str) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, pickled objects, truncation...
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise MismatchError(f"{path} is not a readable .npz file ({type(exc).__name__}: {first})") from None


def write_npz(arrays: Dict[str, np.ndarray], path: str, inputs=()) -> None:
    with atomic_file(path, suffix=".npz", inputs=inputs) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def read(path: str) -> Dict[str, np.ndarray]:
    """Arrays (torch-style names) of a checkpoint file of any registered format."""
    if os.path.isdir(path):
        raise MismatchError(f"checkpoint {path} is a directory, not a file; give the weights file inside it "
                            f"(model.ckpt / model.pt) or a compressed-model directory where one is accepted")
    if not os.path.isfile(path):
        raise MismatchError(f"checkpoint {path} does not exist")
    s = suffix_of(path)
    return read_npz(path) if s == ".npz" else backend_for(s).read_native(path)


def write(arrays: Dict[str, np.ndarray], path: str, inputs=()) -> str:
    """Write torch-style arrays in the format the file name asks for (atomically; never over ``inputs``)."""
    s = suffix_of(path)
    if s == ".npz":
        write_npz(arrays, path, inputs)
        return path
    backend = backend_for(s)
    with atomic_file(path, suffix=s, inputs=inputs) as tmp:
        backend.write_native(arrays, tmp)
    return path
