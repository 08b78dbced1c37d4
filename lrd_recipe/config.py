"""The training-recipe configuration: one flat key schema (ModelZoo style), YAML files -> argparse flags.

Every key below is a flag (``--lr_max 0.02``, also ``--lr-max``); a YAML file given with
``--config_path`` (or ``--config``) sets defaults, command-line flags override it. A YAML key that
is not in the schema is an error naming the key and the closest known one. Like ModelZoo configs,
a YAML file may hold up to three documents (values, help texts, choices); only the first sets
values, the others are checked for unknown keys.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from lrd_core.config import PlanConfig
from lrd_core.errors import ConfigError
from lrd_core.modes import MODES
from lrd_core.options import DEFAULT_RATIO, DEVICE_RANK_MULTIPLE, normalize_value, recipe_aliases, warn_deprecated
from lrd_core.schedule import SCHEDULES

from .options import (FREEZE_KEYS, PLAN_KEYS, SKIP_KEYS, STAGE_KEYS, check_built, check_schedule, freeze_config,
                      plan_options, skip_options, stage_config)
from .options import OPTIMIZER_KEYS, PRECISION_KEYS, optimizer_options, precision_options

# key: (default, help). Types come from the defaults (None -> str, list -> comma-separated).
SCHEMA: Dict[str, Tuple[object, str]] = {
    # ---------------------------------------------------------------- run
    "framework": ("mindspore", "mindspore (main path) or torch (twin)"),
    "device_target": ("CPU", "CPU, GPU or Ascend"),
    "mode_name": ("GRAPH", "MindSpore execution mode: GRAPH or PYNATIVE"),
    "run_distribute": (False, "data-parallel over the processes started by msrun / torchrun"),
    "seed": (1, "seed of data order, augmentation and initial weights"),
    "output_path": ("./runs/resnet", "run directory: checkpoints, plans, summary.json, curves.png"),
    # ---------------------------------------------------------------- data
    "dataset": ("digits", "digits (embedded), cifar10 (binary format) or imagenet2012 (class folders)"),
    "data_path": ("", "training data: cifar-10-batches-bin directory, or ImageNet train/ folder"),
    "eval_data_path": ("", "evaluation data (ImageNet val/ folder; CIFAR-10 reads test_batch.bin from data_path)"),
    "data_backend": ("auto", "native (MindSpore ImageFolderDataset/Cifar10Dataset) or numpy (shared loader); "
                             "auto = native on Ascend/GPU, numpy on CPU"),
    "image_size": (32, "input height = width"),
    "augment": ("auto", "none or crop_flip (auto: crop_flip for cifar10; ImageNet always random-resized-crops)"),
    "train_limit": (0, "use only the first N training samples (0 = all; for smoke runs)"),
    "eval_limit": (0, "use only the first N evaluation samples (0 = all)"),
    "eval_batch_size": (256, "evaluation batch size"),
    # ---------------------------------------------------------------- model
    "net_name": ("resnet18", "resnet18, resnet34, resnet50, resnet101, resnet152, vit_tiny, vit_small or vit_b_16"),
    "stem": ("cifar", "imagenet (7x7 + max-pool) or cifar (3x3)"),
    "width": (64, "base channel width (64 = standard)"),
    "class_num": (10, "classifier outputs"),
    # ---------------------------------------------------------------- training of the original (Table 2)
    "batch_size": (64, "per-device batch size (global batch = batch_size x devices)"),
    "epoch_size": (2, "epochs of the original training (N1)"),
    "momentum": (0.9, "SGD momentum"),
    "weight_decay": (1e-4, "weight decay of conv/dense weights (not norms, biases, tokens, position embeddings)"),
    # ---------------------------------------------------------------- Vision Transformers (the ViT recipe)
    "optimizer": ("momentum", "momentum (SGD, the ResNet recipe) or adamw (the ViT recipe, torch AdamW semantics)"),
    "beta1": (0.9, "adamw: first-moment decay"),
    "beta2": (0.999, "adamw: second-moment decay"),
    "eps": (1e-8, "adamw: denominator term"),
    "patch_size": (16, "ViT patch side (image_size must be a multiple of it)"),
    "depth": (0, "ViT transformer blocks (0 = the model's standard 12)"),
    "drop_rate": (0.0, "ViT dropout after the position embedding, attention projection and MLP"),
    "compression_blocks": ("", "decompose only in these blocks (transformer blocks, else stages): last:6, first:4, "
                               "1-3,7 (empty = all)"),
    "label_smooth_factor": (0.0, "label smoothing"),
    "lr_decay_mode": ("linear", "linear, cosine, steps, poly or constant"),
    "lr_init": (0.0, "learning rate at step 0 (start of the warm-up)"),
    "lr_max": (0.05, "peak learning rate"),
    "lr_end": (0.0, "final learning rate"),
    "warmup_epochs": (0.0, "linear warm-up epochs (fractions allowed)"),
    "pre_trained": ("", "start from these weights: .ckpt/.pt/.npz or a compressed-model directory"),
    "resume": (True, "continue from the newest checkpoint in the run directory"),
    "save_checkpoint_steps": (0, "also checkpoint every N steps inside an epoch (0 = epoch ends only)"),
    "save_checkpoint_epochs": (1, "checkpoint every N epochs"),
    "keep_checkpoint_max": (2, "checkpoints kept per run"),
    "eval_every_epoch": (True, "evaluate after every epoch"),
    "log_every": (0, "steps between log lines when no progress bar is drawn (0 = epoch lines only)"),
    "progress": ("auto", "progress bar: auto (on a terminal), true or false"),
    # ---------------------------------------------------------------- Ascend training conventions (ModelZoo ResNet)
    "amp_level": ("O0", "mixed precision: O0 (float32), O1, O2 (float16 net, float32 BatchNorm; ModelZoo on Ascend) "
                        "or O3; torch: autocast (bfloat16 on CPU)"),
    "loss_scale_type": ("none", "loss scaling: none, fixed (FixedLossScaleManager, drop_overflow_update false) or "
                                "dynamic (overflowing steps skipped)"),
    "loss_scale": (1024.0, "(initial) loss scale"),
    "scale_factor": (2, "dynamic loss scale: divided by this on overflow, multiplied after scale_window steps"),
    "scale_window": (1000, "dynamic loss scale: finite steps before the scale grows"),
    "dataset_sink_mode": (False, "MindSpore on Ascend / GPU in GRAPH mode: run sink_size steps per device call "
                                 "(one Model.train per freezing phase); CPU, PyNative and torch train step by step "
                                 "with one log line"),
    "sink_size": (-1, "steps per sink (-1 = the whole epoch); must divide the epoch, and freeze_every (unit step), "
                      "save_every_steps and log_every must be multiples of it"),
    # ---------------------------------------------------------------- decomposition (Table 4)
    "compression_mode": ("mode3", "vanilla, mode1..mode5 or all (YAML key and flag: mode)"),
    "rank_selection": ("pr", "pr, evbmf (alias vbmf), energy or error (ranks allocated by output error under "
                             "compression_budget)"),
    "compression_ratio": (DEFAULT_RATIO, "per-layer parameter-reduction target for pr (> 1) (YAML key and flag: "
                                         "ratio)"),
    "final_dense_ratio": (1.3, "milder target for the final dense layer (0 = same as compression_ratio)"),
    "rank_quantization": (DEVICE_RANK_MULTIPLE, "round ranks to a multiple of this (1 = off) (YAML key and flag: "
                                                "rank_multiple)"),
    "vbmf_weakening": (0.8, "EVBMF weakening factor"),
    "energy": (0.95, "energy kept for rank_selection=energy"),
    "include": ([], "regular expressions of extra layers to decompose (searched anywhere in the name)"),
    "exclude": ([], "regular expressions of layers never decomposed (searched anywhere in the name)"),
    "conv_method": ("tucker2", "factorization of KxK convs: tucker2, cp3, cp4 or basis (dense and 1x1: SVD)"),
    "epc": (False, "CP: CPD-EPC (least sensitive CPD at the same error)"),
    "cp_iters": (100, "CP: maximum ALS iterations"),
    "epc_iters": (50, "CP: maximum EPC sweeps"),
    "basis_init": ("svd", "basis convolutions: svd or qr (column-pivoted QR keeps real filters)"),
    "basis_alpha": (0.0, "basis: C' = alpha*Cout basis filters of the alpha/beta variant (0 = off: C' from the ratio)"),
    "basis_beta": (0.0, "basis: beta*Cout outputs are sums of two basis outputs, the rest copies"),
    "basis_speedup": (False, "basis: require alpha + beta < 1 (fewer training operations)"),
    # ---------------------------------------------------------------- skip training (seed 003)
    "basis_layers": ([], "skip training: layers (names, regular expressions, or a plan JSON file: its decomposed "
                         "KxK convs, e.g. from the accuracy-aware search) trained as basis convolutions"),
    "basis_skip_epochs": (0, "skip training: epochs with basis convolutions before folding back (0 = off)"),
    "bn_recalibration_batches": (0, "re-estimate BatchNorm statistics on N training batches after decomposition"),
    # ---------------------------------------------------------------- accuracy-aware compression
    "data_aware": (False, "factorize SVD/Tucker-2 data-aware: minimise each layer's output error on calibration "
                          "batches of the training data"),
    "calibration_batches": (16, "training batches (of batch_size) that calibrate data_aware, rank_selection error "
                                "and compression_mode pareto"),
    "calibration_sequential": (False, "data_aware: each layer's statistics taken with the earlier layers compressed"),
    "compression_budget": (0.0, "rank_selection error / compression_mode pareto: model-level reduction "
                                "(original / compressed; 0 = compression_ratio)"),
    "budget_kind": ("params", "what compression_budget counts: params, macs or latency (timed layers)"),
    "compare_data_aware": (False, "also decompose the original weights data-aware at the same ranks and report "
                                  "accuracy_decomposed_data_aware (BatchNorm re-calibrated, no fine-tuning)"),
    # ---------------------------------------------------------------- fine-tuning
    "finetune_epoch_size": (1, "fine-tuning epochs after decomposition (N2)"),
    "finetune_lr_decay_mode": ("linear", "schedule of the fine-tune"),
    "finetune_lr_init": (0.0, "fine-tune learning rate at step 0"),
    "finetune_lr_max": (0.01, "fine-tune peak learning rate (lower than lr_max)"),
    "finetune_lr_end": (0.0, "fine-tune final learning rate"),
    "finetune_warmup_epochs": (0.0, "fine-tune warm-up epochs"),
    "freeze": ("none", "none, sequential (one factor position per layer trains, cycling) or regular"),
    "freeze_every": (1, "length of a sequential-freezing phase in freeze_unit"),
    "freeze_unit": ("epoch", "epoch or step"),
    "freeze_order": (["first", "core", "last"], "cycle order of the factor positions"),
    "freeze_regular": (["first"], "positions frozen throughout by regular freezing"),
    # ---------------------------------------------------------------- multi-stage compression
    "stages": (1, "compression stages (1 = one-shot); each later stage re-compresses the factors"),
    "stage_rank_selection": ("vbmf", "vbmf (weakened EVBMF of the factor cores) or pr (stepped target)"),
    "stage_vbmf_weakening": (0.8, "weakening factor of later stages"),
    "stage_ratios": ([], "pr: per-layer targets of stage 2, 3, ..."),
    "stage_ratio_step": (1.5, "pr without stage_ratios: target multiplied by this per stage"),
    "target_ratio": (0.0, "stop once conv/dense parameters shrink by this factor (0 = off)"),
    "stage_epoch_size": (0, "fine-tune epochs after each later stage (0 = finetune_epoch_size)"),
    # ---------------------------------------------------------------- evaluation / export
    "checkpoint_path": ("", "eval/export: a checkpoint file or a compressed-model directory"),
    "file_format": ("MINDIR", "MINDIR (MindSpore) or ONNX"),
    "file_name": ("resnet_lrd", "exported file name (extension added)"),
    "export_batch_size": (1, "batch size of the exported graph"),
}


def _bool(text) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int(text) -> int:
    """An integer; an integral float (``3.0``) is accepted, ``2.7`` or ``true`` is not (never truncated)."""
    if isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if isinstance(text, int):
        return text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _float(text) -> float:
    if isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _str(text) -> str:
    if isinstance(text, (list, tuple, dict)):
        raise argparse.ArgumentTypeError(f"expected a single value, got {text!r}")
    return str(text)


def _list(text) -> List[str]:
    if isinstance(text, (list, tuple)):
        return [str(v) for v in text]
    return [v.strip() for v in str(text).split(",") if v.strip()]


def _type(default):
    if isinstance(default, bool):
        return _bool
    if isinstance(default, list):
        return _list
    if isinstance(default, int):
        return _int
    if isinstance(default, float):
        return _float
    return _str


def coerce(key: str, value, source: str = "config"):
    """``value`` as the type of schema key ``key``; ConfigError naming the key when it cannot be.

    An empty value (YAML ``key:`` or None) is allowed only for keys whose default is empty
    (paths, lists) and then means that empty default.
    """
    default = SCHEMA[key][0]
    if value is None:
        if default == "" or isinstance(default, list):
            return type(default)()
        raise ConfigError(f"{source}: key {key!r} has no value; give one (default: {default!r}) or remove the key")
    try:
        return _type(default)(value)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"{source}: key {key!r} = {value!r}: {exc}") from None


def unknown_key_error(key: str, source: str) -> ConfigError:
    near = difflib.get_close_matches(key, list(SCHEMA), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"{source}: unknown config key {key!r}{hint}; the known keys are listed by --help")


def unknown_option_message(extras: Sequence[str], options: Sequence[str]) -> str:
    """One line for command-line words no option took: the first unknown ``--flag`` and the
    closest known option (``difflib``; dashes and underscores count as equal)."""
    flags = [a for a in extras if a.startswith("-")]
    if not flags:
        return f"unrecognized arguments: {' '.join(extras)}"
    flag = flags[0].split("=", 1)[0]
    longs = [o for o in options if o.startswith("--")]
    norm = {o.lstrip("-").replace("-", "_"): o for o in reversed(longs)}    # the --key_with_underscores form
    near = difflib.get_close_matches(flag.lstrip("-").replace("-", "_"), list(norm), n=1)
    if near and "-" in flag.lstrip("-") and "--" + near[0].replace("_", "-") in longs:
        hint = f" (did you mean --{near[0].replace('_', '-')}?)"             # answer in the spelling used
    else:
        hint = f" (did you mean {norm[near[0]]}?)" if near else ""
    return f"unknown option {flag}{hint}"


class _Parser(argparse.ArgumentParser):
    """Raises ConfigError (one line) instead of printing the usage and exiting."""

    def error(self, message: str):
        raise ConfigError(message)


def read_yaml(path: str) -> dict:
    """Values of a recipe YAML file, checked against the schema and coerced to the schema's types."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    with open(path) as fh:
        try:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        except (yaml.YAMLError, ValueError) as exc:           # ValueError: not text (UnicodeDecodeError)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{path} is not valid YAML: {first}") from None
    if not docs:
        return {}
    docs = [renamed_keys(doc, path) if isinstance(doc, dict) else doc for doc in docs]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: a recipe document must be a mapping of key: value")
        for key in doc:
            if key not in SCHEMA:
                raise unknown_key_error(key, path)
    return {key: coerce(key, value, path) for key, value in docs[0].items()}


