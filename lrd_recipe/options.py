"""The option objects a run builds from a recipe config (plan, multi-stage, freezing, LR schedules)
and the checks that build them at parse time, so a bad value fails before any training."""
from __future__ import annotations

import argparse
import math
from typing import Dict

from lrd_core.errors import ConfigError
from lrd_core.freezing import FreezeConfig
from lrd_core.multistage import StageConfig
from lrd_core.optim import OptimizerConfig
from lrd_core.schedule import epoch_schedule

# recipe key -> field of the option object the run builds from it
PLAN_KEYS = {"compression_mode": "mode", "rank_selection": "rank_selection", "compression_ratio": "ratio",
             "final_dense_ratio": "final_dense_ratio", "rank_quantization": "rank_multiple",
             "vbmf_weakening": "vbmf_weakening", "energy": "energy", "include": "include", "exclude": "exclude",
             "conv_method": "conv_method", "epc": "epc", "cp_iters": "cp_iters", "epc_iters": "epc_iters",
             "basis_init": "basis_init", "basis_alpha": "basis_alpha", "basis_beta": "basis_beta",
             "basis_speedup": "basis_speedup", "compression_blocks": "blocks", "data_aware": "data_aware",
             "calibration_sequential": "sequential", "compression_budget": "budget", "budget_kind": "budget_kind"}
SKIP_KEYS = {"basis_layers": "layers", "basis_skip_epochs": "skip_epochs", "basis_alpha": "alpha",
             "basis_beta": "beta", "basis_init": "init", "basis_speedup": "speedup", "compression_ratio": "ratio"}
STAGE_KEYS = {"stage_rank_selection": "rank_selection", "stage_vbmf_weakening": "vbmf_weakening",
              "stage_ratios": "ratios", "stage_ratio_step": "ratio_step", "target_ratio": "target_ratio",
              "stages": "max_stages"}
OPTIMIZER_KEYS = {"optimizer": "name", "momentum": "momentum", "weight_decay": "weight_decay", "beta1": "beta1",
                  "beta2": "beta2", "eps": "eps"}
PRECISION_KEYS = {k: k for k in ("amp_level", "loss_scale_type", "loss_scale", "scale_factor", "scale_window",
                                 "dataset_sink_mode", "sink_size")}
FREEZE_KEYS = {"freeze": "policy", "freeze_every": "every", "freeze_unit": "unit", "freeze_order": "order",
               "freeze_regular": "frozen"}


def plan_options(cfg) -> dict:
    """The ``lrd_X.plan`` keywords (:class:`lrd_core.config.PlanConfig` fields) of a recipe config."""
    basis_ab = cfg.conv_method == "basis" and (cfg.basis_alpha or cfg.basis_beta)
    return dict(mode=cfg.compression_mode, rank_selection=cfg.rank_selection, ratio=cfg.compression_ratio,
                final_dense_ratio=cfg.final_dense_ratio or None, rank_multiple=cfg.rank_quantization,
                vbmf_weakening=cfg.vbmf_weakening, energy=cfg.energy, include=list(cfg.include),
                exclude=list(cfg.exclude), blocks=cfg.compression_blocks or None, conv_method=cfg.conv_method,
                epc=cfg.epc, cp_iters=cfg.cp_iters,
                epc_iters=cfg.epc_iters, basis_init=cfg.basis_init,
                basis_alpha=(cfg.basis_alpha or None) if basis_ab else None,
                basis_beta=(cfg.basis_beta or None) if basis_ab else None, basis_speedup=cfg.basis_speedup,
                **aware_plan_options(cfg))


def aware_plan_options(cfg) -> dict:
    """The accuracy-aware plan keywords of a recipe config (budget only where the plan reads one:
    ``rank_selection: error`` and ``compression_mode: pareto`` default it to ``compression_ratio``)."""
    error = cfg.rank_selection == "error" or cfg.compression_mode == "pareto"
    budget = (cfg.compression_budget or cfg.compression_ratio) if error else (
        cfg.compression_budget or None if cfg.compression_mode == "auto" else None)
    return dict(data_aware=cfg.data_aware, sequential=bool(cfg.calibration_sequential and cfg.data_aware),
                budget=budget, budget_kind=cfg.budget_kind if budget else "params")


