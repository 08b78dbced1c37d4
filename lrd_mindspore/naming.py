"""MindSpore's BatchNorm parameter names <-> the canonical torch-style names.

MindSpore names differ from torch's only for BatchNorm:

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
BatchNorm iff ``P.moving_mean`` is a key.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from lrd_core.naming import NUM_BATCHES, bn_prefixes, split

TORCH_BN = ("weight", "bias", "running_mean", "running_var")
MINDSPORE_BN = ("gamma", "beta", "moving_mean", "moving_variance")
_T2M = dict(zip(TORCH_BN, MINDSPORE_BN))
_M2T = dict(zip(MINDSPORE_BN, TORCH_BN))


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
    bn = bn_prefixes(keys, "running_mean")
    out = {}
    for k in keys:
        prefix, leaf = split(k)
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
    bn = bn_prefixes(keys, "moving_mean")
    present = set(keys)
    out: Dict[str, str] = {}
    for k in keys:
        prefix, leaf = split(k)
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
