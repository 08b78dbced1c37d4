"""Parameter names shared by both frameworks, and a framework-neutral initialiser.

The canonical ("torch-style") name of a tensor is the one ``torch.nn.Module.state_dict`` uses.
MindSpore names differ only for BatchNorm:

==========================  ==========================
torch                       MindSpore
==========================  ==========================
``P.weight``                ``P.gamma``
``P.bias``                  ``P.beta``
``P.running_mean``          ``P.moving_mean``
``P.running_var``           ``P.moving_variance``
``P.num_batches_tracked``   (none)
==========================  ==========================

A torch prefix ``P`` is a BatchNorm iff ``P.running_mean`` is a key; a MindSpore prefix is a
BatchNorm iff ``P.moving_mean`` is a key. This module never imports a framework.
"""
from __future__ import annotations

import secrets
import zlib
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

TORCH_BN = ("weight", "bias", "running_mean", "running_var")
MINDSPORE_BN = ("gamma", "beta", "moving_mean", "moving_variance")
NUM_BATCHES = "num_batches_tracked"
_T2M = dict(zip(TORCH_BN, MINDSPORE_BN))
_M2T = dict(zip(MINDSPORE_BN, TORCH_BN))


def _split(name: str) -> Tuple[str, str]:
    prefix, _, leaf = name.rpartition(".")
    return prefix, leaf


def _bn_prefixes(keys: Iterable[str], marker: str) -> set:
    return {_split(k)[0] for k in keys if _split(k)[1] == marker}


def torch_to_mindspore_names(keys: Iterable[str]) -> Dict[str, Optional[str]]:
    """Map torch-style names to MindSpore names.

    Parameters
    ----------
    keys : iterable of str
        Every key of one torch state dict (BatchNorm detection needs the whole set).

    Returns
    -------
    dict
        ``{torch name: MindSpore name}``; ``num_batches_tracked`` keys map to None.
    """
    keys = list(keys)
    bn = _bn_prefixes(keys, "running_mean")
    out = {}
    for k in keys:
        prefix, leaf = _split(k)
        if prefix in bn and leaf == NUM_BATCHES:
            out[k] = None
        elif prefix in bn and leaf in _T2M:
            out[k] = f"{prefix}.{_T2M[leaf]}"
        else:
            out[k] = k
    return out


def mindspore_to_torch_names(keys: Iterable[str]) -> Dict[str, str]:
    """Map MindSpore parameter names to torch-style names.

    Parameters
    ----------
    keys : iterable of str
        Every parameter name of one MindSpore network.

    Returns
    -------
    dict
        ``{MindSpore name: torch name}``, ordered like torch's ``state_dict``: the four
        BatchNorm entries of a prefix appear together, as weight, bias, running_mean,
        running_var, at the position of the prefix's first key.
    """
    keys = list(keys)
    bn = _bn_prefixes(keys, "moving_mean")
    present = set(keys)
    out: Dict[str, str] = {}
    for k in keys:
        prefix, leaf = _split(k)
        if prefix in bn and leaf in _M2T:
            for ms_leaf in MINDSPORE_BN:  # emit the whole group in torch order
                ms_name = f"{prefix}.{ms_leaf}"
                if ms_name in present and ms_name not in out:
                    out[ms_name] = f"{prefix}.{_M2T[ms_leaf]}"
        else:
            out[k] = k
    return out


def torch_to_mindspore(arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Rename a torch-style dict of arrays to MindSpore names (``num_batches_tracked`` dropped).

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray

    Returns
    -------
    dict
        Same arrays (not copied) under MindSpore names.
    """
    names = torch_to_mindspore_names(arrays)
    return {names[k]: v for k, v in arrays.items() if names[k] is not None}


def mindspore_to_torch(arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Rename a MindSpore dict of arrays to torch-style names (no ``num_batches_tracked`` added).

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray

    Returns
    -------
    dict
        Same arrays (not copied) under torch names, in torch ``state_dict`` order.
    """
    names = mindspore_to_torch_names(arrays)
    return {t: arrays[m] for m, t in names.items()}


def is_num_batches(name: str) -> bool:
    """Return True for a torch BatchNorm ``num_batches_tracked`` key."""
    return _split(name)[1] == NUM_BATCHES


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
    bn = _bn_prefixes(shapes, "running_mean")
    bn_fill = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    out = {}
    for name, shape in shapes.items():
        prefix, leaf = _split(name)
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
