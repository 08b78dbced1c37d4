"""Model state <-> plain NumPy arrays under torch-style names (the cross-framework format)."""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import torch
from torch import nn

from lrd_core.errors import MismatchError
from lrd_core.naming import describe_mismatch

HINT = ("Build the model with the same architecture/options (and the same compression plan) "
        "as the one the arrays came from.")


def state_to_numpy(model: nn.Module) -> Dict[str, np.ndarray]:
    """Copy every parameter and buffer of ``model`` to NumPy.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    dict
        ``{state_dict name: numpy.ndarray}`` (copies), in ``state_dict`` order, including
        BatchNorm ``num_batches_tracked``.
    """
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_numpy(model: nn.Module, arrays: Mapping[str, np.ndarray]) -> nn.Module:
    """Load arrays produced by ``state_to_numpy`` (of either framework) into ``model``.

    Parameters
    ----------
    model : torch.nn.Module
    arrays : mapping of str to numpy.ndarray
        Torch-style names. ``num_batches_tracked`` entries are optional: when absent the
        model keeps its own; when the model has none they are ignored.

    Returns
    -------
    torch.nn.Module
        ``model``, updated in place.

    Raises
    ------
    lrd_core.errors.MismatchError
        Missing, unexpected or mis-shaped keys; nothing is loaded then.
    """
    target = model.state_dict()
    msg = describe_mismatch(target, arrays, what="model", hint=HINT)
    if msg:
        raise MismatchError(msg)
    with torch.no_grad():
        for k, v in target.items():
            if k not in arrays:  # only optional keys (num_batches_tracked) get here
                continue
            v.copy_(torch.as_tensor(np.asarray(arrays[k])).to(v.dtype))
    return model
