"""Which factorization a plan uses for KxK convolutions, and the plan options of CP and basis convolutions.

``conv_method`` picks the chain of every KxK conv: ``tucker2`` (default), ``cp3``, ``cp4`` or ``basis``;
dense layers and 1x1 convs stay SVD. Options (fields of :class:`lrd_core.config.PlanConfig`):

``epc``
    Run CPD-EPC after every CPD (lower sensitivity at the same error); other methods ignore it.
``cp_iters``, ``epc_iters``
    Maximum ALS iterations of the CPD and sweeps of EPC.
``basis_init``
    ``svd`` or ``qr`` (column-pivoted QR keeps C' real filters) for the dense-mix variant.
``basis_alpha``, ``basis_beta``
    The alpha/beta variant: C' = alpha Cout basis filters, beta Cout outputs mixed from two of them, the
    rest copies (plan ranks ``(C', n_pair)``); both in (0, 1], given together.
``basis_speedup``
    Require ``alpha + beta < 1`` (the condition for fewer training operations, seed 003).
``auto_conv_methods``
    ``mode="auto"``: further KxK chains timed beside ``conv_method`` (e.g. ``["cp3"]``); the fastest wins.
"""
from __future__ import annotations

import math
from typing import Dict

from .errors import ConfigError

CONV_METHODS = ("tucker2", "cp3", "cp4", "basis")
CP_METHODS = ("cp3", "cp4")
BASIS_INITS = ("svd", "qr")


def validate(cfg) -> None:
    """Check the conv-method fields of a PlanConfig (in place: lists normalised)."""
    if cfg.conv_method not in CONV_METHODS:
        raise ConfigError(f"unknown conv_method {cfg.conv_method!r}; choose one of {', '.join(CONV_METHODS)}")
    if isinstance(cfg.auto_conv_methods, str):
        cfg.auto_conv_methods = [m for m in cfg.auto_conv_methods.split(",") if m]
    cfg.auto_conv_methods = list(cfg.auto_conv_methods or [])
    bad = [m for m in cfg.auto_conv_methods if m not in CONV_METHODS]
    if bad:
        raise ConfigError(f"auto_conv_methods: unknown method(s) {bad}; choose from {', '.join(CONV_METHODS)}")
    if not isinstance(cfg.epc, bool):
        raise ConfigError(f"epc must be true or false, got {cfg.epc!r}")
    for name in ("cp_iters", "epc_iters"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        setattr(cfg, name, int(value))
    if cfg.basis_init not in BASIS_INITS:
        raise ConfigError(f"basis_init must be one of {BASIS_INITS}, got {cfg.basis_init!r}")
    alpha, beta = cfg.basis_alpha, cfg.basis_beta
    if (alpha is None) != (beta is None):
        raise ConfigError("basis_alpha and basis_beta go together (C' = alpha Cout basis filters, beta Cout "
                          "two-term outputs); give both or neither")
    if alpha is not None:
        for key, value in (("basis_alpha", alpha), ("basis_beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 < value <= 1:
                raise ConfigError(f"{key} must be in (0, 1], got {value!r}")
        if cfg.basis_speedup and alpha + beta >= 1:
            raise ConfigError(f"basis_alpha + basis_beta = {alpha + beta:g}: a training speed-up (basis_speedup) "
                              f"needs alpha + beta < 1; lower alpha or beta")
        if cfg.conv_method != "basis":
            raise ConfigError(f"basis_alpha/basis_beta apply to conv_method='basis', not {cfg.conv_method!r}")


def method_for(info, cfg) -> str:
    """The factorization of one layer: SVD for dense and 1x1 convs, ``cfg.conv_method`` for KxK convs."""
    if info.is_pointwise:
        return "svd"
    return getattr(cfg, "conv_method", "tucker2") or "tucker2"


def method_options(cfg) -> Dict[str, object]:
    """Keywords of :func:`lrd_core.factorize.factorize_layer` taken from a plan's config."""
    return {"tucker_iters": cfg.tucker_iters, "epc": cfg.epc, "cp_iters": cfg.cp_iters, "epc_iters": cfg.epc_iters,
            "basis_init": cfg.basis_init}
