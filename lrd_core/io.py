"""Writing outputs safely: never half written, never over a user's files, never over an input.

Every output is written under a temporary name beside its destination
(``.<name>.tmp-<pid>-<random>``) and renamed into place only when complete. Rules for what may be
replaced:

* an output **file** replaces an existing file of that name (the user named it), never a directory,
  and never one of the run's inputs;
* an output **folder** may replace an existing folder only if everything in it is something lrd
  itself writes into a folder of that kind (a compressed model: ``plan.json``, ``model.ckpt``,
  ``model.pt``; see :data:`KINDS`); a folder holding anything else is refused — or, with ``force``,
  lrd's files are written beside the user's, replacing only lrd's own names and never deleting
  anything it did not write;
* a folder of lrd's own files is swapped for the new one as a whole (keeping its permissions); the
  working folder (or one holding it) and mount points are filled in place instead;
* new files and folders get the permissions the user's umask gives (temporary names are created
  private and opened up before the rename, also files a framework saved read-only);
* the output location is probed before any work (:func:`check_writable`): a parent that is a file,
  a read-only or non-writable folder fails at once, not after minutes of computing;
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
import stat
import tempfile
from typing import Iterable, Optional, Sequence

from .errors import LRDError

_TEMPS = r"|\..*\.(tmp|old)-\d+-.*"
#: names lrd writes into each kind of output folder (and its own temporaries): a folder is replaced only
#: by an output of its own kind, so ``lrd convert --out RUN`` never replaces a training run's folder
KINDS = {
    "compressed": re.compile(r"^(plan\.json|model\.(ckpt|pt)" + _TEMPS + r")$"),
    "checkpoint": re.compile(r"^(plan\.json|model\.(ckpt|pt)|optimizer\.(ckpt|pt)|state\.json" + _TEMPS + r")$"),
    "run": re.compile(r"^(summary\.json|train_summary\.json|curves\.png|original|compressed|finetune(_stage\d+)?|"
                      r"finetuned|stage\d+|export|ckpt-\d{9}" + _TEMPS + r")$"),
}
_WHAT = {"compressed": "lrd's compressed-model files (plan.json, model.ckpt, model.pt)",
         "checkpoint": "lrd's training-checkpoint files", "run": "lrd's run-directory entries"}
#: names lrd writes into any of its output folders (compressed models, training checkpoints, run dirs)
OWNED = re.compile("|".join(k.pattern for k in KINDS.values()))
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


def _open_up_tree(path: str) -> None:
    """The umask's permissions on everything lrd wrote under a temporary (some writers, e.g.
    MindSpore's checkpoint and MindIR savers, leave their files read-only for the owner)."""
    if not os.path.isdir(path):
        _open_up(path, directory=False)
        return
    _open_up(path, directory=True)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _open_up(os.path.join(root, name), directory=True)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                _open_up(os.path.join(root, name), directory=False)


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
    """Refuse an output that is one of the run's inputs, an existing file inside an input folder, or (a
    folder) that contains an input."""
    for src in inputs:
        if not src or not os.path.exists(src):
            continue
        if _same(path, src) or (folder and os.path.isdir(path) and _inside(src, path)) or \
                (os.path.isdir(src) and os.path.lexists(path) and _inside(path, src)):
            raise OutputError(f"output {path} would replace the input {src}; write the output somewhere else "
                              f"(nothing was written)")


def _existing_ancestor(path: str) -> str:
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return parent


def check_writable(path: str) -> None:
    """Refuse, before any work, an output whose location cannot be written: a parent that is a regular
    file, a read-only or non-writable folder. Probes by creating (and removing) a temporary of lrd's
    naming in the nearest existing parent; creates no folder."""
    path = os.path.abspath(os.fspath(path))
    parent = _existing_ancestor(path)
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {path}: {parent} is a regular file, not a folder; choose another "
                          f"output location (nothing was written)")
    try:
        probe = tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}; choose another output location "
                          f"(nothing was written)") from None


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


def foreign_entries(folder: str, kind: str = "compressed") -> list:
    """Entries of an existing folder that lrd does not write into a folder of ``kind`` (sorted)."""
    return sorted(n for n in os.listdir(folder) if not KINDS[kind].match(n))


