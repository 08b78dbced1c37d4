"""The lab of good and broken inputs (made once per session) and a snapshot of every file in it."""
import hashlib
import os
import stat

import pytest

from .lab import make


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A folder of good and broken inputs (see :mod:`tests.reliability.lab`)."""
    return make(str(tmp_path_factory.mktemp("lab")))


def snapshot(root: str) -> dict:
    """``{relative path: (kind, mode, sha256 of a file)}`` of everything under ``root``."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            out[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), digest)
    return out


@pytest.fixture(autouse=True)
def _pynative():
    """A command that set MindSpore's GRAPH mode (the training runtime) does not leak it into the next case."""
    yield
    import mindspore as ms
    ms.set_context(mode=ms.PYNATIVE_MODE)
