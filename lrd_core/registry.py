"""Model registries (the ``create_model`` / ``register_model`` pattern), one per framework.

Each adapter's ``models`` package holds a :class:`ModelRegistry`; builders register under a name and
``create_model(name, **kwargs)`` builds one. A model built through the registry remembers its name and
keywords (:func:`model_spec`), so lrd can rebuild the same architecture elsewhere (e.g. its twin in the
other framework) without being told again.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .errors import ConfigError

SPEC_ATTR = "_lrd_model_spec"


class ModelRegistry:
    """Named model builders of one framework.

    Parameters
    ----------
    framework : str
        ``"torch"`` or ``"mindspore"`` (used in messages).
    builders : iterable of callables
        Registered under their ``__name__``.
    """

    def __init__(self, framework: str, builders=()):
        self.framework = framework
        self._builders: Dict[str, Callable] = {}
        for fn in builders:
            self.register(fn)

    def register(self, fn: Optional[Callable] = None, *, name: Optional[str] = None):
        """Register a builder (usable as ``@register`` or ``@register(name="x")``); returns the builder
        wrapped so that every model it builds remembers its name and keywords (:func:`model_spec`)."""
        def wrap(f: Callable) -> Callable:
            key = name or f.__name__
            if key in self._builders and getattr(self._builders[key], "__wrapped__", None) is not f:
                raise ConfigError(f"model {key!r} is already registered for {self.framework}")
            self._builders[key] = _remembering(key, f)
            return self._builders[key]
        return wrap(fn) if fn is not None else wrap

    def create(self, name: str, **kwargs):
        """Build the model registered as ``name`` with ``kwargs`` (e.g. num_classes, seed).

        Raises
        ------
        ConfigError
            Unknown name (the closest names are suggested) or keywords the builder does not take.
        """
        if not isinstance(name, str) or name not in self._builders:
            close = difflib.get_close_matches(str(name), list(self._builders), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown model {name!r}{hint}; known models: {', '.join(self._builders)}")
        return self._builders[name](**kwargs)

    def builder(self, name: str) -> Callable:
        """The registered (remembering) builder of ``name``."""
        return self._builders[name]

    def list(self, pattern: str = "") -> List[str]:
        """Registered names containing ``pattern``."""
        return [n for n in self._builders if pattern in n]

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def __getitem__(self, name: str) -> Callable:
        return self._builders[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def items(self):
        return self._builders.items()


def _remembering(key: str, f: Callable) -> Callable:
    sig = inspect.signature(f)

    @functools.wraps(f)
    def build(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"model {key}: {exc}") from None
        model = f(*args, **kwargs)
        try:
            object.__setattr__(model, SPEC_ATTR, (key, dict(bound.arguments)))
        except (AttributeError, TypeError):
            pass
        return model
    return build


def model_spec(model) -> Optional[Tuple[str, dict]]:
    """``(name, kwargs)`` of a model built by a registry, else None."""
    return getattr(model, SPEC_ATTR, None)


PLAN_ATTR = "_lrd_plan"


def remember_plan(model, plan) -> None:
    """Remember on ``model`` the plan its layers now follow (set by compress / rebuild / multistage)."""
    try:
        object.__setattr__(model, PLAN_ATTR, plan)
    except (AttributeError, TypeError):
        pass


def model_plan(model):
    """The plan ``model`` was compressed or rebuilt with, else None."""
    return getattr(model, PLAN_ATTR, None)
