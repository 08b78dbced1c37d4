"""The recipe's accuracy-aware steps: calibration batches from the training data (``data_aware``,
``rank_selection: error``, ``compression_mode: pareto``), the recipe's evaluation as the Pareto
search's metric, and the data-aware comparison of ``lrd demo`` (``compare_data_aware``: the original
weights decomposed data-aware at the same ranks, BatchNorm re-calibrated, no fine-tuning).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from .options import plan_options

Log = Callable[[str], None]


def uses_calibration(cfg) -> bool:
    return bool(cfg.data_aware or cfg.rank_selection == "error" or cfg.compression_mode == "pareto")


def calibration_batches(cfg, train_src) -> List[np.ndarray]:
    """The first ``calibration_batches`` batches (``batch_size`` samples) of the training data in a
    fixed shuffled order (seed of the run), without augmentation."""
    from lrd_data.loader import Loader

    loader = Loader(train_src, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=False)
    out = []
    for k, (x, _y) in enumerate(loader.epoch_batches(0)):
        if k >= cfg.calibration_batches:
            break
        out.append(x)
    return out


def plan_runtime(rt, train_src, eval_src, log: Optional[Log] = None) -> Dict[str, object]:
    """``calibration`` / ``evaluate`` keywords of ``rt.fw.plan`` for a recipe config."""
    c = rt.cfg
    out: Dict[str, object] = {}
    if uses_calibration(c):
        out["calibration"] = calibration_batches(c, train_src)
    if c.compression_mode == "pareto":
        out["evaluate"] = lambda model: rt.evaluate(model, eval_src)
        if log is not None:
            out["log"] = lambda line: log(f"  {line}")
    return out


def compare_data_aware(rt, model, train_src, eval_src, log: Log) -> Dict[str, Optional[float]]:
    """The original ``model`` (left untouched) decomposed data-aware at the configured ranks on a copy:
    accuracy right after and after BatchNorm re-calibration (``bn_recalibration_batches``)."""
    c = rt.cfg
    twin = rt.model()
    rt.fw.load_numpy(twin, rt.fw.state_to_numpy(model))
    options = dict(plan_options(c), data_aware=True)
    plan = rt.fw.plan(twin, input_shape=rt.input_shape, calibration=calibration_batches(c, train_src), **options)
    rt.fw.compress(twin, plan)
    raw = rt.evaluate(twin, eval_src)
    out = {"accuracy_decomposed_data_aware_raw": raw, "accuracy_decomposed_data_aware": raw}
    if c.bn_recalibration_batches:
        rt.train.recalibrate_bn(twin, train_src, batches=c.bn_recalibration_batches, batch_size=c.batch_size,
                                seed=c.seed)
        out["accuracy_decomposed_data_aware"] = rt.evaluate(twin, eval_src)
    log(f"  data-aware at the same ranks ({len(plan.decomposed())} layers, {c.calibration_batches} calibration "
        f"batches): accuracy right after {raw:.4f}, after BatchNorm re-calibration "
        f"{out['accuracy_decomposed_data_aware']:.4f}")
    return out
