"""Cell state <-> plain NumPy arrays under torch-style names (the cross-framework format).

Names come from the cell tree (``parameters_and_names``), not from ``Parameter.name``, so they
stay right after layers were replaced (e.g. by ``nn.SequentialCell`` chains) even when the
parameters' own names went stale.
"""
from __future__ import annotations

from typing import Dict, Mapping

import mindspore as ms
import numpy as np
from mindspore import nn

from lrd_core.errors import MismatchError
from lrd_core.naming import describe_mismatch, mindspore_to_torch_names

HINT = ("Build the network with the same architecture/options (and the same compression plan) "
        "as the one the arrays came from.")


def named_parameters(net: nn.Cell) -> Dict[str, ms.Parameter]:
    """Return ``{torch-style name: Parameter}`` of ``net``, in torch ``state_dict`` order.

    Parameters
    ----------
    net : mindspore.nn.Cell

    Returns
    -------
    dict
        Every parameter (trainable or not, e.g. BatchNorm moving statistics) once.
    """
    params = dict(net.parameters_and_names())
    return {t: params[m] for m, t in mindspore_to_torch_names(params).items()}


def torch_style_shapes(net: nn.Cell) -> Dict[str, tuple]:
    """Return ``{torch-style name: shape}`` of ``net`` without copying any data."""
    return {k: tuple(p.shape) for k, p in named_parameters(net).items()}


def state_to_numpy(net: nn.Cell) -> Dict[str, np.ndarray]:
    """Copy every parameter of ``net`` to NumPy under torch-style names.

    Parameters
    ----------
    net : mindspore.nn.Cell

    Returns
    -------
    dict
        ``{torch-style name: numpy.ndarray}`` (copies), in torch ``state_dict`` order; no
        ``num_batches_tracked`` (MindSpore has none).
    """
    return {k: np.array(p.asnumpy(), copy=True) for k, p in named_parameters(net).items()}


def load_numpy(net: nn.Cell, arrays: Mapping[str, np.ndarray]) -> nn.Cell:
    """Load torch-style arrays (from ``state_to_numpy`` of either framework) into ``net``.

    Parameters
    ----------
    net : mindspore.nn.Cell
    arrays : mapping of str to numpy.ndarray
        Torch-style names; BatchNorm ``num_batches_tracked`` entries are ignored.

    Returns
    -------
    mindspore.nn.Cell
        ``net``, updated in place.

    Raises
    ------
    lrd_core.errors.MismatchError
        Missing, unexpected or mis-shaped keys; nothing is loaded then.
    """
    params = named_parameters(net)
    msg = describe_mismatch(torch_style_shapes(net), arrays, what="network", hint=HINT)
    if msg:
        raise MismatchError(msg)
    for k, p in params.items():
        a = np.ascontiguousarray(arrays[k], dtype=ms.dtype_to_nptype(p.dtype))
        p.set_data(ms.Tensor(a))
    return net
