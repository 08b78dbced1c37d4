"""Checkpoint files: read/write torch-style arrays as MindSpore ``.ckpt``, and save/load a compressed
network with its plan."""
from __future__ import annotations

import os
from typing import Dict

import mindspore as ms
import numpy as np
from mindspore import nn

from lrd_core.errors import MismatchError
from lrd_core.io import PLAN_FILE, WEIGHT_FILES, atomic_dir, atomic_file, compressed_dir_files
from lrd_core.naming import mindspore_to_torch, torch_to_mindspore
from lrd_core.plan import Plan

from .apply import rebuild
from .state import load_numpy

WEIGHTS = WEIGHT_FILES["mindspore"]
PLAN = PLAN_FILE
# Training checkpoints also carry optimizer/loop state; those are not network weights.
_NOT_WEIGHTS = ("moments.", "accum.", "learning_rate", "global_step", "momentum", "scale_sense",
                "current_iterator_step", "last_overflow_iterator_step", "epoch_num", "step_num", "beta1_power",
                "beta2_power", "adam_m.", "adam_v.", "loss_scale")


def read_checkpoint(path: str) -> Dict[str, np.ndarray]:
    """Arrays (torch-style names) of a MindSpore ``.ckpt``; other formats go through the torch reader."""
    if not os.path.isfile(path):
        raise MismatchError(f"checkpoint {path} does not exist")
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if not path.endswith(".ckpt"):
        from lrd_torch.checkpoint import read_checkpoint as read_torch
        return read_torch(path)
    try:
        params = ms.load_checkpoint(path)
    except Exception as exc:  # noqa: BLE001
        raise MismatchError(f"{path} is not a MindSpore checkpoint ({type(exc).__name__}: {exc})") from None
    arrays = {k: v.asnumpy() for k, v in params.items() if not k.startswith(_NOT_WEIGHTS)}
    return mindspore_to_torch(arrays)


def write_checkpoint(arrays: Dict[str, np.ndarray], path: str) -> str:
    """Write torch-style arrays as a MindSpore ``.ckpt`` (names converted), atomically."""
    items = [{"name": k, "data": ms.Tensor(np.array(v, copy=True, order="C"))} for k, v in torch_to_mindspore(arrays).items()]
    with atomic_file(path, suffix=".ckpt") as tmp:
        ms.save_checkpoint(items, tmp)
    return path


def load_checkpoint(model: nn.Cell, path: str) -> nn.Cell:
    """Load a checkpoint file of any supported format into ``model`` (strict)."""
    try:
        load_numpy(model, read_checkpoint(path))
    except MismatchError as exc:
        raise MismatchError(f"checkpoint {path} does not fit this model: {exc}") from None
    return model


def save(model: nn.Cell, plan: Plan, directory: str) -> str:
    """Write ``directory/plan.json`` and ``directory/model.ckpt`` (all or nothing)."""
    with atomic_dir(directory) as tmp:
        plan.to_json(os.path.join(tmp, PLAN))
        ms.save_checkpoint(model, os.path.join(tmp, WEIGHTS))
    return directory


def load(directory: str, model) -> object:
    """Rebuild ``model`` (an uncompressed instance of the same architecture) from the saved plan and
    load the compressed weights. A torch ``model.pt`` in the directory is converted on the fly."""
    plan_path, weights = compressed_dir_files(directory, prefer="mindspore")
    rebuild(model, Plan.from_json(plan_path))
    return load_checkpoint(model, weights)


def load_plan(directory: str) -> Plan:
    return Plan.from_json(os.path.join(directory, PLAN))