def skip_options(cfg) -> dict:
    """The plan keywords of skip training (:func:`lrd_core.skip.skip_plan_options`) of a recipe config;
    ConfigError for an inconsistent skip setting."""
    from lrd_core.config import PlanConfig
    from lrd_core.skip import skip_plan_options

    if cfg.basis_skip_epochs < 0:
        raise ConfigError(f"basis_skip_epochs must be >= 0, got {cfg.basis_skip_epochs}")
    if not cfg.basis_skip_epochs:
        return {}
    if cfg.basis_skip_epochs > cfg.epoch_size:
        raise ConfigError(f"basis_skip_epochs {cfg.basis_skip_epochs} is more than epoch_size {cfg.epoch_size}: the "
                          f"skip is the first part of the original training")
    ab = bool(cfg.basis_alpha or cfg.basis_beta)
    options = skip_plan_options(cfg.basis_layers, cfg.compression_ratio, cfg.basis_init,
                                (cfg.basis_alpha or None) if ab else None, (cfg.basis_beta or None) if ab else None,
                                cfg.basis_speedup)
    PlanConfig(**options)
    return options


def optimizer_options(cfg) -> OptimizerConfig:
    """The optimizer of a recipe config (``momentum`` is momentum SGD, ``adamw`` torch-style AdamW)."""
    name = "sgd" if cfg.optimizer in ("momentum", "sgd") else cfg.optimizer
    return OptimizerConfig(name=name, momentum=cfg.momentum, weight_decay=cfg.weight_decay, beta1=cfg.beta1,
                           beta2=cfg.beta2, eps=cfg.eps)


def precision_options(cfg):
    """Mixed precision, loss scaling and sinking of a recipe config (:class:`lrd_core.precision.PrecisionConfig`)."""
    from lrd_core.precision import PrecisionConfig

    return PrecisionConfig(**{k: getattr(cfg, k) for k in PRECISION_KEYS})


def stage_config(cfg) -> StageConfig:
    """The multi-stage options of a recipe config."""
    return StageConfig(rank_selection=cfg.stage_rank_selection, vbmf_weakening=cfg.stage_vbmf_weakening,
                       ratios=tuple(float(r) for r in cfg.stage_ratios), ratio_step=cfg.stage_ratio_step,
                       target_ratio=cfg.target_ratio or None, max_stages=cfg.stages)


def freeze_config(cfg) -> FreezeConfig:
    """The factor-freezing options of a recipe config."""
    return FreezeConfig(policy=cfg.freeze, every=cfg.freeze_every, unit=cfg.freeze_unit,
                        order=tuple(cfg.freeze_order), frozen=tuple(cfg.freeze_regular))


def check_built(cfg, keys: Dict[str, str], build, defaults: Dict[str, object]) -> None:
    """Build an option object from ``cfg`` (``build``) and blame the recipe key of a failure.

    Each key is tried alone (the other keys at their ``defaults``) so the message names it; then
    all together.
    """
    for key in keys:
        try:
            build(argparse.Namespace(**{**{k: defaults[k] for k in keys}, key: getattr(cfg, key)}))
        except (ConfigError, ValueError, TypeError) as exc:
            raise ConfigError(f"config key {key!r} = {getattr(cfg, key)!r}: {exc}") from None
    try:
        build(cfg)
    except (ConfigError, ValueError, TypeError) as exc:
        raise ConfigError(f"config keys {', '.join(keys)}: {exc}") from None


def check_schedule(cfg, prefix: str) -> None:
    """Check the LR keys ``<prefix>lr_*`` / ``<prefix>warmup_epochs`` as :mod:`lrd_core.schedule` will use them."""
    for name in ("lr_init", "lr_max", "lr_end", "warmup_epochs"):
        key, value = prefix + name, getattr(cfg, prefix + name)
        if not math.isfinite(value) or value < 0 or (name == "lr_max" and value <= 0):
            raise ConfigError(f"config key {key!r} must be {'> 0' if name == 'lr_max' else '>= 0'}, got {value!r}")
    g = lambda k: getattr(cfg, prefix + k)  # noqa: E731
    try:
        epoch_schedule(g("lr_decay_mode"), 1, 1, g("lr_max"), g("lr_init"), g("lr_end"), g("warmup_epochs"))
    except ConfigError as exc:
        raise ConfigError(f"config keys {prefix}lr_*: {exc}") from None
