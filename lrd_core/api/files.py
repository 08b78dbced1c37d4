"""Checkpoint files and compressed-model directories, for any backend."""
from __future__ import annotations

import os
from typing import Dict, Mapping, Sequence

import numpy as np

from .. import formats
from ..errors import MismatchError
from ..io import atomic_dir
from ..layout import PLAN_FILE, WEIGHT_FILES, compressed_dir_files
from ..plan import Plan
from . import checks
from .model import rebuild
from .state import check_finite, check_numeric, load_numpy, state_to_numpy


def read_checkpoint(backend, path: str) -> Dict[str, np.ndarray]:
    """Arrays (torch-style names) of a ``.ckpt`` (MindSpore), ``.pt``/``.pth`` (torch) or ``.npz`` file.

    Reading the other framework's own format needs that framework installed (a clear error says so).
    """
    return formats.read(checks.path(path, "checkpoint"))


def write_checkpoint(backend, arrays: Mapping[str, np.ndarray], path: str) -> str:
    """Write torch-style arrays to ``path`` in the format its suffix names, atomically; returns the path."""
    checks.arrays(arrays)
    check_numeric(arrays, "arrays")
    return formats.write(dict(arrays), checks.path(path))


def load_checkpoint(backend, model, path: str):
    """Load a checkpoint file of any supported format into ``model`` (strict); returns the model."""
    checks.model(backend, model)
    arrays = read_checkpoint(backend, path)
    check_finite(arrays, f"checkpoint {path}")
    try:
        load_numpy(backend, model, arrays)
    except MismatchError as exc:
        raise MismatchError(f"checkpoint {path} does not fit this model: {exc}") from None
    return model


def save(backend, model, plan: Plan, directory: str, force: bool = False, inputs: Sequence[str] = ()) -> str:
    """Write ``directory/plan.json`` and the weights in this framework's format (all or nothing).

    An existing ``directory`` is replaced only if it holds nothing but lrd's own files; with ``force``
    the files are written beside other content (replacing only lrd's names, deleting nothing else).
    ``inputs`` (e.g. the checkpoint the model came from) may not be inside ``directory``.
    """
    checks.model(backend, model)
    checks.plan(plan)
    directory = checks.path(directory, "directory")
    arrays = state_to_numpy(backend, model)
    with atomic_dir(directory, inputs=inputs, force=force) as tmp:
        plan.to_json(os.path.join(tmp, PLAN_FILE))
        backend.write_native(arrays, os.path.join(tmp, WEIGHT_FILES[backend.name]))
    return directory


def load(backend, directory: str, model):
    """Rebuild ``model`` (a fresh, uncompressed instance of the same architecture) from the saved plan
    and load the compressed weights; a weights file of the other framework is converted on the fly.
    Returns the loaded model: use the return value (a plan of ``reduce(method="asnet")`` builds a new network)."""
    directory = checks.path(directory, "directory")
    checks.model(backend, model)
    plan_path, weights = compressed_dir_files(directory, prefer=backend.name)
    model = rebuild(backend, model, Plan.from_json(plan_path))
    return load_checkpoint(backend, model, weights)


def load_plan(backend, directory: str) -> Plan:
    """The plan of a compressed-model directory."""
    plan_path, _ = compressed_dir_files(checks.path(directory, "directory"), prefer=backend.name)
    return Plan.from_json(plan_path)
