"""Writing outputs safely: never half written, never over a user's files, never over an input.

Every output is written under a temporary name beside its destination
(``.<name>.tmp-<pid>-<random>``) and renamed into place only when complete. Rules for what may be
replaced:

* an output **file** replaces an existing file of that name (the user named it), never a directory,
  and never one of the run's inputs;
* an output **folder** may replace an existing folder only if everything in it is something lrd
  itself writes there (``plan.json``, ``model.ckpt``, ``model.pt``, ... see :data:`OWNED`); a
  folder holding anything else is refused — or, with ``force``, lrd's files are written beside the
  user's, replacing only lrd's own names and never deleting anything it did not write;
* new files and folders get the permissions the user's umask gives (temporary names are created
  private and opened up before the rename);
* temporaries left by a killed run (same naming, a process id no longer alive) are removed by the
  next successful write beside them.

File-system failures (read-only, under a regular file, disk full) become :class:`OutputError` with
the path and the reason, and leave nothing behind.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from typing import Iterable, Optional, Sequence

from .errors import LRDError

#: names lrd writes into its own output folders (compressed models, training checkpoints, run dirs)
OWNED = re.compile(r"^(plan\.json|model\.(ckpt|pt)|optimizer\.(ckpt|pt)|state\.json|summary\.json|"
                   r"train_summary\.json|curves\.png|ckpt-\d{9}|original|compressed|finetune(_stage\d+)?|finetuned|"
                   r"stage\d+|export|\..*\.(tmp|old)-\d+-.*)$")
_TEMP = re.compile(r"^\.(?P<base>.+)\.(tmp|old)-(?P<pid>\d+)-[^/]*$")


class OutputError(LRDError, OSError):
    """An output cannot be written where asked (exists and is not lrd's, is an input, not writable...)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open_up(path: str, directory: bool) -> None:
    """Give a privately created temporary the permissions a normal create would have had."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(parent: str, base: Optional[str] = None) -> None:
    """Remove temporaries of lrd's naming in ``parent`` whose process is gone (optionally for one ``base``)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        m = _TEMP.match(name)
        if m and (base is None or m.group("base") == base) and not _alive(int(m.group("pid"))):
            target = os.path.join(parent, name)
            shutil.rmtree(target, ignore_errors=True) if os.path.isdir(target) else _unlink(target)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _tmp_prefix(path: str, kind: str = "tmp") -> str:
    return f".{os.path.basename(path)}.{kind}-{os.getpid()}-"


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "not writable (read-only or no permission)"
    if exc.errno == errno.ENOTDIR:
        return "a parent of it is a regular file, not a folder"
    return exc.strerror or str(exc)


def _output_error(path: str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {_why(exc)}; choose another output location")


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_not_input(path: str, inputs: Iterable[Optional[str]], folder: bool = False) -> None:
    """Refuse an output that is one of the run's inputs, or (a folder) that contains one."""
    for src in inputs:
        if not src or not os.path.exists(src):
            continue
        if _same(path, src) or (folder and os.path.isdir(path) and _inside(src, path)):
            raise OutputError(f"output {path} would replace the input {src}; write the output somewhere else "
                              f"(nothing was written)")


def _prepare_parent(path: str) -> str:
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write {path}: a parent of it is a regular file, not a folder") from None
    except OSError as exc:
        raise _output_error(path, exc) from None
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {path}: {parent} is not a folder")
    return parent


def foreign_entries(folder: str) -> list:
    """Entries of an existing folder that lrd does not write there (sorted)."""
    return sorted(n for n in os.listdir(folder) if not OWNED.match(n))


def check_output_dir(path: str, inputs: Sequence[Optional[str]] = (), force: bool = False) -> list:
    """Check, before any work, that ``path`` may become an output folder; returns the user's entries in it
    (kept, with ``force``). Raises :class:`OutputError` as :func:`atomic_dir` would."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"output folder {path} exists and is a file; give a folder name (nothing was written)")
    check_not_input(path, inputs, folder=True)
    foreign = foreign_entries(path) if os.path.isdir(path) else []
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"output folder {path} already holds files lrd did not write ({shown}); choose a new "
                          f"or empty folder, or add --force to write beside them (nothing of yours is deleted)")
    return foreign


def check_output_file(path: str, inputs: Sequence[Optional[str]] = ()) -> None:
    """Check, before any work, that ``path`` may become an output file (not a folder, not an input)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise OutputError(f"output {path} is a folder; give a file name")
    check_not_input(path, inputs)


@contextlib.contextmanager
def atomic_dir(path: str, inputs: Sequence[Optional[str]] = (), force: bool = False):
    """Yield a temporary folder beside ``path``; on success its content becomes ``path``.

    Parameters
    ----------
    path : str
        The output folder.
    inputs : sequence of str
        Files/folders this run reads: the output may neither be nor contain them.
    force : bool
        Write into an existing folder that holds other files too (only lrd's own names are replaced).

    Raises
    ------
    OutputError
        ``path`` is a file, is/contains an input, or holds files lrd did not write (without ``force``);
        or the file system refused the write. On any error nothing is changed at ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    foreign = check_output_dir(path, inputs, force)
    parent = _prepare_parent(path)
    try:
        tmp = tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=parent)
        _open_up(tmp, directory=True)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        _install_dir(tmp, path, merge=bool(foreign))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, LRDError):
            raise
        raise _output_error(path, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clean_stale(parent, os.path.basename(path))


def _install_dir(tmp: str, path: str, merge: bool) -> None:
    if not os.path.exists(path):
        os.replace(tmp, path)
        return
    if not merge:                   # only lrd's files there: swap the whole folder
        old = tempfile.mkdtemp(prefix=_tmp_prefix(path, "old"), dir=os.path.dirname(path))
        os.rmdir(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return
    new = set(os.listdir(tmp))      # --force beside user files: replace lrd's names only
    for name in os.listdir(path):
        if OWNED.match(name) and name not in new:
            target = os.path.join(path, name)
            shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
    for name in new:
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.isdir(os.path.join(tmp, name)):
            shutil.rmtree(target)
        os.replace(os.path.join(tmp, name), target)
    os.rmdir(tmp)


@contextlib.contextmanager
def atomic_file(path: str, suffix: str = "", inputs: Sequence[Optional[str]] = ()):
    """Yield a temporary file name beside ``path``; renamed onto ``path`` on success.

    Raises
    ------
    OutputError
        ``path`` is a folder or one of ``inputs``, or the file system refused the write; nothing is
        left behind then.
    """
    path = os.path.abspath(os.fspath(path))
    check_output_file(path, inputs)
    parent = _prepare_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=suffix, dir=parent)
        os.close(fd)
        _open_up(tmp, directory=False)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, LRDError):
            raise
        raise _output_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            _unlink(tmp)
    clean_stale(parent, os.path.basename(path))