def check_output_dir(path: str, inputs: Sequence[Optional[str]] = (), force: bool = False,
                     kind: str = "compressed", writes: Optional[Sequence[str]] = None) -> list:
    """Check, before any work, that ``path`` may become an output folder of ``kind`` (:data:`KINDS`);
    returns the other entries in it (kept, with ``force``). Given the names the output ``writes``, a
    forced write is also refused when the folder holds another lrd name it would neither replace nor
    delete (e.g. a stale ``model.ckpt`` beside a new ``plan.json`` + ``model.pt``). Raises
    :class:`OutputError` as :func:`atomic_dir` would."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"output folder {path} exists and is a file; give a folder name (nothing was written)")
    check_not_input(path, inputs, folder=True)
    try:
        foreign = foreign_entries(path, kind) if os.path.isdir(path) else []
    except OSError as exc:
        raise _output_error(path, exc) from None
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"output folder {path} already holds files other than {_WHAT[kind]} ({shown}); choose a "
                          f"new or empty folder, or add --force to write beside them (nothing of yours is deleted)")
    if foreign and writes is not None:
        _refuse_stale(path, _stale(path, KINDS[kind], set(writes)))
    check_writable(path)
    return foreign


def _stale(path: str, owned, new: set) -> list:
    return sorted(n for n in os.listdir(path) if owned.match(n) and n not in new and not _TEMP.match(n))


def _refuse_stale(path: str, stale: list) -> None:
    if stale:
        raise OutputError(f"output folder {path} holds {', '.join(stale)} beside other files; this output would "
                          f"neither replace nor delete it and would not match it: remove it or choose another folder "
                          f"(nothing was written)")


def check_output_file(path: str, inputs: Sequence[Optional[str]] = ()) -> None:
    """Check, before any work, that ``path`` may become an output file (not a folder, not an input)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise OutputError(f"output {path} is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise OutputError(f"output {path} exists and is not a regular file (a device, pipe or socket); give a "
                          f"file name (nothing was written)")
    check_not_input(path, inputs)
    check_writable(path)


@contextlib.contextmanager
def atomic_dir(path: str, inputs: Sequence[Optional[str]] = (), force: bool = False, kind: str = "compressed"):
    """Yield a temporary folder beside ``path``; on success its content becomes ``path``.

    Parameters
    ----------
    path : str
        The output folder.
    inputs : sequence of str
        Files/folders this run reads: the output may neither be nor contain them.
    force : bool
        Write into an existing folder that holds other files too (only lrd's own names are replaced).
    kind : {'compressed', 'checkpoint', 'run'}
        What the folder holds (:data:`KINDS`): an existing folder is replaced only if everything in it
        is what lrd writes into a folder of this kind.

    Raises
    ------
    OutputError
        ``path`` is a file, is/contains an input, or holds files lrd did not write (without ``force``);
        or the file system refused the write. On any error nothing is changed at ``path``.
    """
    path = os.path.abspath(os.fspath(path))
    foreign = check_output_dir(path, inputs, force, kind)
    parent = _prepare_parent(path)
    try:
        tmp = tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=parent)
        _open_up(tmp, directory=True)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        _open_up_tree(tmp)
        _install_dir(tmp, path, merge=bool(foreign), owned=KINDS[kind])
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, LRDError):
            raise
        raise _output_error(path, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clean_stale(parent, os.path.basename(path))


def _holds_cwd(path: str) -> bool:
    try:
        return _inside(os.getcwd(), path)
    except OSError:
        return True


def _install_dir(tmp: str, path: str, merge: bool, owned=OWNED) -> None:
    if not os.path.exists(path):
        os.replace(tmp, path)
        return
    # only lrd's files there: swap the whole folder (keeping its permissions) -- unless it is the working
    # folder (or holds it) or a mount point, which are filled in place instead
    if not merge and not _holds_cwd(path) and not os.path.ismount(path):
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        old = tempfile.mkdtemp(prefix=_tmp_prefix(path, "old"), dir=os.path.dirname(path))
        os.rmdir(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return
    new = set(os.listdir(tmp))
    if merge:                       # beside user files (--force): replace lrd's names only, delete nothing
        _refuse_stale(path, _stale(path, owned, new))
    for name in _stale(path, owned, new):           # the working folder / a mount point of lrd's files only
        _remove(os.path.join(path, name))
    for name in sorted(new, key=lambda n: n == "plan.json"):      # the plan last: it names the weights
        target, source = os.path.join(path, name), os.path.join(tmp, name)
        if os.path.isdir(target) and not os.path.islink(target):
            _remove(target)
        os.replace(source, target)
    os.rmdir(tmp)


def _remove(target: str) -> None:
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    else:
        os.unlink(target)


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
        if os.path.exists(tmp):
            _open_up_tree(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, LRDError):
            raise
        raise _output_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            _unlink(tmp)
    clean_stale(parent, os.path.basename(path))
