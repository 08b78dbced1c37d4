"""The file names of what lrd writes: compressed-model directories, training checkpoints, run directories.

A **compressed-model directory** (``lrd compress --out``, ``lrd_X.save``) holds ``plan.json`` and
the weights of one framework (``model.ckpt`` or ``model.pt``). A **training checkpoint**
``ckpt-<step>/`` adds the optimizer state and ``state.json``. A **run directory** of the recipe
(``lrd pipeline``/``lrd demo``) holds one sub-directory per step of the flow plus the reports.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

from .errors import MismatchError

PLAN_FILE = "plan.json"
WEIGHT_FILES = {"mindspore": "model.ckpt", "torch": "model.pt"}
OPTIMIZER_FILES = {"mindspore": "optimizer.ckpt", "torch": "optimizer.pt"}
STATE_FILE = "state.json"
CHECKPOINT_PREFIX = "ckpt-"

# run directory of the recipe
RUN_ORIGINAL = "original"            # trained (or loaded) uncompressed weights + its checkpoints
RUN_COMPRESSED = "compressed"        # right after decomposition
RUN_FINETUNE = "finetune"            # fine-tuning checkpoints (stage s > 1: finetune_stage<s>)
RUN_FINETUNED = "finetuned"          # the fine-tuned compressed model (stage s > 1: stage<s>)
RUN_EXPORT = "export"
SUMMARY_FILE = "summary.json"
TRAIN_SUMMARY_FILE = "train_summary.json"
CURVES_FILE = "curves.png"


def finetune_dir(stage: int) -> str:
    return RUN_FINETUNE if stage == 1 else f"{RUN_FINETUNE}_stage{stage}"


def finetuned_dir(stage: int) -> str:
    return RUN_FINETUNED if stage == 1 else f"stage{stage}"


def weights_file(framework: str) -> str:
    return WEIGHT_FILES[framework]


def is_compressed_dir(path: Optional[str]) -> bool:
    """True when ``path`` is a compressed-model directory: ``plan.json`` plus a weights file."""
    return (bool(path) and os.path.isfile(os.path.join(path, PLAN_FILE))
            and any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES.values()))


def compressed_dir_files(directory: str, prefer: str) -> Tuple[str, str]:
    """``(plan path, weights path)`` of a compressed-model directory; ``prefer`` names the framework
    whose weight file is taken first (the other one is converted on load)."""
    if not os.path.isdir(directory):
        what = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
        raise MismatchError(f"compressed-model directory {directory} {what} (see `lrd compress --out`)")
    plan_path = os.path.join(directory, PLAN_FILE)
    if not os.path.isfile(plan_path):
        raise MismatchError(f"{directory} holds no {PLAN_FILE}: not a compressed-model directory "
                            f"(see `lrd compress`)")
    names = [WEIGHT_FILES[prefer]] + [n for f, n in WEIGHT_FILES.items() if f != prefer]
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return plan_path, path
    raise MismatchError(f"{directory} holds no weights ({' or '.join(names)})")


def weights_in(directory: str, prefer: str) -> Optional[str]:
    """The weights file of a directory holding ``model.ckpt``/``model.pt`` (with or without a plan)."""
    for name in [WEIGHT_FILES[prefer]] + [n for f, n in WEIGHT_FILES.items() if f != prefer]:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None
