"""Multi-stage compression (Gusak et al. 2019, "MUSCO"): compress -> fine-tune -> compress the factors
further, until a target ratio is met or the ranks stop changing.

Stage 1 is an ordinary plan applied by ``compress``. Every later stage re-decomposes the already
factorized layers *in place*: a chain keeps its 2 (SVD) or 3 (Tucker-2) layers, only the ranks
shrink. The chain's outer factors are orthogonalised (QR) and folded into a small *core*
(``r x r`` for SVD, ``r_out x r_in x kh x kw`` for Tucker-2); because the layer's weight lies in
the span of those factors, the truncated SVD / Tucker-2 of that core, mapped back through the
orthonormal bases, is the truncated decomposition of the whole product at a fraction of the cost.

New ranks come from a registry of stage selectors (:data:`STAGE_SELECTORS`):

``vbmf``
    ``R' = R - w * (R - R_evbmf)`` with EVBMF run on the unfoldings of the core (on the full
    product EVBMF only finds the current rank again, since the product is exactly rank R).
``pr``
    A stepped parameter-reduction target: stage ``s`` aims at ``ratios[s - 2]`` (or the plan's
    ratio times ``ratio_step ** (s - 1)``) per layer; ranks never grow.

The final dense layer is never compressed beyond the plan's ``final_dense_ratio``. CP-3 / CP-4 chains
follow the rules of :mod:`lrd_core.stages_cp`; basis-convolution chains keep their ranks.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.linalg import qr, svd as _svd

from . import ranks as R
from .cost import decomposed_cost
from .errors import ConfigError, MismatchError
from .factorize import skeleton
from .factorize.tucker2 import tucker2_factors
from .layers import SubLayer
from .plan import LayerPlan, Plan
from .stages_cp import FIXED_METHODS, STAGE_METHODS, cp_stage_chain, cp_stage_ranks
from .vbmf import evbmf_rank

STAGE_SELECTORS: Dict[str, Callable] = {}


def register_stage_selector(name: str):
    def wrap(fn):
        STAGE_SELECTORS[name] = fn
        return fn
    return wrap


@dataclass(frozen=True)
class StageConfig:
    """Options of the stages after the first.

    Parameters
    ----------
    rank_selection : {'vbmf', 'pr'}
    vbmf_weakening : float
        ``w`` in ``R' = R - w (R - R_evbmf)``, 0 < w <= 1.
    ratios : tuple of float
        PR: per-layer target of stage 2, 3, ... (must not decrease).
    ratio_step : float
        PR without ``ratios``: stage ``s`` aims at ``plan ratio * ratio_step ** (s - 1)``.
    target_ratio : float or None
        Stop once conv/dense parameters are reduced by this factor overall.
    max_stages : int
        Stages in all, the first (plain plan) included.
    rank_multiple : int or None
        Rank quantization of later stages (None: the plan's ``rank_multiple``).
    """

    rank_selection: str = "vbmf"
    vbmf_weakening: float = 0.8
    ratios: Tuple[float, ...] = ()
    ratio_step: float = 1.5
    target_ratio: Optional[float] = None
    max_stages: int = 3
    rank_multiple: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "ratios", tuple(float(r) for r in (self.ratios or ())))
        if self.rank_selection not in STAGE_SELECTORS:
            raise ConfigError(f"unknown stage rank selection {self.rank_selection!r}; "
                              f"choose one of {', '.join(STAGE_SELECTORS)}")
        if not 0 < self.vbmf_weakening <= 1:
            raise ConfigError(f"stage vbmf_weakening must be in (0, 1], got {self.vbmf_weakening!r}")
        if any(r <= 1 for r in self.ratios) or list(self.ratios) != sorted(self.ratios):
            raise ConfigError(f"stage ratios must be > 1 and non-decreasing, got {list(self.ratios)}")
        if self.ratio_step < 1:
            raise ConfigError(f"stage ratio_step must be >= 1, got {self.ratio_step!r}")
        if self.target_ratio is not None and self.target_ratio <= 1:
            raise ConfigError(f"target_ratio must be > 1, got {self.target_ratio!r}")
        if int(self.max_stages) != self.max_stages or self.max_stages < 1:
            raise ConfigError(f"max_stages must be a positive integer, got {self.max_stages!r}")
        if self.rank_multiple is not None and (int(self.rank_multiple) != self.rank_multiple or self.rank_multiple < 1):
            raise ConfigError(f"stage rank_multiple must be a positive integer, got {self.rank_multiple!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        return d


# ------------------------------------------------------------------------------ chains and cores
def read_chains(backend, model, plan: Plan) -> Dict[str, List[SubLayer]]:
    """The live factor chain of every decomposed layer as SubLayers (weights copied out)."""
    layers = dict(backend.named_layers(model))
    out = {}
    for lp in plan.decomposed():
        if lp.method in FIXED_METHODS:          # basis chains keep their ranks in later stages
            continue
        subs = skeleton(lp.info, lp.method, lp.ranks)
        for i, sub in enumerate(subs):
            name = f"{lp.name}.{i}"
            if name not in layers:
                raise MismatchError(f"layer {lp.name} is not a factor chain of ranks {lp.ranks} in the model; "
                                    f"compress the model with this plan first")
            w = backend.weight(layers[name])
            if tuple(w.shape) != tuple(sub.weight.shape):
                raise MismatchError(f"layer {name}: weight {tuple(w.shape)} does not match the plan's "
                                    f"{tuple(sub.weight.shape)}; the plan belongs to another stage or model")
            sub.weight = w
            sub.bias = backend.bias(layers[name]) if sub.has_bias else None
        out[lp.name] = subs
    return out


def _mat(w: np.ndarray) -> np.ndarray:
    return np.asarray(w, np.float64).reshape(w.shape[0], w.shape[1])


def orthogonal_core(method: str, subs: Sequence[SubLayer]):
    """``(Q_left, core, Q_right)`` with the layer weight = Q_left . core . Q_right^T, Q's orthonormal.

    SVD: core is ``r x r``. Tucker-2: core is ``r_out x r_in x kh x kw``.
    """
    first, last = _mat(subs[0].weight), _mat(subs[-1].weight)       # (r_in, in), (out, r_out)
    q_l, r_l = qr(last, mode="economic")
    q_r, r_r = qr(first.T, mode="economic")
    if method == "svd":
        return q_l, r_l @ r_r.T, q_r
    g = np.asarray(subs[1].weight, np.float64)                        # (r_out, r_in, kh, kw)
    g = np.tensordot(r_l, g, axes=([1], [0]))
    g = np.moveaxis(np.tensordot(g, r_r, axes=([1], [1])), 3, 1)      # (r_out, r_in, kh, kw)
    return q_l, g, q_r


def redecompose(lp: LayerPlan, subs: Sequence[SubLayer], new_ranks: Sequence[int]) -> List[SubLayer]:
    """The chain of ``lp`` at smaller ``new_ranks``: same layers, same geometry, fewer channels."""
    q_l, core, q_r = orthogonal_core(lp.method, subs)
    out = skeleton(lp.info, lp.method, new_ranks)
    dtype = np.asarray(subs[0].weight).dtype
    if lp.method == "svd":
        r = int(new_ranks[0])
        u, s, vt = _svd(core, full_matrices=False)
        root = np.sqrt(s[:r])
        first = (root[:, None] * vt[:r]) @ q_r.T                       # (r, in)
        last = q_l @ (u[:, :r] * root[None, :])                         # (out, r)
        weights = [first, last]
    else:
        u_out, g, u_in = tucker2_factors(core, (int(new_ranks[0]), int(new_ranks[1])))
        weights = [(q_r @ u_in).T, g, q_l @ u_out]
    for sub, w in zip(out, weights):
        sub.weight = np.asarray(w, dtype).reshape(sub.weight.shape)
    if subs[-1].bias is not None:
        out[-1].bias = np.asarray(subs[-1].bias, dtype).copy()
    return out


# ------------------------------------------------------------------------------ rank selectors
@register_stage_selector("vbmf")
def _vbmf(lp: LayerPlan, core: np.ndarray, cfg: StageConfig, plan: Plan, stage: int) -> Tuple[float, ...]:
    current = tuple(lp.ranks)
    if lp.method == "svd":
        mats = (core,)
    else:
        r_out, r_in = core.shape[:2]
        mats = (core.reshape(r_out, -1), np.moveaxis(core, 1, 0).reshape(r_in, -1))
    est = tuple(min(evbmf_rank(m), c) for m, c in zip(mats, current))
    return tuple(c - cfg.vbmf_weakening * (c - e) for c, e in zip(current, est))


def stage_ratio(cfg: StageConfig, plan: Plan, stage: int) -> float:
    """Per-layer PR target of ``stage`` (>= 2)."""
    if cfg.ratios:
        return cfg.ratios[min(stage - 2, len(cfg.ratios) - 1)]
    return float(plan.config.ratio) * cfg.ratio_step ** (stage - 1)


@register_stage_selector("pr")
def _pr(lp: LayerPlan, core: np.ndarray, cfg: StageConfig, plan: Plan, stage: int) -> Tuple[float, ...]:
    return R.select(lp.info, lp.method, "pr", ratio=stage_ratio(cfg, plan, stage))


def _stage_ranks(lp: LayerPlan, subs, cfg: StageConfig, plan: Plan, stage: int) -> Tuple[int, ...]:
    if lp.method in STAGE_METHODS:
        return cp_stage_ranks(lp, subs, cfg, plan, stage)
    core = orthogonal_core(lp.method, subs)[1]
    raw = STAGE_SELECTORS[cfg.rank_selection](lp, core, cfg, plan, stage)
    q = cfg.rank_multiple or plan.config.rank_multiple
    full = R.full_ranks(lp.info, lp.method)
    new = R.quantize(raw, full, q, plan.config.rank_rounding)
    if lp.info.role.is_final_dense and plan.config.final_dense_ratio is not None:
        floor = R.quantize(R.select(lp.info, lp.method, "pr", ratio=plan.config.final_dense_ratio),
                           full, q, plan.config.rank_rounding)
        new = tuple(max(a, b) for a, b in zip(new, floor))
    return tuple(min(int(a), int(c)) for a, c in zip(new, lp.ranks))   # ranks never grow


def next_plan(plan: Plan, chains: Dict[str, List[SubLayer]], cfg: StageConfig, stage: int) -> Plan:
    """The plan of ``stage`` (>= 2): same layers and methods, ranks re-selected and never larger."""
    if stage < 2:
        raise ConfigError("stage 1 is the plain plan; next_plan makes stage 2 and later")
    new = Plan(config=plan.config, layers=[copy.deepcopy(lp) for lp in plan.layers],
               meta=copy.deepcopy(plan.meta), version=plan.version)
    changes = {}
    for lp in new.decomposed():
        if lp.method in FIXED_METHODS:
            continue
        if lp.name not in chains:
            raise MismatchError(f"no live factor chain for layer {lp.name}; read it with read_chains first")
        ranks = _stage_ranks(lp, chains[lp.name], cfg, plan, stage)
        if ranks != tuple(lp.ranks):
            changes[lp.name] = [list(lp.ranks), list(ranks)]
            lp.note = f"stage {stage}: ranks {'x'.join(map(str, lp.ranks))} -> {'x'.join(map(str, ranks))}"
            lp.ranks = ranks
            lp.params_after, lp.macs_after = decomposed_cost(lp.info, lp.method, ranks)
    history = list(new.meta.get("stages", [{"stage": 1, "totals": plan.totals}]))
    history.append({"stage": stage, "selection": cfg.to_dict(), "changed": changes, "totals": new.totals})
    new.meta.update({"stage": stage, "stages": history})
    return new


def changed_layers(old: Plan, new: Plan) -> List[str]:
    """Names of the layers whose ranks differ between two plans of the same model."""
    return [a.name for a, b in zip(old.decomposed(), new.decomposed()) if tuple(a.ranks) != tuple(b.ranks)]


def reduction(plan: Plan) -> float:
    """Overall conv/dense parameter reduction factor of a plan."""
    t = plan.totals
    return t["params_before"] / max(t["params_after"], 1)


def should_continue(plan: Plan, new: Optional[Plan], cfg: StageConfig, stage: int) -> Tuple[bool, str]:
    """Whether stage ``stage`` (about to run, with ``new`` its plan) should run, and why not."""
    if stage > cfg.max_stages:
        return False, f"reached max_stages={cfg.max_stages}"
    if cfg.target_ratio is not None and reduction(plan) >= cfg.target_ratio:
        return False, f"target ratio {cfg.target_ratio}x reached ({reduction(plan):.2f}x)"
    if new is not None and not changed_layers(plan, new):
        return False, "ranks stopped changing"
    return True, ""


def recompress_model(backend, model, plan: Plan, new_plan: Plan,
                     chains: Optional[Dict[str, List[SubLayer]]] = None, progress=None):
    """Swap every changed chain of ``model`` (compressed by ``plan``) for its ``new_plan`` ranks, in place.

    All numerics run first; nothing is swapped when one layer fails.
    """
    chains = chains if chains is not None else read_chains(backend, model, plan)
    layers = dict(backend.named_layers(model))
    todo = changed_layers(plan, new_plan)
    subs = {}
    for k, name in enumerate(todo, 1):
        lp = new_plan[name]
        if lp.method in STAGE_METHODS:
            subs[name], lp.cp = cp_stage_chain(lp, chains[name], lp.ranks, new_plan.config)
        else:
            subs[name] = redecompose(lp, chains[name], lp.ranks)
        if progress is not None:
            progress(k, len(todo), name, 0.0)
    for name in todo:
        backend.replace(model, name, backend.build(subs[name], like=layers[f"{name}.0"]))
    return model