#: recipe keys spelled like the API keywords and the `lrd plan` flags -> the key the run reads
PUBLIC_KEYS: Dict[str, str] = {new: old for old, new in recipe_aliases().items()}


def renamed_keys(doc: dict, source: str) -> dict:
    """``doc`` with the plan keys in their shared spelling (``ratio``, ``rank_multiple``, ``mode``) read as the
    run's keys; an older spelling (``compression_ratio``, ``rank_quantization``) logs one deprecation line."""
    out = {}
    for key, value in doc.items():
        inner = PUBLIC_KEYS.get(key, key)
        if inner in out:
            public = recipe_aliases().get(inner, inner)
            raise ConfigError(f"{source}: {public!r} and its old spelling {inner!r} are both given; keep {public!r}")
        if key in recipe_aliases():
            warn_deprecated(f"{source}: config key {key!r}", repr(recipe_aliases()[key]))
        out[inner] = value
    return out


def add_arguments(p: argparse.ArgumentParser, defaults: Optional[dict] = None, suppress: bool = False) -> None:
    """Register every schema key as ``--key`` / ``--key-with-dashes``.

    With ``suppress`` a flag not given on the command line leaves no attribute (so that a YAML
    file read later can fill it in; see :func:`resolve`).
    """
    from lrd_core.options import add_deprecated_flag

    defaults = dict(defaults or {})
    public = {old: new for new, old in PUBLIC_KEYS.items()}
    for key, (default, text) in SCHEMA.items():
        value = defaults.get(key, default)
        name = public.get(key, key)
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        kw = {"dest": key, "default": argparse.SUPPRESS if suppress else value, "type": _type(default),
              "help": f"{text} (default: {value!r})"}
        if key == "freeze":
            kw["choices"] = ("none", "sequential", "regular")
        if key == "framework":
            kw["choices"] = ("mindspore", "torch")
        if name != key:
            kw["metavar"] = name.upper()
        action = p.add_argument(*flags, **kw)
        if name != key:
            for old in {f"--{key}", f"--{key.replace('_', '-')}"}:
                add_deprecated_flag(p, old, action)


