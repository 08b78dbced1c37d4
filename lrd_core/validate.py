"""Checks of plans and input sizes, made before anything is built.

* :func:`plan_dict` — the JSON schema of a plan file (top-level object, version, required keys, the
  type of every value: ranks are integers, never a silently truncated ``16.5`` or ``true``);
* :func:`check_plan` — a :class:`~lrd_core.Plan` object (loaded or built in Python): every method is
  registered and fits its layer (SVD: dense and 1x1 convs; Tucker-2, CP, basis: ungrouped convs), ranks
  lie within the layer's limits for its method, layer names are unique, every geometry is possible;
* :func:`recompute_costs` — each layer's parameters and MACs (hence the totals) from its geometry,
  method and ranks: the numbers written in a file are never trusted;
* :func:`check_geometry` — the plan's layers against what ``inspect`` reads on the model at the plan's
  input shape: kind, channels, kernel, stride, padding, dilation, groups, bias, input size and role;
* :func:`check_input_size` — an input too small for the network: a strided layer that would see an
  input smaller than its stride (the network has run out of resolution), or a layer whose padded input
  is smaller than its kernel (an empty output).

Every failure is an :class:`~lrd_core.errors.LRDError` with a one-line message naming the file or
layer and the fix.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Mapping, Optional, Sequence

from .errors import ConfigError, LRDError, MismatchError
from .values import finite_array, integer, number, pairs  # noqa: F401  (public here too)

REPLAN = "re-create the plan with `lrd plan` (or fix the file)"


class PlanError(MismatchError):
    """A plan file or object is malformed: wrong types, missing keys, impossible ranks or geometry."""


class ModelRunError(ConfigError, RuntimeError):
    """The model does not run on the given input (the framework refused its shape); also a RuntimeError,
    which is what the framework raised."""


# ------------------------------------------------------------------------------------------ methods
#: ``{method: fn(info) -> None or why the method does not apply to the layer}``; methods registered in
#: :data:`lrd_core.factorize.METHODS` without an entry here apply to ungrouped convolutions.
FITS: Dict[str, Callable] = {}
#: ``{method: fn(info, ranks, what) -> None}`` raising :class:`PlanError`; the default rule is below.
RANK_RULES: Dict[str, Callable] = {}


def register_fit(method: str, fn: Callable) -> None:
    FITS[method] = fn


def register_rank_rule(method: str, fn: Callable) -> None:
    RANK_RULES[method] = fn


def _conv_only(info) -> Optional[str]:
    if info.kind != "conv2d":
        return "it applies to conv layers, not dense ones"
    return None


def _pointwise_only(info) -> Optional[str]:
    if not info.is_pointwise:
        return f"it applies to dense and 1x1 conv layers, not a {info.kernel[0]}x{info.kernel[1]} conv"
    return None


register_fit("svd", _pointwise_only)
register_fit("tucker2", _conv_only)


def method_problem(info, method: str) -> Optional[str]:
    """Why ``method`` cannot decompose the layer ``info`` (None when it can)."""
    from .factorize import METHODS

    if method not in METHODS:
        return f"method {method!r} is not a registered factorization (known: {', '.join(['none'] + sorted(METHODS))})"
    if info.unsupported:
        return f"the layer cannot be replaced by a factor chain ({info.unsupported})"
    if info.groups != 1:
        return f"the layer is a grouped/depthwise conv (groups={info.groups}); no factorization applies"
    why = FITS.get(method, _conv_only)(info)
    return None if why is None else f"{method} does not fit the layer: {why}"


def _exact_rule(count: int):
    def rule(info, method, ranks, what):
        from .ranks import full_ranks

        full = full_ranks(info, method)
        if len(ranks) != count:
            raise PlanError(f"{what}: {method} takes {count} rank(s), got {list(ranks)}; {REPLAN}")
        for r, f in zip(ranks, full):
            if not 1 <= r <= f:
                span = " x ".join(f"[1, {f}]" for f in full)
                raise PlanError(f"{what}: {method} ranks {list(ranks)} must lie in {span} for a "
                                f"{info.in_channels}->{info.out_channels} layer; {REPLAN}")
    return rule


def _default_rule(info, method, ranks, what):
    """One or two ranks: the first >= 1, a second >= 0, each at most the method's full rank."""
    from .ranks import full_ranks

    full = full_ranks(info, method)
    if not 1 <= len(ranks) <= 2 or ranks[0] < 1 or any(r < 0 for r in ranks):
        raise PlanError(f"{what}: {method} ranks {list(ranks)} are not valid (one or two integers, the first "
                        f">= 1); {REPLAN}")
    for k, r in enumerate(ranks):
        top = full[min(k, len(full) - 1)]
        if r > top:
            raise PlanError(f"{what}: {method} rank {r} exceeds {top}, the largest this "
                            f"{info.in_channels}->{info.out_channels} layer allows; {REPLAN}")


