"""Canonical parameter names shared by both frameworks, and a framework-neutral initialiser.

The canonical ("torch-style") name of a tensor is the one ``torch.nn.Module.state_dict`` uses; every
adapter reads and writes its tensors under these names (MindSpore renames its BatchNorm parameters,
see :mod:`lrd_mindspore.naming`). A prefix ``P`` is a BatchNorm iff ``P.running_mean`` is a key.
This module never imports a framework.
"""
from __future__ import annotations

import secrets
import zlib
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

NUM_BATCHES = "num_batches_tracked"


def split(name: str) -> Tuple[str, str]:
    prefix, _, leaf = name.rpartition(".")
    return prefix, leaf


def bn_prefixes(keys: Iterable[str], marker: str) -> set:
    return {split(k)[0] for k in keys if split(k)[1] == marker}


def is_num_batches(name: str) -> bool:
    """Return True for a torch BatchNorm ``num_batches_tracked`` key."""
    return split(name)[1] == NUM_BATCHES


def _shape(v) -> tuple:
    return tuple(np.shape(v)) if not isinstance(v, tuple) else v


def _few(names, limit: int) -> str:
    names = sorted(names)
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def describe_mismatch(expected: Mapping, given: Mapping, *, optional=is_num_batches,
                      limit: int = 5, what: str = "model", hint: str = "") -> Optional[str]:
    """Compare two dicts of arrays (or shapes) and describe how they differ.

    Parameters
    ----------
    expected : mapping of str to numpy.ndarray or tuple
        What the target (e.g. a model) holds: name -> array or shape.
    given : mapping of str to numpy.ndarray or tuple
        What is offered to it.
    optional : callable, optional
        Names for which it returns True may be absent on either side (default: torch's
        ``num_batches_tracked``).
    limit : int
        At most this many names per category are listed, then "and N more".
    what : str
        Noun for the target in the message.
    hint : str
        Sentence appended to the message, e.g. how to fix it.

    Returns
    -------
    str or None
        One readable message, or None when keys and shapes agree.
    """
    exp = {k for k in expected if not optional(k)}
    got = {k for k in given if not optional(k)}
    parts = []
    missing, extra = exp - got, got - exp
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_few(missing, limit)}")
    if extra:
        parts.append(f"{len(extra)} unexpected key(s): {_few(extra, limit)}")
    bad = [k for k in sorted(set(expected) & set(given))
           if _shape(expected[k]) != _shape(given[k])]
    if bad:
        shown = ", ".join(f"{k} {_shape(given[k])} vs {_shape(expected[k])}" for k in bad[:limit])
        more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
        parts.append(f"{len(bad)} mis-shaped key(s) (given vs {what}): {shown}{more}")
    if not parts:
        return None
    msg = f"arrays do not match the {what}: " + "; ".join(parts) + "."
    return msg + (" " + hint if hint else "")


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def init_arrays(shapes: Mapping[str, tuple], seed: Optional[int] = None,
                dtype=np.float32) -> Dict[str, np.ndarray]:
    """Initial weights for conv/dense/BatchNorm networks, from torch-style names and shapes.

    Conv weights (4-D ``.weight``): He/Kaiming normal, fan_out, ReLU gain. Dense weights (2-D):
    uniform in +-1/sqrt(fan_in) like torch's default; biases of conv/dense the same with their
    layer's fan_in. BatchNorm: weight 1, bias 0, running mean 0, running var 1. Each tensor is
    drawn from its own generator seeded by ``(seed, crc32(name))``, so the result does not depend
    on the order of the keys and is identical in every framework.

    Parameters
    ----------
    shapes : mapping of str to tuple
        Torch-style name -> shape (all keys of one model, for BatchNorm detection).
    seed : int or None
        None draws a fresh seed.
    dtype : numpy dtype
        Floating dtype of the arrays (``num_batches_tracked`` is int64).

    Returns
    -------
    dict
        ``{name: array}`` for every key.

    Raises
    ------
    ValueError
        For a name this initialiser does not know how to fill.
    """
    seed = secrets.randbits(63) if seed is None else int(seed)
    shapes = {k: tuple(v) for k, v in shapes.items()}
    bn = bn_prefixes(shapes, "running_mean")
    bn_fill = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    out = {}
    for name, shape in shapes.items():
        prefix, leaf = split(name)
        if prefix in bn:
            if leaf == NUM_BATCHES:
                out[name] = np.zeros(shape, np.int64)
            else:
                out[name] = np.full(shape, bn_fill[leaf], dtype)
            continue
        weight = shapes.get(f"{prefix}.weight")
        if leaf == "weight" and len(shape) == 4:
            std = np.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
            out[name] = (_rng(seed, name).standard_normal(shape) * std).astype(dtype)
        elif (leaf == "weight" and len(shape) == 2) or (leaf == "bias" and weight is not None):
            w = shape if leaf == "weight" else weight
            bound = 1.0 / np.sqrt(int(np.prod(w[1:])))
            out[name] = _rng(seed, name).uniform(-bound, bound, shape).astype(dtype)
        else:
            raise ValueError(f"init_arrays: do not know how to initialise {name!r} {shape}")
    return out