def parse(argv: Optional[Sequence[str]] = None, description: str = "", defaults: Optional[dict] = None,
          prog: Optional[str] = None) -> argparse.Namespace:
    """ModelZoo-style parsing: ``--config_path FILE`` (YAML) then flags.

    Unknown keys and flags, abbreviated flags (``--lr_ma``) and bad values raise ConfigError.
    """
    pre = _Parser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config_path", "--config", dest="config_path", default=None)
    known, _ = pre.parse_known_args(argv)
    values = dict(defaults or {})
    if known.config_path:
        values.update(read_yaml(known.config_path))
    p = _Parser(prog=prog, description=description, allow_abbrev=False)
    p.add_argument("--config_path", "--config", dest="config_path", default=known.config_path,
                   help="recipe YAML file (keys as below)")
    add_arguments(p, values)
    args, extras = p.parse_known_args(argv)
    if extras:
        raise ConfigError(unknown_option_message(extras, list(p._option_string_actions)))
    return validate(args)


def resolve(args: argparse.Namespace, defaults: Optional[dict] = None) -> argparse.Namespace:
    """Schema defaults < ``defaults`` < the YAML file in ``args.config_path`` < flags given in ``args``."""
    values = dict(defaults or {})
    path = getattr(args, "config_path", None)
    if path:
        values.update(read_yaml(path))
    values.update({k: getattr(args, k) for k in SCHEMA if hasattr(args, k)})
    cfg = namespace(**values)
    cfg.config_path = path
    return cfg


