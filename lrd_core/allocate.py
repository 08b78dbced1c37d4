"""Global rank allocation: meet a model-level budget at the least total (normalised) error.

Every layer offers a list of options ordered from full to small (the first is usually ``none``,
the undecomposed layer; a layer that must stay has only that). Each option carries a normalised
error -- additive across layers; the squared relative output error of
:mod:`lrd_core.factorize.data_aware`, i.e. the fraction of the layer's output energy lost, is the
natural choice -- and its size: parameters, MACs and optionally a latency.

Greedy marginal analysis (Fox 1966): start at every layer's first option and repeatedly take the
move that costs the least error increase per unit of budget saved, until ``original / current >=
target``. A move may jump over several options of one layer (the best ratio over all later
options), so non-convex error curves do not stall the search. For convex (diminishing-returns)
curves every state on the path is optimal for its own cost. The path does not depend on the
target -- only where it stops does -- so a larger target never gives a smaller error or a larger
option anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .cost import decomposed_cost, layer_params
from .errors import ConfigError
from .layers import LayerInfo


@dataclass(frozen=True)
class Option:
    """One way to treat a layer: ``method`` (``"none"`` = undecomposed) at ``ranks``."""

    method: str = "none"
    ranks: Tuple[int, ...] = ()
    error: float = 0.0
    params: int = 0
    macs: int = 0
    latency: Optional[float] = None

    def label(self) -> str:
        return "none" if self.method == "none" else f"{self.method}:{'x'.join(map(str, self.ranks))}"


COSTS: Dict[str, Callable[[Option], Optional[float]]] = {
    "params": lambda o: o.params,
    "macs": lambda o: o.macs,
    "latency": lambda o: o.latency,
}


@dataclass(frozen=True)
class Step:
    """One greedy move: ``layer`` from option ``src`` to ``dst``; ``ratio`` after the move."""

    layer: str
    src: int
    dst: int
    d_error: float
    saved: float
    ratio: float


@dataclass
class Allocation:
    """The chosen option per layer, the model-level ratio reached and the greedy trace."""

    kind: str
    target: float
    choice: Dict[str, Option]
    index: Dict[str, int]
    ratio: float
    error: float
    trace: List[Step] = field(default_factory=list)


def _costs(layers: Mapping[str, Sequence[Option]], kind: str) -> Dict[str, List[float]]:
    if kind not in COSTS:
        raise ConfigError(f"budget kind must be one of {sorted(COSTS)}, got {kind!r}")
    out = {}
    for name, options in layers.items():
        if not options:
            raise ConfigError(f"layer {name!r} has no options; give it at least the 'none' option")
        values = [COSTS[kind](o) for o in options]
        if any(v is None for v in values):
            raise ConfigError(f"layer {name!r}: a {kind} budget needs a {kind} for every option "
                              f"(measure the layer or use a params/macs budget)")
        out[name] = [float(v) for v in values]
    return out


def _best_move(layers, costs, index) -> Optional[Tuple[float, float, float, str, int]]:
    best = None
    for name, options in layers.items():
        j = index[name]
        c, e = costs[name], options[index[name]].error
        for j2 in range(j + 1, len(options)):
            saved = c[j] - c[j2]
            if saved <= 0:
                continue
            d_error = options[j2].error - e
            key = (d_error / saved, d_error, -saved)
            if best is None or key < best[0]:
                best = (key, name, j2, d_error, saved)
    return best


def allocate(layers: Mapping[str, Sequence[Option]], target: float, kind: str = "params", fixed: float = 0.0,
             original: Optional[float] = None) -> Allocation:
    """Greedy allocation of options to layers under a model-level budget.

    Parameters
    ----------
    layers : mapping name -> options
        Options ordered from full to small (first = starting point, usually ``none``).
    target : float
        Required ``original / compressed`` of the budget's kind (> 1).
    kind : {"params", "macs", "latency"}
    fixed : float
        Size of everything outside ``layers`` (never changes).
    original : float, optional
        The model's size before compression; default ``fixed`` + every layer's first option.

    Raises
    ------
    ConfigError
        ``target <= 1``, a missing cost, or a target the smallest options cannot reach.
    """
    if not target > 1:
        raise ConfigError(f"the budget ratio (original / compressed) must be > 1, got {target}")
    costs = _costs(layers, kind)
    index = {name: 0 for name in layers}
    current = fixed + sum(c[0] for c in costs.values())
    original = current if original is None else float(original)
    limit = original / target
    trace: List[Step] = []
    while current > limit * (1 + 1e-12):
        move = _best_move(layers, costs, index)
        if move is None:
            raise ConfigError(f"a {kind} budget of {target:g}x cannot be met: the smallest candidates reach "
                              f"{original / current:.3g}x; lower the target or allow more layers/smaller ranks")
        _, name, j2, d_error, saved = move
        trace.append(Step(name, index[name], j2, d_error, saved, original / (current - saved)))
        index[name] = j2
        current -= saved
    choice = {name: layers[name][j] for name, j in index.items()}
    return Allocation(kind, float(target), choice, index, original / current,
                      float(sum(o.error for o in choice.values())), trace)


def uniform(layers: Mapping[str, Sequence[Option]], j: int) -> Dict[str, int]:
    """Option ``j`` in every layer (clamped to its last option): the uniform baseline."""
    return {name: min(j, len(options) - 1) for name, options in layers.items()}


def layer_options(info: LayerInfo, method: str, ranks: Sequence[Sequence[int]], errors: Sequence[float],
                  latencies: Optional[Sequence[float]] = None, original_latency: Optional[float] = None,
                  max_ratio: Optional[float] = None, squared: bool = True) -> List[Option]:
    """Options of one layer: ``none`` then ``method`` at each rank tuple, ordered as given.

    ``errors`` are relative output errors (squared into energy fractions when ``squared``).
    Options that would not shrink the layer, or shrink its parameters by more than ``max_ratio``
    (e.g. the final-dense ratio), are left out.
    """
    from .cost import layer_macs

    none = Option("none", (), 0.0, layer_params(info), layer_macs(info), original_latency)
    out = [none]
    for i, (r, e) in enumerate(zip(ranks, errors)):
        params, macs = decomposed_cost(info, method, tuple(int(v) for v in r))
        if params >= none.params or (max_ratio is not None and none.params / params > max_ratio):
            continue
        lat = None if latencies is None else float(latencies[i])
        out.append(Option(method, tuple(int(v) for v in r), float(e) ** 2 if squared else float(e), params, macs, lat))
    return out


def rank_ladder(info: LayerInfo, method: str, q: int = 8) -> List[Tuple[int, ...]]:
    """Candidate ranks below the full rank, multiples of ``q``, largest first. Tucker-2 pairs keep
    ``r_out / r_in`` near ``Cout / Cin`` (as the PR selector does)."""
    from .ranks import full_ranks, quantize_rank

    full = full_ranks(info, method)
    q = max(1, int(q))
    steps = range(((full[-1] - 1) // q) * q, 0, -q)
    if method == "svd":
        return [(r,) for r in steps]
    out: List[Tuple[int, ...]] = []
    for r_in in steps:
        pair = (quantize_rank(r_in * info.out_channels / info.in_channels, q, full[0]), r_in)
        if pair not in out:
            out.append(pair)
    return out
