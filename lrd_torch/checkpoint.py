"""Checkpoint files: read/write torch-style arrays, and save/load a compressed model with its plan."""
from __future__ import annotations

import os
from typing import Dict

import numpy as np
import torch
from torch import nn

from lrd_core.errors import MismatchError
from lrd_core.io import PLAN_FILE, WEIGHT_FILES, atomic_dir, atomic_file, compressed_dir_files
from lrd_core.plan import Plan

from .apply import rebuild
from .state import load_numpy

WEIGHTS = WEIGHT_FILES["torch"]
PLAN = PLAN_FILE


def read_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """Arrays (torch-style names) of a ``.pt``/``.pth`` state dict, a MindSpore ``.ckpt`` or an ``.npz``."""
    if not os.path.isfile(path):
        raise MismatchError(f"checkpoint {path} does not exist")
    if path.endswith(".ckpt"):
        from lrd_mindspore.checkpoint import read_checkpoint as read_ms  # converts names to torch style
        return read_ms(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise MismatchError(f"{path} is not a torch checkpoint ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise MismatchError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if isinstance(v, torch.Tensor)}


def write_checkpoint(arrays: Dict[str, np.ndarray], path: str) -> str:
    """Write torch-style arrays as a torch state dict file, atomically."""
    state = {k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in arrays.items()}
    with atomic_file(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(model: nn.Module, path: str) -> nn.Module:
    """Load a checkpoint file of any supported format into ``model`` (strict)."""
    try:
        load_numpy(model, read_checkpoint(path))
    except MismatchError as exc:
        raise MismatchError(f"checkpoint {path} does not fit this model: {exc}") from None
    return model


def save(model: nn.Module, plan: Plan, directory: str) -> str:
    """Write ``directory/plan.json`` and ``directory/model.pt`` (all or nothing)."""
    with atomic_dir(directory) as tmp:
        plan.to_json(os.path.join(tmp, PLAN))
        torch.save(model.state_dict(), os.path.join(tmp, WEIGHTS))
    return directory


def load(directory: str, model) -> object:
    """Rebuild ``model`` (an uncompressed instance of the same architecture) from the saved plan and
    load the compressed weights. A MindSpore ``model.ckpt`` in the directory is converted on the fly."""
    plan_path, weights = compressed_dir_files(directory, prefer="torch")
    rebuild(model, Plan.from_json(plan_path))
    return load_checkpoint(model, weights)


def load_plan(directory: str) -> Plan:
    return Plan.from_json(os.path.join(directory, PLAN))