def namespace(**overrides) -> argparse.Namespace:
    """A config with every schema default, updated by ``overrides`` (unknown keys rejected)."""
    overrides = {PUBLIC_KEYS.get(k, k): v for k, v in overrides.items()}
    for key in overrides:
        if key not in SCHEMA:
            raise unknown_key_error(key, "config")
    values = {k: (list(v) if isinstance(v, list) else v) for k, (v, _) in SCHEMA.items()}
    values.update(overrides)
    return validate(argparse.Namespace(config_path=None, **values))


CHOICES = {
    "framework": ("mindspore", "torch"), "device_target": ("CPU", "GPU", "Ascend"),
    "mode_name": ("GRAPH", "PYNATIVE"), "dataset": ("digits", "cifar10", "imagenet2012"),
    "data_backend": ("auto", "native", "numpy"), "augment": ("auto", "none", "crop_flip"),
    "stem": ("imagenet", "cifar"), "freeze": ("none", "sequential", "regular"), "freeze_unit": ("epoch", "step"),
    "stage_rank_selection": ("vbmf", "pr"), "file_format": ("MINDIR", "ONNX"), "progress": ("auto", "true", "false"),
    "compression_mode": tuple(MODES), "rank_selection": ("pr", "vbmf", "energy", "error"),   # evbmf: normalized
    "budget_kind": ("params", "macs", "latency"),
    "amp_level": ("O0", "O1", "O2", "O3"), "loss_scale_type": ("none", "fixed", "dynamic"),
    "optimizer": ("momentum", "sgd", "adamw"),
    "conv_method": ("tucker2", "cp3", "cp4", "basis"), "basis_init": ("svd", "qr"),
    "lr_decay_mode": tuple(SCHEDULES), "finetune_lr_decay_mode": tuple(SCHEDULES),
}

