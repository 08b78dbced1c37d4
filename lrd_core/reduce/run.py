"""RON and ASNet on a native model, over a backend: record, reduce, build, verify.

Each runner takes the converted description of the model (:mod:`.convert`), the calibration batches
``[(x, labels or None)]`` and the method's options; it returns the reduced native model, the
reduction record for the plan (plain JSON) and the per-layer costs before/after. Nothing is done to
the given model: RON works on a copy, ASNet builds a new network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import RankError, ReductionError
from .asnet import ASNetHead, FrequentDirections, active_subspace, fit_head, split_at
from .convert import Converted
from .graph import OUTPUT, Linear, forward, output_shape, walk
from .native import apply, linear_costs, replacements, to_native
from .pce import monomial_index, n_terms
from .ron_net import record_points, ron_reduce

__all__ = ["Outcome", "run_ron", "run_asnet", "resolve_cut", "head_spec", "head_eps", "VERIFY_RTOL"]

VERIFY_RTOL = 1e-4     #: largest relative difference between the native result and its NumPy reference


@dataclass
class Outcome:
    """What a runner made: the native model, the plan's reduction record and per-layer costs
    ``{original layer name: (params_after, macs_after)}`` plus costs of new layers."""

    model: object
    record: dict
    after: Dict[str, Tuple[int, int]]
    added: Dict[str, Tuple[int, int, int, int]] = field(default_factory=dict)   # name -> (in, out, params, macs)
    notes: Dict[str, str] = field(default_factory=dict)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _verify(got, want, what: str) -> float:
    err = _rel(got, want)
    if not err <= VERIFY_RTOL:
        raise ReductionError(f"reduce: the native {what} differs from its NumPy reference by {err:.1e} (relative); "
                             "the model's forward does something the reduced description cannot follow")
    return err


# ---------------------------------------------------------------------------- RON
def _record(backend, model, batches, names: Sequence[str]) -> Dict[str, np.ndarray]:
    hooks = [n for n in names if n != OUTPUT]
    got: Dict[str, List[np.ndarray]] = {n: [] for n in names}
    for x, _ in batches:
        out = backend.record_inputs(model, x, hooks, lambda name, a: got[name].append(a))
        if OUTPUT in got:
            got[OUTPUT].append(np.asarray(out, np.float32))
    return {n: np.concatenate(v) for n, v in got.items()}


def run_ron(backend, model, conv: Converted, batches, layers=None, ranks=None, energy=None, flop_budget=None,
            tol: float = 1.05, max_rows: Optional[int] = None, randomized: bool = True, seed: int = 0) -> Outcome:
    """RON (maxvol channel selection) of the streams of ``layers`` (default: every stream but the output)."""
    names = record_points(conv.net, conv.input_shape, layers)
    res = ron_reduce(conv.net, _record(backend, model, batches, names), conv.input_shape, layers=layers, ranks=ranks,
                     energy=energy, flop_budget=flop_budget, tol=tol, max_rows=max_rows, randomized=randomized,
                     seed=seed)
    last = conv.net[-1]
    if res.appended and not (isinstance(last, Linear) and res.streams[-1].producers == [last.name]):
        raise ReductionError("RON: the output stream can only be reduced when the network ends with the single "
                             "conv/dense layer producing it; leave it out of layers=")
    entries, specs = replacements(res.net, conv.input_shape, res.replaced, res.appended)
    reduced = backend.copy(model)
    apply(backend, reduced, specs)
    x = batches[0][0][:8]
    err = _verify(backend.forward(reduced, x), forward(res.net, x), "RON network")
    costs = linear_costs(res.net, conv.input_shape)
    for lift in res.appended:
        p, m = costs.pop(lift.name)
        q, n = costs[last.name]
        costs[last.name] = (p + q, m + n)
    notes = {}
    for st in res.streams:
        for name in st.producers:
            notes[name] = f"RON: keeps {len(st.kept)}/{st.channels} output channels (rank {st.rank})"
    record = {"method": "ron", "input_shape": list(conv.input_shape), "replace": entries,
              "streams": [s.to_dict() for s in res.streams], "appended": [a.name for a in res.appended],
              "macs_before": res.macs_before, "macs_after": res.macs_after, "verify_error": err,
              "samples": int(sum(len(x) for x, _ in batches)),
              "options": {"layers": None if layers is None else list(layers), "ranks": ranks, "energy": energy,
                          "flop_budget": flop_budget, "tol": tol, "max_rows": max_rows, "randomized": randomized,
                          "seed": seed}}
    return Outcome(reduced, record, costs, notes=notes)


# ---------------------------------------------------------------------------- ASNet
def resolve_cut(net: Sequence, cut) -> str:
    """The top-level op ``cut`` names: an op's own name, or a container (e.g. ``layer3``) whose first op
    starts at the top level."""
    if not isinstance(cut, str) or not cut:
        names = [op.name for op in net]
        raise ReductionError(f"ASNet needs cut=<layer name> (the pre-model is everything before it); top-level "
                             f"layers: {names}")
    if any(op.name == cut for op in net):
        return cut
    inside = [op.name for op in net if op.name.startswith(cut + ".")]
    nested = [op.name for op in walk(net) if op.name == cut or op.name.startswith(cut + ".")]
    if inside and nested and nested[0] == inside[0]:
        return inside[0]
    return cut                       # split_at names the block it is in, or lists the valid names


def head_spec(head: Optional[ASNetHead] = None, features: int = 0, dim: int = 0, degree: int = 2,
              outputs: int = 0, eps: float = 1e-5) -> dict:
    """The ``asnet_head`` spec of a fitted head, or placeholders of the given sizes (for loading).

    The native head keeps the standardisation as a BatchNorm1d after an orthonormal projection ``V^T``
    (running mean = calibration mean of z, running variance = std^2 - eps): in eval mode it is exactly
    :meth:`ASNetHead.arrays`' folded Dense, and in training its batch statistics keep z standardised,
    so fine-tuning with SGD is stable (folded into the Dense, the 1/std scale made the first steps
    diverge on the digits model at any learning rate tried, 0.02 and 0.005).
    """
    if head is None:
        index = monomial_index(dim, degree)
        return {"kind": "asnet_head", "projection_weight": np.zeros((dim, features), np.float32),
                "projection_bias": np.zeros(dim, np.float32), "norm_mean": np.zeros(dim, np.float32),
                "norm_var": np.ones(dim, np.float32), "norm_eps": float(eps), "poly_index": index,
                "output_weight": np.zeros((outputs, len(index)), np.float32),
                "output_bias": np.zeros(outputs, np.float32)}
    arrays = head.arrays()
    eps = head_eps(head)
    return {"kind": "asnet_head", "projection_weight": head.vectors.T.astype(np.float32),
            "projection_bias": np.zeros(head.dim, np.float32), "norm_mean": head.mean.astype(np.float32),
            "norm_var": (head.std ** 2 - eps).astype(np.float32), "norm_eps": eps,
            "poly_index": arrays["poly_index"], "output_weight": arrays["output_weight"],
            "output_bias": arrays["output_bias"]}


def head_eps(head: ASNetHead) -> float:
    """BatchNorm epsilon of the head: 1e-5, or less when a standard deviation of z is below ~0.01."""
    return float(min(1e-5, 1e-3 * float(np.min(head.std)) ** 2))


def _cotangents(labels):
    def make(out: np.ndarray):
        n, k = out.shape
        if labels is None:                       # every output: one row per (sample, output)
            return [np.eye(k, dtype=np.float32)[[j] * n] for j in range(k)]
        p = np.exp(out - out.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), labels] -= 1.0          # d(sum of cross-entropies)/d logits
        return [p.astype(np.float32)]
    return make


def run_asnet(backend, model, conv: Converted, batches, cut=None, dim: int = 10, degree: int = 2,
              ell: Optional[int] = None, ridge: float = 0.0, gradients: str = "auto", seed: int = 0) -> Outcome:
    """ASNet: active subspace of the cut activation (frequent directions over per-sample gradients) + a
    Hermite PCE head fitted to the logits; the native model is the pre-model followed by the head."""
    name = resolve_cut(conv.net, cut)
    pre, post = split_at(conv.net, name)
    cut_shape = output_shape(pre, conv.input_shape)
    features = int(np.prod(cut_shape))
    n = int(sum(len(x) for x, _ in batches))
    if not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ReductionError(f"ASNet: degree must be an integer >= 1 (the Hermite PCE's total degree), got {degree!r}")
    if int(dim) != dim or not 1 <= dim <= min(n, features):
        raise RankError(f"ASNet: dim={dim} must be an integer in [1, {min(n, features)}] ({n} calibration samples, "
                        f"{features} features at {name!r}); lower dim or add calibration samples")
    if n_terms(dim, degree) > n and ridge == 0:
        raise RankError(f"ASNet: a degree-{degree} PCE in dim={dim} variables has {n_terms(dim, degree)} terms but "
                        f"only {n} calibration samples; lower dim/degree, add samples, or set ridge > 0")
    labelled = all(y is not None for _, y in batches)
    if gradients not in ("auto", "outputs", "loss") or (gradients == "loss" and not labelled):
        raise ReductionError(f"ASNet: gradients={gradients!r}; use 'outputs', 'auto' or 'loss' (which needs "
                             "labelled calibration batches (x, y))")
    use_labels = labelled and gradients in ("auto", "loss")
    pre_net = to_native(backend, pre, conv.input_shape) if pre else None
    post_net = to_native(backend, post, cut_shape)
    ell = min(features, max(2 * int(dim), 32)) if ell is None else int(ell)
    sketch = FrequentDirections(features, ell)
    logits, cuts = [], []
    for x, y in batches:
        a = backend.forward(pre_net, x) if pre_net is not None else np.asarray(x, np.float32)
        out, g = backend.input_gradients(post_net, a, _cotangents(y if use_labels else None))
        sketch.update(g.reshape(-1, features))
        logits.append(out)
        cuts.append(a.reshape(len(a), -1))
    x0 = batches[0][0][:8]
    _verify(logits[0][:8], backend.forward(model, x0), "pre-model + post-model split")
    vectors, eig = active_subspace(sketch.sketch(), int(dim), seed=seed)
    z = np.concatenate([c.astype(np.float64) @ vectors for c in cuts])
    head = fit_head(z, np.concatenate(logits), np.eye(int(dim)), degree=degree, ridge=ridge)
    head.vectors = vectors
    arrays = head.arrays()
    tail = [("head", backend.make_module(head_spec(head)))]
    reduced = to_native(backend, pre, conv.input_shape, tail=tail)
    err = _verify(backend.forward(reduced, x0), ASNetHead.forward_arrays(arrays, cuts[0][:8]), "ASNet network")
    k = int(arrays["output_weight"].shape[0])
    t1 = int(len(arrays["poly_index"]))
    costs = linear_costs(pre, conv.input_shape)
    removed = {op.name: (0, 0) for op in walk(post) if isinstance(op, Linear)}
    added = {"head.projection": (features, int(dim), features * int(dim) + int(dim), features * int(dim)),
             "head.output": (t1, k, t1 * k + k, t1 * k)}
    record = {"method": "asnet", "input_shape": list(conv.input_shape), "cut": name, "cut_shape": list(cut_shape),
              "head": {"features": features, "dim": int(dim), "degree": int(degree), "outputs": k, "terms": t1 + 1,
                       "residual": head.residual, "norm_eps": head_eps(head)}, "eigenvalues": [float(e) for e in eig],
              "gradients": "loss" if use_labels else "outputs", "samples": n, "verify_error": err,
              "options": {"cut": cut, "dim": int(dim), "degree": int(degree), "ell": ell, "ridge": ridge,
                          "gradients": gradients, "seed": seed}}
    notes = {nm: f"ASNet: removed (after the cut at {name!r}; the head replaces it)" for nm in removed}
    return Outcome(reduced, record, {**costs, **removed}, added, notes)

