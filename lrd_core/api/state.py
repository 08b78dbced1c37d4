"""Model state <-> NumPy arrays under torch-style names (the cross-framework format)."""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np

from ..errors import BadWeightsError, MismatchError
from ..naming import describe_mismatch, is_num_batches
from . import checks

HINT = ("Build the model with the same architecture/options (and the same compression plan) "
        "as the one the arrays came from.")


def state_to_numpy(backend, model) -> Dict[str, np.ndarray]:
    """Copy every parameter and buffer of ``model`` to NumPy.

    Returns
    -------
    dict
        ``{torch-style name: numpy.ndarray}`` (copies) in torch ``state_dict`` order; torch models
        include BatchNorm ``num_batches_tracked``, MindSpore networks have none.
    """
    checks.model(backend, model)
    return {k: backend.to_numpy(t) for k, t in backend.tensors(model).items()}


def check_numeric(arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Refuse arrays that are not numbers (strings, objects), naming the tensor."""
    for name, value in arrays.items():
        try:
            kind = np.asarray(value).dtype.kind
        except (TypeError, ValueError):
            kind = "O"
        if kind not in "biuf":
            raise BadWeightsError(f"{source}: tensor {name} does not hold numbers; give the weights as numeric "
                                  f"arrays (e.g. from state_to_numpy)")


def check_finite(arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Refuse NaN/Inf anywhere in floating arrays, and arrays that are not numbers, naming the tensor."""
    check_numeric(arrays, source)
    for name, value in arrays.items():
        a = np.asarray(value)
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise BadWeightsError(f"{source}: tensor {name} contains NaN or Inf; use weights from before "
                                  f"training diverged")


def load_numpy(backend, model, arrays: Mapping[str, np.ndarray]):
    """Load arrays produced by ``state_to_numpy`` (of either framework) into ``model``, strictly.

    Parameters
    ----------
    model : native model
    arrays : mapping of str to numpy.ndarray
        Torch-style names. BatchNorm ``num_batches_tracked`` entries are optional both ways.

    Returns
    -------
    model, updated in place.

    Raises
    ------
    MismatchError
        Missing, unexpected or mis-shaped keys; nothing is loaded then.
    BadWeightsError
        NaN or Inf in any floating array; nothing is loaded then.
    """
    checks.model(backend, model)
    checks.arrays(arrays)
    target = backend.tensors(model)
    msg = describe_mismatch({k: tuple(t.shape) for k, t in target.items()},
                            {k: np.shape(v) for k, v in arrays.items()}, what="model", hint=HINT)
    if msg:
        raise MismatchError(msg)
    check_finite(arrays, "arrays")
    for k, t in target.items():
        if k in arrays:                 # absent only for optional keys (num_batches_tracked)
            backend.assign(t, np.asarray(arrays[k]))
    return model


def count_params(backend, model) -> int:
    """Number of parameters: weights, biases and norm affine parameters, trainable or frozen (no
    running statistics, no ``num_batches_tracked``)."""
    checks.model(backend, model)
    return int(sum(int(np.prod(tuple(p.shape))) for k, p in backend.parameters(model).items()
                   if not is_num_batches(k)))
