"""``reduce``: data-driven reduced-order networks (RON, ASNet) for any backend, and their rebuild on load.

``reduce(model, method="ron"|"asnet", calibration=data, input_shape=..., **options)`` returns the
reduced native model and a :class:`~lrd_core.Plan` whose ``meta["reduction"]`` records what was kept
(RON: the kept channels and new shapes per layer; ASNet: the cut layer, r, the PCE degree and sizes) and
whose ``layers`` list every conv/dense layer of the original with its parameters/MACs before and after.
``save(reduced, plan, dir)`` writes it like a compressed model; ``load(dir, original_architecture)``
rebuilds the reduced network from the plan (:func:`rebuild_reduced`) and loads the weights.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..calibrate import validate_batch
from ..config import PlanConfig
from ..cost import layer_macs, layer_params
from ..errors import CalibrationError, ConfigError, MismatchError
from ..layers import LayerInfo
from ..plan import LayerPlan, Plan
from ..reduce.asnet import split_at
from ..reduce.convert import check, convert
from ..reduce.graph import output_shape
from ..reduce.native import apply, skeleton, to_native
from ..reduce.run import Outcome, head_spec, run_asnet, run_ron
from . import checks

#: method -> (runner, the keywords it takes)
METHODS: Dict[str, Tuple[Callable, Tuple[str, ...]]] = {
    "ron": (run_ron, ("layers", "ranks", "energy", "flop_budget", "tol", "max_rows", "randomized", "seed")),
    "asnet": (run_asnet, ("cut", "dim", "degree", "ell", "ridge", "gradients", "seed")),
}
CALIBRATION_BATCH = 64


# ---------------------------------------------------------------------------- calibration data
def _array(backend, value, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(backend.to_numpy(value))
    except Exception:  # noqa: BLE001 - anything that is neither NumPy nor a native tensor
        try:
            return np.asarray(value)
        except Exception:  # noqa: BLE001
            raise CalibrationError(f"{what}: cannot read a {type(value).__name__} as an array; pass NumPy "
                                   "batches (N, C, H, W) float32, (x, y) pairs or a dataset") from None


def _items(calibration):
    """(x, y) pairs of any supported calibration form."""
    if hasattr(calibration, "x") and hasattr(calibration, "y") and isinstance(calibration.x, np.ndarray):
        for k in range(0, len(calibration.x), CALIBRATION_BATCH):
            yield calibration.x[k:k + CALIBRATION_BATCH], calibration.y[k:k + CALIBRATION_BATCH]
        return
    if isinstance(calibration, np.ndarray):
        for k in range(0, len(calibration), CALIBRATION_BATCH):
            yield calibration[k:k + CALIBRATION_BATCH], None
        return
    if hasattr(calibration, "epoch_batches"):                    # lrd_data.Loader
        yield from calibration.epoch_batches(0)
        return
    if hasattr(calibration, "create_tuple_iterator"):            # mindspore.dataset
        calibration = calibration.create_tuple_iterator(output_numpy=True)
    for item in calibration:
        if isinstance(item, dict):
            item = tuple(item.values())
        if isinstance(item, (tuple, list)):
            yield item[0], item[1] if len(item) > 1 else None
        else:
            yield item, None


def calibration_batches(backend, calibration, input_shape=None, max_samples: Optional[int] = None
                        ) -> Tuple[List[Tuple[np.ndarray, Optional[np.ndarray]]], Tuple[int, ...]]:
    """``([(x float32, labels int64 or None)], input_shape)`` from calibration data.

    ``calibration``: an iterable of NumPy batches (N, C, H, W) or of ``(x, y)`` pairs, one array of
    samples, an :class:`lrd_data.ArrayData` / :class:`lrd_data.Loader`, a torch ``DataLoader`` or a
    MindSpore dataset (native tensors are converted). ``input_shape`` (N, C, H, W) defaults to the
    first batch's; every batch must match it (the batch size is free). ``max_samples`` stops early.
    """
    if calibration is None or isinstance(calibration, (str, bytes, int, float)):
        raise ConfigError("reduce needs calibration=<data>: NumPy batches (N, C, H, W) float32, (x, y) pairs, "
                          "an lrd_data.ArrayData/Loader or a framework dataset")
    shape = None if input_shape is None else checks.shape(input_shape, rank=0)
    out, seen = [], 0
    for k, (x, y) in enumerate(_items(calibration)):
        x = _array(backend, x, f"calibration batch {k}")
        if shape is None:
            shape = (1,) + tuple(int(s) for s in x.shape[1:])
        x = np.ascontiguousarray(validate_batch(x, shape, k), dtype=np.float32)
        if y is not None:
            y = _array(backend, y, f"calibration labels {k}").reshape(-1)
            if len(y) != len(x) or y.dtype.kind not in "iu":
                raise CalibrationError(f"calibration batch {k}: labels must be {len(x)} integer class indices, got "
                                       f"{y.dtype} of shape {y.shape}")
            y = y.astype(np.int64)
        if max_samples is not None and seen + len(x) > max_samples:
            x, y = x[:max_samples - seen], None if y is None else y[:max_samples - seen]
        if len(x):
            out.append((x, y))
            seen += len(x)
        if max_samples is not None and seen >= max_samples:
            break
    if not out:
        raise CalibrationError("calibration data is empty; pass at least one batch of inputs")
    if len({y is None for _, y in out}) > 1:
        raise CalibrationError("calibration data mixes batches with and without labels; give (x, y) everywhere or "
                               "inputs only")
    return out, shape


# ---------------------------------------------------------------------------- the public function
def _check_options(method: str, options: Dict[str, Any]) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown reduce method {method!r}; use one of {sorted(METHODS)}")
    allowed = METHODS[method][1]
    for key in options:
        if key not in allowed:
            other = [m for m, (_, keys) in METHODS.items() if key in keys]
            hint = (f"; {key}= belongs to method={other[0]!r}" if other else
                    "".join(f"; did you mean {c}=?" for c in difflib.get_close_matches(key, allowed, 1)))
            raise ConfigError(f"reduce(method={method!r}) takes no option {key}= (options: {', '.join(allowed)})"
                              f"{hint}")


def _plan(backend, infos: Sequence[LayerInfo], shape, outcome: Outcome) -> Plan:
    """The plan of a reduced model: ``layers`` describe the reduced network (nothing decomposed yet, so a
    decomposition can be planned on top); ``meta["reduction"]`` holds the record, the original layers'
    costs before/after and the totals."""
    from .model import layer_infos

    rows = []
    for info in infos:
        pb, mb = layer_params(info), layer_macs(info)
        pa, ma = outcome.after.get(info.name, (pb, mb))
        rows.append({"name": info.name, "params_before": pb, "params_after": pa, "macs_before": mb,
                     "macs_after": ma, "note": outcome.notes.get(info.name)})
    for name, (cin, cout, p, m) in outcome.added.items():
        rows.append({"name": name, "params_before": 0, "params_after": p, "macs_before": 0, "macs_after": m,
                     "note": f"ASNet head: dense {cin} -> {cout} (new layer)"})
    record = dict(outcome.record, layers=rows,
                  totals={k: int(sum(r[k] for r in rows)) for k in ("params_before", "params_after", "macs_before",
                                                                     "macs_after")})
    reduced = layer_infos(backend, outcome.model, shape)
    layers = [LayerPlan(info, selected=False, params_before=layer_params(info), params_after=layer_params(info),
                        macs_before=layer_macs(info), macs_after=layer_macs(info)) for info in reduced]
    meta = {"framework": backend.name, "input_shape": list(shape), "reduction": record}
    return Plan(PlanConfig(mode=None), layers, meta=meta)


def reduce(backend, model, method: str = "ron", calibration=None, input_shape=None, max_samples: Optional[int] = None,
           **options) -> Tuple[Any, Plan]:
    """Reduced-order network of ``model`` from calibration data: ``(reduced native model, plan)``.

    Parameters
    ----------
    model : native model
        Left unchanged. Supported: plain CNNs/MLPs and ResNets (see :mod:`lrd_core.reduce.convert`).
    method : {'ron', 'asnet'}
    calibration
        NumPy batches (N, C, H, W) float32 (or ``(x, y)`` pairs; labels switch ASNet to loss
        gradients), an ``lrd_data.ArrayData``/``Loader`` or a framework dataset/loader.
    input_shape : tuple, optional
        (N, C, H, W); default: the first calibration batch's shape.
    max_samples : int, optional
        Use at most this many calibration samples.
    **options
        RON: ``layers`` (producer names of the streams to reduce; default every stream but the output),
        one of ``energy`` (fraction of activation energy kept per stream, default 0.95), ``ranks`` (int or
        ``{layer: r}``) or ``flop_budget`` (fraction of conv/dense MACs kept), ``tol`` (maxvol, 1.05),
        ``max_rows``, ``randomized``, ``seed``.
        ASNet: ``cut`` (layer name; the pre-model is everything before it), ``dim`` (r, default 10),
        ``degree`` (Hermite PCE degree, default 2), ``ell`` (sketch rows), ``ridge``, ``gradients``
        (``auto``: of the loss when labels are given, else of every output; ``outputs``; ``loss``), ``seed``.

    Returns
    -------
    (model, Plan)
        The reduced native model (RON: a copy of ``model`` with fewer channels; ASNet: a new network,
        pre-model + head) and its plan (``plan.meta["reduction"]`` is what ``load`` rebuilds from).
    """
    from .model import layer_infos

    checks.model(backend, model)
    _check_options(method, options)
    batches, shape = calibration_batches(backend, calibration, input_shape, max_samples)
    infos = layer_infos(backend, model, shape)
    conv = convert(backend, model, shape, infos)
    check(backend, model, conv, batches[0][0][:8])
    outcome = METHODS[method][0](backend, model, conv, batches, **options)
    return outcome.model, _plan(backend, infos, shape, outcome)


# ---------------------------------------------------------------------------- rebuild (load)
def _rebuild_ron(backend, model, record: dict):
    layers = {n for n, _ in backend.named_layers(model)}
    for e in record["replace"]:
        known = backend.describe_module(model, e["name"]) is not None if e["kind"] == "batchnorm" else e["name"] in layers
        if not known:
            raise MismatchError(f"the plan's RON reduction replaces {e['name']!r}, which this model does not have; load "
                                "it into the architecture the reduced model was made from")
    apply(backend, model, {e["name"]: skeleton(e) for e in record["replace"]})
    return model


def _rebuild_asnet(backend, model, record: dict):
    conv = convert(backend, model, (1,) + tuple(record["input_shape"]))
    pre, _ = split_at(conv.net, record["cut"])
    h = record["head"]
    features = int(np.prod(output_shape(pre, conv.input_shape)))
    if features != h["features"]:
        raise MismatchError(f"the plan's ASNet head reads {h['features']} features at {record['cut']!r}, this model "
                            f"gives {features}; load it into the architecture the reduced model was made from")
    head = backend.make_module(head_spec(features=features, dim=h["dim"], degree=h["degree"], outputs=h["outputs"],
                                         eps=h.get("norm_eps", 1e-5)))
    return to_native(backend, pre, conv.input_shape, tail=[("head", head)])


REBUILDERS = {"ron": _rebuild_ron, "asnet": _rebuild_asnet}


def rebuild_reduced(backend, model, plan: Plan):
    """The reduced network of ``plan.meta["reduction"]`` built on ``model`` (a fresh instance of the original
    architecture), with placeholder weights to be loaded next; returns it (RON: ``model`` itself)."""
    record = plan.meta["reduction"]
    if record.get("method") not in REBUILDERS:
        raise MismatchError(f"unknown reduction method {record.get('method')!r} in the plan; it was written by a "
                            "newer lrd")
    return REBUILDERS[record["method"]](backend, model, record)