register_rank_rule("svd", _exact_rule(1))
register_rank_rule("tucker2", _exact_rule(2))


def check_method_and_ranks(info, method: str, ranks, what: str) -> None:
    """The method fits the layer and the ranks are within its limits (PlanError otherwise)."""
    from .factorize import skeleton

    why = method_problem(info, method)
    if why:
        raise PlanError(f"{what}: {why}; {REPLAN}")
    if ranks is None:
        raise PlanError(f"{what}: method {method} needs ranks; {REPLAN}")
    ranks = tuple(integer(r, f"{what}: rank", error=PlanError) for r in ranks)
    RANK_RULES.get(method, _default_rule)(info, method, ranks, what)
    try:
        skeleton(info, method, ranks, dtype="shape")
    except LRDError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise PlanError(f"{what}: {method} at ranks {list(ranks)} cannot be built ({exc}); {REPLAN}") from None


# ------------------------------------------------------------------------------------------ JSON schema
_LAYER_REQUIRED = ("name", "kind", "selected", "method", "ranks", "info")
_INFO_REQUIRED = ("name", "kind", "in_channels", "out_channels")


def _role_value(annotation: str, value, what: str):
    text = str(annotation).replace(" ", "")
    optional = text.startswith("Optional[")
    if value is None and optional:
        return
    if "bool" in text:
        if not isinstance(value, bool):
            raise PlanError(f"{what} must be true or false, got {value!r}; {REPLAN}")
    elif "int" in text:
        integer(value, what, low=1, error=PlanError)
    elif "str" in text and not isinstance(value, str):
        raise PlanError(f"{what} must be a string{' or null' if optional else ''}, got {value!r}; {REPLAN}")


def _info_dict(d, where: str) -> None:
    from .layers import KINDS, LayerInfo, Role

    if not isinstance(d, Mapping):
        raise PlanError(f"{where}: 'info' must be an object, got {type(d).__name__}; {REPLAN}")
    known = {f.name: f for f in dataclasses.fields(LayerInfo)}
    unknown = sorted(set(d) - set(known))
    missing = [k for k in _INFO_REQUIRED if k not in d]
    if unknown or missing:
        what = f"unknown key(s) {unknown}" if unknown else f"missing key(s) {missing}"
        raise PlanError(f"{where}: info has {what}; {REPLAN}")
    if not isinstance(d["name"], str) or d.get("kind") not in KINDS:
        raise PlanError(f"{where}: info name must be a string and kind one of {KINDS}, got "
                        f"{d['name']!r}/{d.get('kind')!r}; {REPLAN}")
    for key in ("in_channels", "out_channels", "groups"):
        if key in d:
            integer(d[key], f"{where}: info.{key}", low=1, error=PlanError)
    for key, n, low in (("kernel", 2, 1), ("stride", 2, 1), ("dilation", 2, 1), ("input_hw", 2, 1),
                        ("padding", 4, 0)):
        if key in d:
            pairs(d[key], n, f"{where}: info.{key}", low, PlanError)
    if "has_bias" in d and not isinstance(d["has_bias"], bool):
        raise PlanError(f"{where}: info.has_bias must be true or false, got {d['has_bias']!r}; {REPLAN}")
    if d.get("unsupported") is not None and not isinstance(d["unsupported"], str):
        raise PlanError(f"{where}: info.unsupported must be a string or null; {REPLAN}")
    role = d.get("role", {}) or {}
    if not isinstance(role, Mapping):
        raise PlanError(f"{where}: info.role must be an object, got {role!r}; {REPLAN}")
    role_fields = {f.name: f.type for f in dataclasses.fields(Role)}
    for key, value in role.items():
        if key == "block":                        # the older name of stage
            key = "stage"
        if key not in role_fields:
            raise PlanError(f"{where}: info.role has unknown key {key!r} (known: {', '.join(role_fields)}); {REPLAN}")
        _role_value(role_fields[key], value, f"{where}: info.role.{key}")


