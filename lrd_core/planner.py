"""make_plan: LayerInfo list (+ weights) + PlanConfig -> Plan; decompose: Plan + weights -> SubLayers."""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import conv_methods as CM
from . import ranks as R
from .config import PlanConfig, as_pair, names_matching
from .cost import decomposed_cost, layer_macs, layer_params
from .errors import BadWeightsError, ConfigError, MismatchError, RankError, UnknownLayerError, UnsupportedLayerError
from .factorize import factorize_layer
from .factorize.basis import combine_ranks
from .factorize.cp_basis import attach_cp_report, check_ranks, manual_ranks
from .layers import LayerInfo, SubLayer
from .blocks import restrict as restrict_blocks
from .modes import MODES
from .plan import LayerPlan, Plan
from .reports import weight_error
from .roles import override_layers
from .validate import manual_pattern

Progress = Optional[Callable[[int, int, str, float], None]]


def _unknown(what: str, pattern: str, names: Sequence[str]) -> UnknownLayerError:
    sample = ", ".join(names[:3])
    return UnknownLayerError(f"{what} {pattern!r} matches no conv/dense layer of the model "
                             f"(names look like {sample}, ...; list them with `lrd inspect`)")


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise BadWeightsError(f"layer {name}: weights contain NaN or Inf; load a checkpoint from before "
                              f"training diverged (or retrain) and plan again")


def select_layers(layers: Sequence[LayerInfo], cfg: PlanConfig) -> Dict[str, bool]:
    """Which layers the mode + include/exclude + manual-rank names choose, by name (after the
    ``roles`` overrides of ``cfg``)."""
    layers = override_layers(layers, cfg.roles)
    names = [l.name for l in layers]
    chosen = {l.name: bool(cfg.mode is not None and MODES[cfg.mode](l)) for l in layers}
    if cfg.blocks:
        chosen = restrict_blocks(layers, chosen, cfg.blocks)
    for pattern in list(cfg.include) + list(cfg.ranks):
        hits = names_matching(pattern, names)
        if not hits:
            raise _unknown("include pattern" if pattern in cfg.include else "rank pattern", pattern, names)
        for n in hits:
            chosen[n] = True
    for pattern in cfg.exclude:
        hits = names_matching(pattern, names)
        if not hits:
            raise _unknown("exclude pattern", pattern, names)
        for n in hits:
            chosen[n] = False
    return chosen


def exclusion_reason(name: str, cfg: PlanConfig, names: Sequence[str]) -> Optional[str]:
    """``"excluded by --exclude 'layer4'"`` when an exclude pattern removes layer ``name``, else None."""
    for pattern in cfg.exclude:
        if name in names_matching(pattern, names):
            return f"excluded by exclude {pattern!r}"
    return None


def _explicit_names(cfg: PlanConfig) -> set:
    return set(cfg.include) | set(cfg.ranks)


def _manual_rank(info: LayerInfo, method: str, cfg: PlanConfig, names: Sequence[str]):
    chosen = manual_pattern(info.name, cfg.ranks, names)      # exact name first; overlapping patterns: error
    for pattern, spec in cfg.ranks.items():
        if pattern == chosen:
            full = R.full_ranks(info, method)
            custom = manual_ranks(info, method, spec)
            if custom is not None:
                check_ranks(info, method, custom)
                return custom
            if method == "svd":
                if isinstance(spec, tuple) and spec[0] != spec[1]:
                    what = ("a packed query/key/value projection, i.e. one dense layer" if info.role.is_packed
                            else "a dense layer" if info.kind == "dense" else "a 1x1 conv")
                    raise RankError(f"layer {info.name} is {what}, decomposed by SVD with one rank; Tucker-2 ranks "
                                    f"(r_out, r_in) {spec} apply to KxK convs only: give one rank, e.g. "
                                    f"{min(spec)}")
                wanted = (as_pair(spec)[0],)
            else:
                wanted = as_pair(spec)
            if any(w > f for w, f in zip(wanted, full)):
                raise RankError(f"layer {info.name}: rank {wanted} exceeds the full rank {full} of a "
                                f"{info.in_channels}->{info.out_channels} {method} layer; use at most {full}")
            return wanted
    return None


