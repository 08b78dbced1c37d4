"""Folding factor chains back into full layers (the end of skip training, seed 003)."""
from __future__ import annotations

from ..plan import Plan
from ..skip import fold_state
from . import checks
from .state import load_numpy, state_to_numpy


def fold_back(backend, model, plan: Plan, into):
    """Load ``into`` (a fresh, uncompressed model of the same architecture) with the weights of ``model``
    (compressed by ``plan``), every factor chain multiplied back into its layer.

    Returns
    -------
    ``into``, updated in place. Basis-convolution chains fold exactly (the chain is linear), so both
    networks compute the same outputs up to float32 rounding.
    """
    checks.model(backend, model)
    checks.model(backend, into)
    checks.plan(plan)
    return load_numpy(backend, into, fold_state(state_to_numpy(backend, model), plan))