def _layer_dict(d, k: int, source: str) -> None:
    if not isinstance(d, Mapping):
        raise PlanError(f"{source}: layers[{k}] must be an object, got {type(d).__name__}; {REPLAN}")
    where = f"{source}: layer {d.get('name', f'#{k}')!s}"
    missing = [key for key in _LAYER_REQUIRED if key not in d]
    if missing:
        raise PlanError(f"{where}: missing key(s) {missing}; {REPLAN}")
    if not isinstance(d["name"], str) or not d["name"]:
        raise PlanError(f"{source}: layers[{k}].name must be a non-empty string, got {d['name']!r}; {REPLAN}")
    if not isinstance(d["selected"], bool):
        raise PlanError(f"{where}: selected must be true or false, got {d['selected']!r}; {REPLAN}")
    if not isinstance(d["method"], str):
        raise PlanError(f"{where}: method must be a string, got {d['method']!r}; {REPLAN}")
    ranks = d["ranks"]
    if ranks is not None:
        if not isinstance(ranks, list) or not ranks:
            raise PlanError(f"{where}: ranks must be a list of integers or null, got {ranks!r}; {REPLAN}")
        for r in ranks:
            integer(r, f"{where}: rank", error=PlanError)
    for key in ("reason", "note"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise PlanError(f"{where}: {key} must be a string or null, got {d[key]!r}; {REPLAN}")
    for key in ("params_before", "params_after", "macs_before", "macs_after"):
        if key in d:                               # recomputed on load; only the type is checked
            integer(d[key], f"{where}: {key}", low=0, error=PlanError)
    _info_dict(d["info"], where)
    if d["info"]["name"] != d["name"] or d["info"]["kind"] != d["kind"]:
        raise PlanError(f"{where}: name/kind ({d['name']}, {d['kind']}) differ from its info "
                        f"({d['info']['name']}, {d['info']['kind']}); {REPLAN}")


def plan_dict(d, source: str = "plan") -> None:
    """Check the structure and types of a plan's JSON object (before any object is built from it).

    Raises
    ------
    PlanError
        Naming ``source``, the layer and the key.
    """
    from .plan import PLAN_VERSION

    if not isinstance(d, Mapping):
        raise PlanError(f"{source} holds a JSON {type(d).__name__}, not a plan object "
                        f"{{\"version\", \"config\", \"layers\", ...}}; {REPLAN}")
    if d.get("version") != PLAN_VERSION:
        raise PlanError(f"{source}: plan version {d.get('version')!r} is not supported (this lrd reads version "
                        f"{PLAN_VERSION}); re-create the plan with `lrd plan`")
    missing = [k for k in ("config", "layers") if k not in d]
    if missing:
        raise PlanError(f"{source}: missing key(s) {missing}; {REPLAN}")
    if not isinstance(d["config"], Mapping):
        raise PlanError(f"{source}: config must be an object, got {type(d['config']).__name__}; {REPLAN}")
    if not isinstance(d.get("meta", {}), Mapping):
        raise PlanError(f"{source}: meta must be an object, got {type(d['meta']).__name__}; {REPLAN}")
    shape = d.get("meta", {}).get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) < 2:
            raise PlanError(f"{source}: meta.input_shape must be a list like [1, 3, 224, 224], got {shape!r}")
        for v in shape:
            integer(v, f"{source}: meta.input_shape entry", low=1, error=PlanError)
    layers = d["layers"]
    if not isinstance(layers, list) or not layers:
        raise PlanError(f"{source}: layers must be a non-empty list, got {layers!r:.60}; {REPLAN}")
    for k, layer in enumerate(layers):
        _layer_dict(layer, k, source)