def validate(cfg: argparse.Namespace) -> argparse.Namespace:
    """Coerce every key to its schema type and check everything the run will build from the config
    (choices, ranges, both LR schedules, the plan, freezing and multi-stage options), so that a bad
    value fails at parse time with one message naming the key, not after hours of training."""
    for key in SCHEMA:
        setattr(cfg, key, coerce(key, getattr(cfg, key)))
    for key in ("rank_selection", "stage_rank_selection"):
        setattr(cfg, key, normalize_value("rank_selection", getattr(cfg, key)))    # evbmf -> vbmf
    for key, allowed in CHOICES.items():
        value = getattr(cfg, key)
        if value not in allowed:
            raise ConfigError(f"config key {key!r} = {value!r}; choose one of {', '.join(allowed)}")
    for key in ("batch_size", "image_size", "class_num", "width", "stages", "freeze_every", "keep_checkpoint_max",
                "export_batch_size", "eval_batch_size", "calibration_batches"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {getattr(cfg, key)}")
    for key in ("epoch_size", "finetune_epoch_size", "stage_epoch_size", "bn_recalibration_batches",
                "save_checkpoint_steps", "save_checkpoint_epochs", "train_limit", "eval_limit", "log_every"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {getattr(cfg, key)}")
    for key, low, high in (("momentum", 0.0, 1.0), ("label_smooth_factor", 0.0, 1.0), ("weight_decay", 0.0, math.inf)):
        value = getattr(cfg, key)
        if not (low <= value < high):
            raise ConfigError(f"config key {key!r} must be in [{low}, {high}), got {value!r}")
    check_schedule(cfg, "")
    check_schedule(cfg, "finetune_")
    defaults = {k: v for k, (v, _) in SCHEMA.items()}
    check_built(cfg, PLAN_KEYS, lambda c: PlanConfig(**plan_options(c)), defaults)
    for pattern in list(cfg.include) + list(cfg.exclude):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"config key include/exclude: {pattern!r} is not a regular expression ({exc})") from None
    check_built(cfg, STAGE_KEYS, stage_config, defaults)
    check_built(cfg, FREEZE_KEYS, freeze_config, defaults)
    check_built(cfg, OPTIMIZER_KEYS, optimizer_options, defaults)
    check_built(cfg, PRECISION_KEYS, precision_options, defaults)
    if cfg.depth < 0 or not 0.0 <= cfg.drop_rate < 1.0 or cfg.patch_size < 1:
        raise ConfigError(f"config keys depth (>= 0), drop_rate (in [0, 1)) and patch_size (>= 1): got "
                          f"{cfg.depth}, {cfg.drop_rate}, {cfg.patch_size}")
    if cfg.basis_skip_epochs:
        try:
            skip_options(cfg)
        except (ConfigError, ValueError, TypeError) as exc:
            raise ConfigError(f"config keys {', '.join(SKIP_KEYS)}: {exc}") from None
    return cfg