def _plan_layer(info: LayerInfo, selected: bool, cfg: PlanConfig, weight, names, explicit) -> LayerPlan:
    lp = LayerPlan(info=info, selected=selected, params_before=layer_params(info), macs_before=layer_macs(info))
    lp.params_after, lp.macs_after = lp.params_before, lp.macs_before
    if not selected:
        lp.reason = exclusion_reason(info.name, cfg, names) or (
            f"not selected by mode {cfg.mode}" if cfg.mode else "not selected")
        return lp
    if info.unsupported:
        lp.reason = info.unsupported
        return lp
    if info.is_grouped:
        if info.name in explicit:
            raise UnsupportedLayerError(
                f"layer {info.name} is a grouped/depthwise conv (groups={info.groups}); SVD, Tucker-2, CP and "
                f"basis convolutions do not apply to it — remove it from include/ranks")
        lp.reason = f"grouped/depthwise conv (groups={info.groups}): SVD/Tucker-2 do not apply"
        return lp
    method = CM.method_for(info, cfg)
    full = R.full_ranks(info, method)
    ranks = _manual_rank(info, method, cfg, names)
    if ranks is not None and cfg.rank_selection != "manual":
        lp.note = f"manual rank (ranks= overrides {cfg.rank_selection} for this layer)"
    if ranks is None and method == "basis" and cfg.basis_alpha is not None:
        ranks = combine_ranks(info, cfg.basis_alpha, cfg.basis_beta, cfg.basis_speedup)
    if ranks is None:
        if cfg.rank_selection == "manual":
            lp.reason = "no manual rank given for this layer"
            return lp
        if cfg.rank_selection in ("vbmf", "energy") and weight is None:
            raise ConfigError(f"rank selection {cfg.rank_selection!r} reads the trained weights: pass the "
                              f"model with its checkpoint loaded (CLI: --checkpoint)")
        final = info.role.is_final_dense and cfg.final_dense_ratio is not None
        raw = R.select(info, method, cfg.rank_selection, weight=weight,
                       ratio=cfg.final_dense_ratio if (final and cfg.rank_selection == "pr") else cfg.ratio,
                       energy=cfg.energy, vbmf_weakening=cfg.vbmf_weakening)
        if final and cfg.rank_selection != "pr":   # never compress the classifier harder than asked
            milder = R.select(info, method, "pr", ratio=cfg.final_dense_ratio)
            raw = tuple(max(a, b) for a, b in zip(raw, milder))
        if min(raw) < 1:
            lp.note = (f"{cfg.rank_selection} estimate {tuple(round(r, 1) for r in raw)} below 1 "
                       f"(no low-rank structure found); clamped to the minimum rank")
        ranks = R.quantize(raw, full, cfg.rank_multiple, cfg.rank_rounding)
    params, macs = decomposed_cost(info, method, ranks)
    if params >= lp.params_before and cfg.skip_unreduced:
        lp.reason = (f"{method} at ranks {'x'.join(map(str, ranks))} would not reduce parameters "
                     f"({params} >= {lp.params_before})")
        return lp
    lp.method, lp.ranks, lp.params_after, lp.macs_after = method, tuple(int(r) for r in ranks), params, macs
    lp.weight_error = weight_error(method, lp.ranks, weight, cfg.tucker_iters)
    return attach_cp_report(lp, cfg, weight, info.name in explicit)