def plan_config(d: Mapping, source: str = "plan"):
    """The :class:`~lrd_core.PlanConfig` of a plan's ``config`` object, failures named after ``source``."""
    from .config import PlanConfig

    try:
        return PlanConfig.from_dict(dict(d))
    except LRDError as exc:
        raise PlanError(f"{source}: config: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise PlanError(f"{source}: config has a value of the wrong type ({exc}); {REPLAN}") from None


# ------------------------------------------------------------------------------------------ plan objects
def _info_problem(info) -> Optional[str]:
    if info.in_channels < 1 or info.out_channels < 1 or info.groups < 1:
        return "channels and groups must be >= 1"
    if info.in_channels % info.groups or info.out_channels % info.groups:
        return f"groups={info.groups} must divide the channels {info.in_channels}->{info.out_channels}"
    if min(info.kernel + info.stride + info.dilation + info.input_hw) < 1 or min(info.padding) < 0:
        return "kernel, stride, dilation and input size must be >= 1 and padding >= 0"
    if info.kind == "dense" and (info.kernel != (1, 1) or info.stride != (1, 1) or info.groups != 1):
        return "a dense layer has kernel 1x1, stride 1 and groups 1"
    if min(info.output_hw) < 1:
        return (f"a {info.kernel[0]}x{info.kernel[1]} kernel does not fit its padded "
                f"{info.input_hw[0]}x{info.input_hw[1]} input (empty output)")
    return None


def check_plan(plan, source: str = "plan") -> None:
    """Check a :class:`~lrd_core.Plan` object: unique layers, possible geometry, methods that fit their
    layers, ranks within limits, no decomposition of an unselected layer.

    Raises
    ------
    PlanError
    """
    from .layers import LayerInfo

    if not plan.layers:
        raise PlanError(f"{source}: the plan lists no layer; {REPLAN}")
    seen = set()
    for lp in plan.layers:
        if not isinstance(lp.info, LayerInfo):
            raise PlanError(f"{source}: layer {lp.info!r:.40} is not described by a LayerInfo; {REPLAN}")
        what = f"{source}: layer {lp.name}"
        if lp.name in seen:
            raise PlanError(f"{source}: layer {lp.name} is listed twice; {REPLAN}")
        seen.add(lp.name)
        why = _info_problem(lp.info)
        if why:
            raise PlanError(f"{what}: impossible geometry: {why}; {REPLAN}")
        if not isinstance(lp.method, str):
            raise PlanError(f"{what}: method must be a string, got {lp.method!r}; {REPLAN}")
        if lp.method == "none":
            if lp.ranks is not None:
                raise PlanError(f"{what}: ranks {list(lp.ranks)} given for a layer that is not decomposed (method "
                                f"none); set its method or remove the ranks")
            continue
        if not lp.selected:
            raise PlanError(f"{what}: method {lp.method} on a layer marked selected=false; set selected to true "
                            f"or method to none")
        check_method_and_ranks(lp.info, lp.method, lp.ranks, what)


def recompute_costs(plan):
    """Set every layer's params/MACs before and after from its geometry, method and ranks (in place).

    A plan of ``reduce`` (``meta["reduction"]``) keeps the after-costs of its undecomposed layers: they
    describe the reduced network, which the layer geometry alone does not.
    """
    from .cost import decomposed_cost, layer_macs, layer_params

    reduced = isinstance(plan.meta, Mapping) and "reduction" in plan.meta
    for lp in plan.layers:
        lp.params_before, lp.macs_before = layer_params(lp.info), layer_macs(lp.info)
        if lp.decomposed:
            lp.params_after, lp.macs_after = decomposed_cost(lp.info, lp.method, lp.ranks)
        elif not reduced:
            lp.params_after, lp.macs_after = lp.params_before, lp.macs_before
    return plan


# ------------------------------------------------------------------------------------------ against a model
GEOMETRY = ("kind", "in_channels", "out_channels", "kernel", "stride", "padding", "dilation", "groups", "has_bias")
ROLE_FIELDS = ("is_stem", "is_downsample", "is_final_dense", "stage")


def _show(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def check_geometry(plan, infos: Sequence, input_shape=None, source: str = "the plan") -> None:
    """Every layer of ``plan`` must equal the model's (``infos`` from ``inspect`` at ``input_shape``).

    Without ``input_shape`` only the static geometry is compared (not input sizes or roles).

    Raises
    ------
    MismatchError
        Naming the first layer and field that differ.
    """
    model = {i.name: i for i in infos}
    at = "" if input_shape is None else f" at input {'x'.join(map(str, input_shape))}"
    fields = GEOMETRY + (("input_hw",) if input_shape is not None else ())
    for lp in plan.layers:
        got = model.get(lp.name)
        if got is None:
            continue                                # name differences are reported by the caller
        mine = lp.info
        for key in fields:
            if key == "padding" and got.kind == "dense":
                continue
            a, b = getattr(mine, key), getattr(got, key)
            if a != b:
                raise MismatchError(f"{source}: layer {lp.name} has {key} {_show(a)} in the plan but {_show(b)} in "
                                    f"the model{at}; the plan was made for another model or input size: re-plan "
                                    f"with `lrd plan` for this model")
        if input_shape is not None:
            for key in ROLE_FIELDS:
                a, b = getattr(mine.role, key), getattr(got.role, key)
                if a != b:
                    raise MismatchError(f"{source}: layer {lp.name} has role {key}={a} in the plan but {key}={b} "
                                        f"in the model{at}; the plan was made for another model: re-plan with "
                                        f"`lrd plan` (or set the role with --role)")
            if lp.decomposed and got.unsupported:
                raise MismatchError(f"{source}: layer {lp.name} cannot be decomposed in this model "
                                    f"({got.unsupported}); re-plan with `lrd plan`")


def check_input_size(infos: Sequence, input_shape, fits=None) -> None:
    """Refuse an input too small for the network (ConfigError naming the layer and a size that works).

    A layer with stride s needs at least s input positions per side (else the network has run out of
    resolution: downsampling a 1x1 map); a kernel needs a padded input at least as large as itself.
    ``fits(side) -> bool``, when given, checks the suggested side on the network itself (the estimate
    is doubled until it fits), so the message names a size that works the first time.
    """
    shape = "x".join(map(str, input_shape))
    for info in infos:
        if info.kind != "conv2d" or info.unsupported:
            continue
        h, w = info.input_hw
        (ph, pw) = (info.padding[0] + info.padding[1], info.padding[2] + info.padding[3])
        span = [d * (k - 1) + 1 for d, k in zip(info.dilation, info.kernel)]
        short = max(s / max(n, 1) for s, n in zip(info.stride, (h, w)))
        if h + ph < span[0] or w + pw < span[1] or short > 1:
            hint = ""
            if len(input_shape) == 4 and short > 1:
                side = _size_that_fits(infos, input_shape)
                for _ in range(4 if fits is not None else 0):
                    if fits(side):
                        break
                    side *= 2
                hint = f" ({side} or more)" if fits is not None and fits(side) else f" (about {side} or more)"
            need = f"stride {_show(info.stride)}" if short > 1 else f"kernel {_show(info.kernel)}"
            raise ConfigError(f"input {shape} is too small for this network: layer {info.name} ({need}) would "
                              f"see a {h}x{w} input; use a larger input size{hint}")


def _size_that_fits(infos: Sequence, input_shape) -> int:
    """An input side every strided layer gets at least ``stride`` positions from: each layer's
    downsampling so far is estimated as input side / its input side, the worst layer decides (the
    first failing layer alone can suggest a size a deeper layer still refuses)."""
    side = max(input_shape[2:])
    need = side
    for info in infos:
        if info.kind == "conv2d" and not info.unsupported:
            for s, n in zip(info.stride, info.input_hw):
                need = max(need, math.ceil(s * side / max(n, 1)))
    return int(need)


# ------------------------------------------------------------------------------------------ manual ranks
def manual_pattern(name: str, ranks: Mapping, names: Sequence[str]) -> Optional[str]:
    """The key of ``ranks`` that sets layer ``name``'s rank (None: no key matches it).

    Precedence: a key equal to the layer name wins over regular expressions; two regular expressions
    matching the same layer are an error naming both (their order would otherwise decide silently).
    """
    from .config import names_matching

    hits = [p for p in ranks if name in names_matching(p, names)]
    if not hits:
        return None
    if name in hits:
        return name
    if len(hits) > 1:
        raise ConfigError(f"layer {name} is matched by several rank patterns ({hits[0]!r} and {hits[1]!r}); make "
                          f"the patterns disjoint or give this layer's exact name, which takes precedence")
    return hits[0]
