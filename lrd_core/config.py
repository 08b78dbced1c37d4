"""The options that make a plan, validated once, stored in the plan JSON."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import ConfigError
from .values import integer, number

RankSpec = Union[int, Tuple[int, int]]

RANK_SELECTIONS = ("pr", "vbmf", "energy", "manual", "error")
ROUNDINGS = ("nearest", "up", "down")
DEVICES = ("CPU", "GPU", "Ascend")
OBJECTIVES = ("both", "infer", "train")
BUDGET_KINDS = ("params", "macs", "latency")


@dataclass
class PlanConfig:
    """Everything :func:`lrd_core.make_plan` needs besides the layers and weights.

    Parameters
    ----------
    mode : str or None
        A compression mode (``vanilla``, ``mode1`` .. ``mode5``, ``all``, ``auto``) or None to use
        only ``include`` / manual ranks.
    include, exclude : list of str
        Regular expressions of layer names added to / removed from the mode's set. A pattern that is a
        layer's exact name selects that layer only; otherwise it is searched anywhere in the name
        (``"layer4"`` selects every layer of stage 4; ``"^fc$"`` a whole name).
    blocks : str or None
        Keep only the mode's layers inside these blocks (transformer blocks, else stages):
        ``"last:6"``, ``"first:4"`` or 1-based indices ``"1-3,7"`` (see :mod:`lrd_core.blocks`).
    rank_selection : {'pr', 'evbmf', 'vbmf', 'energy', 'manual', 'error'}
        ``evbmf`` is stored as its alias ``vbmf``.
    ratio : float
        Per-layer parameter-reduction target for PR (> 1).
    final_dense_ratio : float or None
        Milder target for the final dense layer (> 1); None uses ``ratio``.
    energy : float
        Fraction of squared singular values kept for ``energy`` (0 < energy <= 1).
    vbmf_weakening : float
        ``R = R_full - w * (R_full - R_vbmf)``, 0 <= w <= 1.
    ranks : dict
        ``{name_or_regex: r | (r_out, r_in)}`` for ``manual`` (also honoured as overrides otherwise).
    rank_multiple : int
        Rank quantization step q (1 = off). Ranks are rounded to a multiple of q, clamped to [q, full].
    rank_rounding : {'nearest', 'up', 'down'}
    tucker_iters : int
        HOOI refinement sweeps after the HOSVD start (0 = plain HOSVD).
    skip_unreduced : bool
        Leave a layer undecomposed when its factor chain would not have fewer parameters (default).
        False forces the decomposition (e.g. to check that full rank reproduces the layer).
    device : str
        ``auto`` only: where layers are timed (``CPU``, ``GPU``, ``Ascend``).
    objective : {'both', 'infer', 'train'}
        ``auto`` only: phases that must get faster (inference at batch 1 and ``profile_batch``,
        training step at ``profile_batch``).
    profile_batch : int
        ``auto`` only: batch size of the timed layers.
    budget : float or None
        ``auto`` only: model-level reduction to reach (params or MACs before / after, > 1).
    budget_kind : {'params', 'macs'}
    margin : float
        ``auto`` only: a layer is decomposed only if at least this much faster on average over the
        phases and not slower by more than this in any of them.
    tie_tolerance : float
        ``auto`` only: ranks within this fraction of the original layer's time count as equally fast
        (the larger one is kept).
    search_radius : int
        ``auto`` only: ranks tried on each side of the estimate, in steps of ``rank_multiple``.
    verify : bool
        ``auto`` only: time the whole network and undo decompositions while it is slower.
    verify_rounds : int
    roles : dict
        Per-layer role overrides applied before the mode selects layers:
        ``{layer_name_or_regex: {field: value}}`` with fields ``stage`` (int >= 1 or None),
        ``is_downsample``, ``is_stem``, ``is_final_dense`` (bool), e.g.
        ``{"backbone\\.b4\\..*": {"stage": 4}, "backbone\\.b4\\.0\\.skip": {"is_downsample": True}}``.
    conv_method : {'tucker2', 'cp3', 'cp4', 'basis'}
        Factorization of KxK convs (dense and 1x1 convs use SVD).
    epc, cp_iters, epc_iters, basis_init, basis_alpha, basis_beta, basis_speedup, auto_conv_methods
        CP / CPD-EPC and basis-convolution options, see :mod:`lrd_core.conv_methods`.
    data_aware, calibration_batches, calibration_memory, floor, sequential, pareto_ratios, pareto_max_error
        Accuracy-aware options (calibration, data-aware factorization, ``rank_selection='error'``,
        ``mode='pareto'``), see :mod:`lrd_core.aware_config`.
    """

    mode: Optional[str] = "vanilla"
    include: List[str] = field(default_factory=list)
    exclude: List[str] = field(default_factory=list)
    blocks: Optional[str] = None
    rank_selection: str = "pr"
    ratio: float = 2.0
    final_dense_ratio: Optional[float] = None
    energy: float = 0.95
    vbmf_weakening: float = 0.8
    ranks: Dict[str, RankSpec] = field(default_factory=dict)
    rank_multiple: int = 1
    rank_rounding: str = "nearest"
    tucker_iters: int = 4
    skip_unreduced: bool = True
    device: str = "CPU"
    objective: str = "both"
    profile_batch: int = 8
    budget: Optional[float] = None
    budget_kind: str = "params"
    margin: float = 0.05
    tie_tolerance: float = 0.03
    search_radius: int = 1
    verify: bool = True
    verify_rounds: int = 3
    roles: Dict[str, Dict[str, object]] = field(default_factory=dict)
    conv_method: str = "tucker2"
    epc: bool = False
    cp_iters: int = 100
    epc_iters: int = 50
    basis_init: str = "svd"
    basis_alpha: Optional[float] = None
    basis_beta: Optional[float] = None
    basis_speedup: bool = False
    auto_conv_methods: List[str] = field(default_factory=list)
    data_aware: bool = False
    calibration_batches: Optional[int] = None
    calibration_memory: float = 2048.0
    floor: Optional[float] = None
    sequential: bool = False
    pareto_ratios: List[float] = field(default_factory=list)
    pareto_max_error: float = 0.6

    def __post_init__(self):
        self.validate()

    def validate(self) -> "PlanConfig":
        from .modes import MODES  # late: modes imports nothing from here, but keep the graph flat
        from .roles import validate_overrides  # late: roles imports this module

        _check_types(self)
        if self.mode is not None and self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        from .options import normalize_value
        self.rank_selection = normalize_value("rank_selection", self.rank_selection)   # evbmf -> vbmf
        if self.rank_selection not in RANK_SELECTIONS:
            raise ConfigError(f"unknown rank selection {self.rank_selection!r}; "
                              f"choose one of {', '.join(RANK_SELECTIONS)}")
        for name in ("ratio", "final_dense_ratio"):
            value = getattr(self, name)
            if value is None and name == "final_dense_ratio":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 1:
                raise ConfigError(f"{name} must be a number > 1 (it divides the parameter count), got {value!r}")
        if not 0 < self.energy <= 1:
            raise ConfigError(f"energy must be in (0, 1], got {self.energy!r}")
        if not 0 <= self.vbmf_weakening <= 1:
            raise ConfigError(f"vbmf_weakening must be in [0, 1], got {self.vbmf_weakening!r}")
        self.rank_multiple = integer(self.rank_multiple, "rank_multiple", low=1)
        if self.rank_rounding not in ROUNDINGS:
            raise ConfigError(f"rank_rounding must be one of {ROUNDINGS}, got {self.rank_rounding!r}")
        self.tucker_iters = integer(self.tucker_iters, "tucker_iters", low=0)
        if isinstance(self.include, str) or isinstance(self.exclude, str):
            raise ConfigError("include/exclude take a list of regular expressions, not a single string")
        self.include, self.exclude = list(self.include or []), list(self.exclude or [])
        from .blocks import parse_blocks  # late: blocks imports layers only, keep the graph flat
        choice = parse_blocks(self.blocks)
        self.blocks = None if choice is None else choice.spec
        self.ranks = {str(k): _rank_spec(k, v) for k, v in dict(self.ranks or {}).items()}
        self._validate_auto()
        from .conv_methods import validate as validate_conv_methods
        validate_conv_methods(self)
        from .aware_config import validate as validate_aware
        validate_aware(self)
        self.roles = validate_overrides(self.roles)
        if self.rank_selection == "manual" and not self.ranks:
            raise ConfigError("rank_selection='manual' needs ranks={layer_name_or_regex: rank}")
        return self

    def _validate_auto(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.budget_kind not in BUDGET_KINDS:
            raise ConfigError(f"budget_kind must be one of {BUDGET_KINDS}, got {self.budget_kind!r}")
        if self.budget is not None and (not isinstance(self.budget, (int, float)) or not math.isfinite(self.budget)
                                        or self.budget <= 1):
            raise ConfigError(f"budget must be a number > 1 (original size / compressed size), got {self.budget!r}")
        for name, low, high in (("margin", 0.0, 0.9), ("tie_tolerance", 0.0, 0.5)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")
        for name, low in (("profile_batch", 1), ("search_radius", 0), ("verify_rounds", 1)):
            setattr(self, name, integer(getattr(self, name), name, low=low))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ranks"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.ranks.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PlanConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown plan option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "PlanConfig":
        """Build from the keywords of ``lrd_X.plan(...)``, rejecting unknown ones."""
        return cls.from_dict(kwargs)


def _check_types(cfg: "PlanConfig") -> None:
    """Types that the range checks below take for granted (a string ratio, a list as mode, a non-string
    pattern fail here with the option's name, not as a TypeError deep inside)."""
    for name in ("mode", "rank_selection", "rank_rounding", "device", "objective", "budget_kind"):
        value = getattr(cfg, name)
        if not (isinstance(value, str) or (value is None and name == "mode")):
            raise ConfigError(f"{name} must be a string, got {value!r}")
    for name in ("energy", "vbmf_weakening", "margin", "tie_tolerance"):
        number(getattr(cfg, name), name)
    for name in ("skip_unreduced", "verify"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    for name in ("include", "exclude"):
        value = getattr(cfg, name)
        if isinstance(value, (list, tuple)) and not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{name} takes non-empty regular-expression strings, got {value!r}")
    if cfg.ranks is not None and not isinstance(cfg.ranks, Mapping):
        raise ConfigError(f"ranks takes {{layer_name_or_regex: r or (r_out, r_in)}}, got {cfg.ranks!r}")
    if any(not isinstance(k, str) or not k for k in (cfg.ranks or {})):
        raise ConfigError(f"ranks: keys are layer names or regular expressions, got {list(cfg.ranks)!r}")


def _rank_spec(name, value) -> RankSpec:
    what = f"rank for {name!r}"
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"rank for {name!r} must be an int or (r_out, r_in), got {value!r}")
        out = tuple(integer(v, what) for v in value)
    else:
        out = integer(value, what)
    if any(v < 1 for v in (out if isinstance(out, tuple) else (out,))):
        raise ConfigError(f"rank for {name!r} must be >= 1, got {value!r}")
    return out


def as_pair(spec: RankSpec) -> Tuple[int, int]:
    """A rank spec as (r_out, r_in); an int means the same rank for both."""
    return spec if isinstance(spec, tuple) else (spec, spec)


def names_matching(pattern: str, names: Sequence[str]) -> List[str]:
    """Exact name first; otherwise every name the regular expression is found in (``re.search``:
    ``layer4`` selects every layer of stage 4; anchor with ``^...$`` for a whole-name match)."""
    import re

    if pattern in names:
        return [pattern]
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return [n for n in names if rx.search(n)]