def make_plan(layers: Sequence[LayerInfo], config=None, weights: Optional[Mapping[str, np.ndarray]] = None,
              meta: Optional[dict] = None, **kwargs) -> Plan:
    """Decide, for every conv/dense layer, whether and how to decompose it.

    Parameters
    ----------
    layers : list of LayerInfo
        From an adapter's ``inspect``.
    config : PlanConfig or dict, optional
        Or pass the PlanConfig fields as keywords.
    weights : {name: ndarray}, optional
        Layer weights (native layout); required by ``vbmf`` and ``energy``.
    """
    if config is None:
        cfg = PlanConfig.from_kwargs(**kwargs)
    elif isinstance(config, dict):
        cfg = PlanConfig.from_dict({**config, **kwargs})
    else:
        cfg = config
    if cfg.mode == "auto":
        raise ConfigError("mode 'auto' times layers on the device: call it through an adapter "
                          "(lrd_torch.plan / lrd_mindspore.plan or `lrd plan --mode auto`)")
    if cfg.mode == "pareto" or cfg.rank_selection == "error" or cfg.data_aware:
        raise ConfigError("mode 'pareto', rank_selection 'error' and data_aware plans read calibration data or "
                          "evaluate the model: call them through an adapter (lrd_torch.plan / lrd_mindspore.plan "
                          "with calibration=..., or `lrd plan --calibration ...`)")
    if not layers:
        raise ConfigError("the model has no conv2d or dense layer to decompose")
    names = [l.name for l in layers]
    if len(set(names)) != len(names):
        raise ConfigError("layer names are not unique")
    layers = override_layers(layers, cfg.roles)
    chosen = select_layers(layers, cfg)
    explicit = _explicit_names(cfg)
    plans = []
    from .progress import bar
    slow = cfg.rank_selection in ("vbmf", "energy")          # SVDs of every unfolding: seconds per layer
    with bar(len(layers) if slow else 0, f"planning ({'evbmf' if cfg.rank_selection == 'vbmf' else 'energy'})",
             unit="layer", progress=None if slow else False) as pbar:
        for info in layers:
            w = None if weights is None else weights.get(info.name)
            if w is not None:
                if tuple(w.shape) != info.weight_shape:
                    raise MismatchError(f"layer {info.name}: weight shape {tuple(w.shape)} does not match "
                                        f"the layer {info.weight_shape}")
                if chosen[info.name]:
                    _check_finite(info.name, w)
            pbar.set_postfix_str(info.name, refresh=False)
            plans.append(_plan_layer(info, chosen[info.name], cfg, w, names, explicit))
            pbar.update(1)
    meta = dict(meta or {})
    if slow and weights is not None:
        from .reports import warn_untrained
        warning = warn_untrained(weights, [lp.name for lp in plans if lp.decomposed], cfg.rank_selection)
        if warning:
            meta.setdefault("warnings", []).append(warning)
    return Plan(config=cfg, layers=plans, meta=meta)


def decompose(plan: Plan, weights: Mapping[str, np.ndarray], biases: Mapping[str, Optional[np.ndarray]] = None,
              progress: Progress = None, stats: Optional[Mapping] = None,
              done: Optional[Mapping[str, List[SubLayer]]] = None) -> Dict[str, List[SubLayer]]:
    """Factorize every decomposed layer of ``plan``: ``{name: [SubLayer, ...]}``.

    ``progress(i, n, name, seconds)`` is called after each layer. Data-aware layers
    (``lp.data_aware``) are factorized from ``stats[name]`` (:class:`lrd_core.calibrate.LayerStats`)
    unless ``done`` already holds their chain.
    """
    biases = biases or {}
    todo = plan.decomposed()
    out: Dict[str, List[SubLayer]] = {}
    for k, lp in enumerate(todo, 1):
        if lp.name not in weights:
            raise MismatchError(f"layer {lp.name} is in the plan but not in the model; the plan was made "
                                f"for another model — re-plan with `lrd plan`")
        w = np.asarray(weights[lp.name])
        if tuple(w.shape) != lp.info.weight_shape:
            raise MismatchError(f"layer {lp.name}: model weight {tuple(w.shape)} does not match the plan's "
                                f"{lp.info.weight_shape}; the plan was made for another model")
        _check_finite(lp.name, w)
        t0 = time.perf_counter()
        if getattr(lp, "data_aware", False):
            from .factorize.aware import factorize_data_aware
            out[lp.name] = (done or {}).get(lp.name) or factorize_data_aware(
                lp.info, lp.method, lp.ranks, w, biases.get(lp.name), (stats or {}).get(lp.name),
                floor=plan.config.floor, tucker_iters=plan.config.tucker_iters, small_blas=True)[0]
        else:
            out[lp.name] = factorize_layer(lp.info, lp.method, lp.ranks, w, biases.get(lp.name),
                                           **CM.method_options(plan.config))
        if progress is not None:
            progress(k, len(todo), lp.name, time.perf_counter() - t0)
    return out
