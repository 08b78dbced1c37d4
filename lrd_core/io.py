"""Write-then-rename helpers so that nothing is left half written on failure."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_dir(path: str):
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` atomically.

    On error the temporary directory is removed and ``path`` is left as it was.
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".old-", dir=parent)
        os.rmdir(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str, suffix: str = ""):
    """Yield a temporary file name next to ``path``; renamed onto ``path`` on success."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp-", suffix=suffix,
                               dir=os.path.dirname(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


PLAN_FILE = "plan.json"
WEIGHT_FILES = {"mindspore": "model.ckpt", "torch": "model.pt"}


def compressed_dir_files(directory: str, prefer: str):
    """(plan path, weights path) of a compressed-model directory; ``prefer`` names the framework
    whose weight file is taken first (the other one is converted on load)."""
    from .errors import MismatchError

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
