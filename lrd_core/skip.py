"""Skip training with basis convolutions (seed 003, section 4.2): train the chosen layers as basis
convolutions for the first k epochs, then fold the chains back into full layers and continue the
original schedule (learning-rate history untouched) with the original architecture.

:func:`skip_plan_options` are the plan keywords that put basis chains into the chosen layers;
:func:`fold_state` turns the state of a compressed network into the state of the original one (every
factor chain multiplied back into its layer's weight, e.g. :func:`lrd_core.factorize.basis.fold_basis`);
the adapters' ``fold_back`` applies it to a fresh model.

The layers may come from a plan file of the accuracy-aware search (``lrd plan --mode pareto`` or
``--rank-selection error``, which keep the layers whose decomposition costs the least accuracy): an entry
of ``basis_layers`` ending in ``.json`` stands for the KxK convs that plan decomposes (:func:`plan_layers`).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from .errors import ConfigError, MismatchError
from .factorize import fold, skeleton
from .plan import Plan


def plan_layers(path: str) -> List[str]:
    """The KxK conv layers a plan file decomposes (the skip-training layers it proposes), in plan order."""
    plan = Plan.from_json(path)
    names = [lp.name for lp in plan.decomposed() if lp.info.kind == "conv2d" and not lp.info.is_pointwise]
    if not names:
        raise ConfigError(f"basis_layers: plan {path} decomposes no KxK conv; make one that does (e.g. "
                          f"`lrd plan --mode pareto`) or name the layers")
    return names


def expand_layers(layers: Sequence[str]) -> List[str]:
    """``layers`` with every ``*.json`` entry replaced by the layers of that plan (:func:`plan_layers`)."""
    out: List[str] = []
    for entry in layers:
        out.extend(plan_layers(entry) if str(entry).endswith(".json") else [entry])
    return out


def skip_plan_options(layers: Sequence[str], ratio: float = 2.0, init: str = "svd", alpha: Optional[float] = None,
                      beta: Optional[float] = None, speedup: bool = False) -> dict:
    """Keywords of ``lrd_X.plan`` for skip training: basis chains in exactly the layers matching ``layers``
    (names, regular expressions or plan JSON files), C' from the PR ``ratio`` (or the alpha/beta variant), no
    rank rounding, and the chains kept even where they do not save parameters."""
    if isinstance(layers, str) or not layers:
        raise ConfigError("skip training needs basis_layers: a list of layer names, regular expressions "
                          "or plan JSON files (list the layers with `lrd inspect`)")
    return dict(mode=None, include=expand_layers(layers), conv_method="basis", rank_selection="pr", ratio=ratio,
                rank_multiple=1, basis_init=init, basis_alpha=alpha, basis_beta=beta, basis_speedup=speedup,
                skip_unreduced=False)


def fold_state(arrays: Mapping[str, np.ndarray], plan: Plan) -> Dict[str, np.ndarray]:
    """The state (torch-style names) of the uncompressed network whose compressed state is ``arrays``.

    Each decomposed layer ``L``'s chain parameters ``L.<i>.weight/bias/index`` are replaced by
    ``L.weight`` (float32, the chain multiplied back) and ``L.bias``; every other array is kept.
    """
    out = dict(arrays)
    for lp in plan.decomposed():
        subs = skeleton(lp.info, lp.method, lp.ranks)
        for i, sub in enumerate(subs):
            prefix = f"{lp.name}.{i}."
            if prefix + "weight" not in out:
                raise MismatchError(f"layer {lp.name}: no {prefix}weight in the state; it was not compressed "
                                    f"with this plan")
            sub.weight = np.asarray(out.pop(prefix + "weight"))
            if sub.has_bias:
                sub.bias = np.asarray(out.pop(prefix + "bias"))
            if sub.kind == "combine":
                sub.index = np.asarray(out.pop(prefix + "index"))
        dtype = subs[0].weight.dtype if subs[0].weight.dtype.kind == "f" else np.float32
        out[lp.name + ".weight"] = np.asarray(fold(lp.method, subs), dtype).reshape(lp.info.weight_shape)
        if subs[-1].has_bias:
            out[lp.name + ".bias"] = np.asarray(subs[-1].bias, dtype)
    return out
