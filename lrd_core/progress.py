"""Progress bars (tqdm, on stderr) for the long steps, quiet when stderr is not a terminal.

The API functions take ``progress=None | True | False`` (None: a bar only on a terminal) and set it for the
steps they call with :func:`scope`; the steps open bars with :func:`bar`. Log lines go to the ``lrd`` logger.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from typing import Iterator, Optional

log = logging.getLogger("lrd")

_SETTING: contextvars.ContextVar = contextvars.ContextVar("lrd_progress", default=None)


def enabled(progress: Optional[bool] = None) -> bool:
    """Whether a bar is drawn: ``progress`` if given, else the enclosing :func:`scope`'s, else on a terminal."""
    value = _SETTING.get() if progress is None else progress
    if value is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(value)


@contextlib.contextmanager
def scope(progress: Optional[bool]) -> Iterator[None]:
    """Within the block, :func:`bar` follows ``progress`` (None leaves the outer setting)."""
    token = _SETTING.set(progress if progress is not None else _SETTING.get())
    try:
        yield
    finally:
        _SETTING.reset(token)


def bar(total: int, desc: str, unit: str = "it", progress: Optional[bool] = None):
    """A tqdm bar with counters and an ETA on stderr (disabled off a terminal); use as a context manager."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(progress), file=sys.stderr, leave=False,
                dynamic_ncols=True)
