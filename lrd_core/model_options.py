"""Keywords of registered model builders: pass each model only the options it takes.

ResNets take ``stem`` and ``width``; Vision Transformers take ``image_size``, ``patch_size``, ``depth``
and ``drop_rate``; both take ``num_classes`` and ``seed``. The command line, the recipe and the
benchmarks gather the options a user gave and call :func:`select` to keep those the named model's
builder accepts (an option it cannot take is a one-line :class:`ConfigError`).
"""
from __future__ import annotations

import inspect
from typing import Mapping, Optional, Set

from .errors import ConfigError


def keywords(registry, name: str) -> Optional[Set[str]]:
    """Keyword names of the builder registered as ``name`` (None when the name is unknown or the
    builder takes ``**kwargs``)."""
    if name not in registry:
        return None
    params = inspect.signature(registry[name]).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def takes(registry, name: str, key: str) -> bool:
    """Whether the builder of ``name`` takes keyword ``key`` (True when unknown: let it decide)."""
    accepted = keywords(registry, name)
    return accepted is None or key in accepted


def select(registry, name: str, given: Mapping[str, object], optional: Mapping[str, object] = None,
           source: str = "option") -> dict:
    """The keywords for building ``name``: every non-None value of ``given`` (an error when the builder
    does not take it) and of ``optional`` (dropped silently when it does not).

    Parameters
    ----------
    registry : ModelRegistry or mapping of builders
    name : str
    given : mapping
        Options the user set explicitly, e.g. ``{"stem": "cifar", "patch_size": None}``.
    optional : mapping, optional
        Options that apply only to models taking them (e.g. ``image_size`` from ``--input-size``).
    source : str
        How the options are spelled in messages (``--{key}`` for the command line).

    Raises
    ------
    ConfigError
        A given option the model's builder does not take.
    """
    accepted = keywords(registry, name)
    out = {}
    for key, value in (optional or {}).items():
        if value is not None and (accepted is None or key in accepted):
            out[key] = value
    for key, value in given.items():
        if value is None:
            continue
        if accepted is not None and key not in accepted:
            spelled = source.format(key=key.replace("_", "-"), raw=key) if "{" in source else key
            raise ConfigError(f"model {name} does not take {spelled}; it takes "
                              f"{', '.join(sorted(accepted - {'seed'}))}")
        out[key] = value
    return out
