"""The run directory of a recipe run: what a run writes there, the checks made before any work, and
the reuse of a finished decomposition when a run is resumed.

A run writes only lrd's own names into ``output_path`` (``original/``, ``compressed/``, ``finetune*/``,
``finetuned/``, ``stage*/``, ``export/``, ``summary.json``, ``train_summary.json``, ``curves.png``):

* a folder holding anything else (the user's files) is refused before any work — except the run's
  own inputs (a config file, a checkpoint), which may live there and are never written;
* an input (``pre_trained``, ``checkpoint_path``, data, config) inside something the run rewrites is
  refused (e.g. ``checkpoint_path: RUN/finetuned`` with ``output_path: RUN``), with one exception:
  ``pre_trained: RUN/original/model.ckpt`` without training (``epoch_size: 0``) is read and left as is;
* the location must be writable (probed, nothing created).
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import List, Mapping, Optional

import numpy as np

from lrd_core import layout as L
from lrd_core.io import KINDS, OutputError, check_writable

_CKPT = re.compile(r"^" + L.CHECKPOINT_PREFIX + r"\d+$")
_FINETUNE = re.compile(r"^(finetune(_stage\d+)?|finetuned|stage\d+)$")
INPUT_KEYS = ("pre_trained", "checkpoint_path", "data_path", "eval_data_path", "config_path")


def _inputs(cfg) -> List[tuple]:
    return [(key, getattr(cfg, key, None)) for key in INPUT_KEYS if getattr(cfg, key, None)]


def _parts(path: str, root: str) -> Optional[List[str]]:
    """``path`` relative to ``root`` as components (None when outside; [] when it is ``root``)."""
    path, root = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([path, root]) != root:
        return None
    rel = os.path.relpath(path, root)
    return [] if rel == "." else rel.split(os.sep)


def keeps_pretrained(cfg) -> bool:
    """True when ``pre_trained`` is the very file the run would write its original weights to and the run
    does not train: the file is then read and left as it is."""
    target = os.path.join(cfg.output_path, L.RUN_ORIGINAL, L.WEIGHT_FILES[cfg.framework])
    source = cfg.pre_trained
    if source and os.path.isdir(source):
        source = L.weights_in(source, cfg.framework)
    return bool(source) and not cfg.epoch_size and os.path.exists(target) and os.path.exists(source) and \
        os.path.samefile(source, target)


#: the steps of a run, each writing its part of the run directory
STEPS = ("original", "compressed", "finetune", "export")


def steps_of(only_train: bool = False, export: bool = True, from_compressed: bool = False) -> tuple:
    """The steps :func:`lrd_recipe.pipeline.run` takes with these options."""
    if only_train:
        return ("original",)
    steps = ("finetune",) if from_compressed else ("original", "compressed", "finetune")
    return steps + (("export",) if export else ())


def _rewritten(parts: List[str], cfg, steps) -> Optional[str]:
    """Why the entry at ``parts`` (under output_path) is rewritten by these steps, or None."""
    if not parts:
        return "the run directory itself"
    head = parts[0]
    if head == L.RUN_ORIGINAL and "original" in steps:
        if len(parts) >= 2 and _CKPT.match(parts[1]) and cfg.epoch_size:
            return "a training checkpoint this run replaces"
        if cfg.epoch_size and (len(parts) == 1 or parts[1] == L.WEIGHT_FILES[cfg.framework]):
            return "where this run saves the trained weights"
        return None
    if head == L.RUN_COMPRESSED and "compressed" in steps:
        return "where this run saves the decomposed network"
    if _FINETUNE.match(head) and "finetune" in steps:
        return "where this run fine-tunes and saves"
    if head == L.RUN_EXPORT and "export" in steps:
        return "where this run exports"
    return None


def check_run_directory(cfg, steps=STEPS) -> None:
    """Refuse, before any work, a run directory that holds the user's files, an input that ``steps``
    would overwrite, or a location that cannot be written.

    Raises
    ------
    OutputError
        One line naming the path and the fix.
    """
    out = os.path.abspath(cfg.output_path)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"output_path {out} is a file; give a folder for the run (nothing was written)")
    inputs = [(key, path) for key, path in _inputs(cfg) if os.path.exists(path)]
    for key, path in inputs:
        parts = _parts(path, out)
        if parts is None:
            continue
        why = _rewritten(parts, cfg, steps)
        if why:
            where = "is" if len(parts) <= 1 else "is inside"
            raise OutputError(f"{key} {path} {where} {os.path.join(out, *parts[:1])} ({why}); copy it elsewhere "
                              f"or choose another output_path (nothing was written)")
    if os.path.isdir(out):
        mine = {(_parts(path, out) or [None])[0] for _, path in inputs}
        foreign = [n for n in sorted(os.listdir(out)) if not KINDS["run"].match(n) and n not in mine]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputError(f"output_path {out} already holds files other than lrd's run-directory entries "
                              f"({shown}); choose a new or empty folder for the run (nothing of yours is changed)")
    check_writable(os.path.join(out, L.SUMMARY_FILE))


# ---------------------------------------------------------------------------------------- resume
def state_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _layers(plan) -> dict:
    return {lp.name: (lp.method, tuple(lp.ranks or ())) for lp in plan.layers}


def reusable_decomposition(directory: str, plan, digest: str, framework: str):
    """The plan saved in ``directory`` when it is a decomposition of the same weights (``digest``) by the
    same options, layers, methods and ranks as ``plan``; else None (then the run decomposes again)."""
    from lrd_core.plan import Plan

    if not L.is_compressed_dir(directory) or L.weights_in(directory, framework) is None:
        return None
    try:
        saved = Plan.from_json(os.path.join(directory, L.PLAN_FILE))
    except Exception:  # noqa: BLE001 - an unreadable old plan is simply not reused
        return None
    if saved.meta.get("source_digest") != digest or _layers(saved) != _layers(plan) or \
            saved.config.to_dict() != plan.config.to_dict():
        return None
    return saved
