"""Vision Transformer configurations, parameter shapes and a framework-neutral initialiser.

Shared by :mod:`lrd_torch.models.vit` and :mod:`lrd_mindspore.models.vit` so that both frameworks
validate the same options, hold the same tensors under the same torch-style names, and get
identical initial weights from a seed. NumPy only.

Parameter names (``state_dict`` order)::

    cls_token (1, 1, D)            pos_embed (1, 1 + N, D)
    patch_embed.proj.{weight,bias} (conv, kernel = stride = patch)
    blocks.<i>.norm1.{weight,bias}
    blocks.<i>.attn.{q,k,v,proj}.{weight,bias}    (separate query/key/value dense layers)
    blocks.<i>.norm2.{weight,bias}
    blocks.<i>.mlp.{fc1,fc2}.{weight,bias}
    norm.{weight,bias}             head.{weight,bias}
"""
from __future__ import annotations

import numbers
import secrets
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from .errors import ConfigError

#: Standard configurations: embedding width, blocks, heads, MLP hidden width.
VIT_CONFIGS: Dict[str, Dict[str, int]] = {
    "vit_tiny": {"dim": 192, "depth": 12, "num_heads": 3, "mlp_dim": 768},
    "vit_small": {"dim": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536},
    "vit_b_16": {"dim": 768, "depth": 12, "num_heads": 12, "mlp_dim": 3072},
}

LAYER_NORM_EPS = 1e-6
TOKEN_STD = 0.02
DENSE_STD = 0.02


@dataclass(frozen=True)
class ViTConfig:
    """Validated options of one Vision Transformer.

    Attributes
    ----------
    name : str
        Builder name (for messages).
    dim, depth, num_heads, mlp_dim : int
        Embedding width, number of blocks, attention heads, MLP hidden width.
    image_size, patch_size : int
        Square input side and patch side (``image_size % patch_size == 0``).
    num_classes : int
        Outputs of ``head``.
    drop_rate : float
        Dropout probability after the position embedding, the attention projection and both MLP
        layers (training only).
    """

    name: str
    dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    image_size: int
    patch_size: int
    num_classes: int
    drop_rate: float

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def num_tokens(self) -> int:
        """Sequence length: the class token plus one token per patch."""
        return self.num_patches + 1

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


def _positive_int(name: str, key: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}: {key} must be a positive integer, got {value!r}")
    return int(value)


def vit_config(name: str, *, num_classes: int = 1000, image_size: int = 224, patch_size: int = 16,
               drop_rate: float = 0.0, depth: Optional[int] = None, dim: Optional[int] = None,
               num_heads: Optional[int] = None, mlp_dim: Optional[int] = None) -> ViTConfig:
    """Check the options of a named configuration and return them as a :class:`ViTConfig`.

    Parameters
    ----------
    name : str
        One of :data:`VIT_CONFIGS`.
    num_classes, image_size, patch_size : int
    drop_rate : float
        In ``[0, 1)``.
    depth, dim, num_heads, mlp_dim : int or None
        Override the named configuration's value (None keeps it).

    Returns
    -------
    ViTConfig

    Raises
    ------
    lrd_core.errors.ConfigError
        Unknown name, non-positive sizes, ``image_size`` not a multiple of ``patch_size``, ``dim``
        not a multiple of ``num_heads``, or ``drop_rate`` outside ``[0, 1)``.
    """
    if name not in VIT_CONFIGS:
        raise ConfigError(f"unknown Vision Transformer {name!r}; known: {', '.join(VIT_CONFIGS)}")
    base = dict(VIT_CONFIGS[name])
    for key, value in (("depth", depth), ("dim", dim), ("num_heads", num_heads), ("mlp_dim", mlp_dim)):
        if value is not None:
            base[key] = value
    sizes = {key: _positive_int(name, key, value) for key, value in
             (("num_classes", num_classes), ("image_size", image_size), ("patch_size", patch_size), *base.items())}
    if sizes["image_size"] % sizes["patch_size"]:
        img, patch = sizes["image_size"], sizes["patch_size"]
        lower = img - img % patch
        hint = f"{lower} or {lower + patch}" if lower else f"{patch}"
        raise ConfigError(f"{name}: image_size {img} is not divisible by patch_size {patch}; use an image_size "
                          f"that is a multiple of {patch} (e.g. {hint}) or a patch_size that divides {img}")
    if sizes["dim"] % sizes["num_heads"]:
        raise ConfigError(f"{name}: dim {sizes['dim']} is not divisible by num_heads {sizes['num_heads']}; "
                          f"choose num_heads that divides dim")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, numbers.Real) or not 0.0 <= drop_rate < 1.0:
        raise ConfigError(f"{name}: drop_rate must be a number in [0, 1), got {drop_rate!r}")
    return ViTConfig(name=name, drop_rate=float(drop_rate), **sizes)


def check_input_shape(cfg: ViTConfig, shape) -> None:
    """Raise unless ``shape`` is ``(N, 3, image_size, image_size)`` (unknown sizes pass).

    Parameters
    ----------
    cfg : ViTConfig
    shape : sequence
        Input shape; entries that are not non-negative integers (symbolic sizes) are not checked.

    Raises
    ------
    lrd_core.errors.ConfigError
        Wrong rank, channel count or spatial size, with the size the model expects.
    """
    shape = tuple(shape)
    side = cfg.image_size
    known = [isinstance(s, numbers.Integral) and s >= 0 for s in shape]
    want = (3, side, side)
    if len(shape) == 4 and all(w == s for w, s, k in zip(want, shape[1:], known[1:]) if k):
        return
    fix = f"resize the images to {side}x{side}"
    if len(shape) == 4 and known[2] and shape[2] == shape[3] and shape[2] % cfg.patch_size == 0 and shape[2]:
        fix += f" or build the model with image_size={shape[2]}"
    raise ConfigError(f"{cfg.name}: expected an input of shape (N, 3, {side}, {side}), got {shape}; {fix}")


def vit_param_shapes(cfg: ViTConfig) -> Dict[str, Tuple[int, ...]]:
    """Torch-style name -> shape of every tensor of the model, in ``state_dict`` order.

    Parameters
    ----------
    cfg : ViTConfig

    Returns
    -------
    dict
    """
    d, p = cfg.dim, cfg.patch_size
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, cfg.num_tokens, d),
              "patch_embed.proj.weight": (d, 3, p, p), "patch_embed.proj.bias": (d,)}
    dense = {"attn.q": (d, d), "attn.k": (d, d), "attn.v": (d, d), "attn.proj": (d, d)}
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,)})
        for layer, (out, inp) in dense.items():
            shapes.update({f"{b}{layer}.weight": (out, inp), f"{b}{layer}.bias": (out,)})
        shapes.update({b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                       b + "mlp.fc1.weight": (cfg.mlp_dim, d), b + "mlp.fc1.bias": (cfg.mlp_dim,),
                       b + "mlp.fc2.weight": (d, cfg.mlp_dim), b + "mlp.fc2.bias": (d,)})
    shapes.update({"norm.weight": (d,), "norm.bias": (d,),
                   "head.weight": (cfg.num_classes, d), "head.bias": (cfg.num_classes,)})
    return shapes


def vit_param_count(cfg: ViTConfig) -> int:
    """Number of parameters (every tensor is trainable), from the shapes alone."""
    return int(sum(np.prod(s) for s in vit_param_shapes(cfg).values()))


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def trunc_normal(rng: np.random.Generator, shape, std: float, bound: float = 2.0) -> np.ndarray:
    """Float32 Normal(0, std) samples, redrawn until all lie within ``+-bound * std``.

    Equivalent in distribution to ``scipy.stats.truncnorm(-bound, bound, scale=std)`` (which draws
    by inverting the CDF and is ~30x slower, i.e. tens of seconds for ViT-B/16).
    """
    x = rng.standard_normal(shape, dtype=np.float32)
    flat = x.reshape(-1)
    redraw = np.flatnonzero(np.abs(flat) > bound)
    while redraw.size:
        flat[redraw] = rng.standard_normal(redraw.size, dtype=np.float32)
        redraw = redraw[np.abs(flat[redraw]) > bound]
    x *= np.float32(std)
    return x


# One rule per kind of tensor: (matches(leaf, shape, shapes_of_the_prefix), fill(rng, shape, prefix_shapes)).
_Rule = Tuple[Callable[[str, tuple, dict], bool], Callable[[np.random.Generator, tuple, dict], np.ndarray]]


def _fan_in_bound(siblings: dict) -> float:
    return 1.0 / np.sqrt(int(np.prod(siblings["weight"][1:])))


_RULES: Dict[str, _Rule] = {
    # class token and position embedding: truncated normal, std 0.02
    "token": (lambda leaf, shape, sib: leaf in ("cls_token", "pos_embed"),
              lambda rng, shape, sib: trunc_normal(rng, shape, TOKEN_STD)),
    # LayerNorm: weight 1, bias 0
    "norm_weight": (lambda leaf, shape, sib: leaf == "weight" and len(shape) == 1,
                    lambda rng, shape, sib: np.ones(shape)),
    "norm_bias": (lambda leaf, shape, sib: leaf == "bias" and len(sib.get("weight", ())) == 1,
                  lambda rng, shape, sib: np.zeros(shape)),
    # dense: truncated normal std 0.02, bias 0
    "dense_weight": (lambda leaf, shape, sib: leaf == "weight" and len(shape) == 2,
                     lambda rng, shape, sib: trunc_normal(rng, shape, DENSE_STD)),
    "dense_bias": (lambda leaf, shape, sib: leaf == "bias" and len(sib.get("weight", ())) == 2,
                   lambda rng, shape, sib: np.zeros(shape)),
    # patch-embedding conv: uniform +-1/sqrt(fan_in) for weight and bias
    "conv": (lambda leaf, shape, sib: leaf in ("weight", "bias") and len(sib.get("weight", ())) == 4,
             lambda rng, shape, sib: rng.uniform(-_fan_in_bound(sib), _fan_in_bound(sib), shape)),
}


def init_vit_arrays(shapes: Mapping[str, tuple], seed: Optional[int] = None,
                    dtype=np.float32) -> Dict[str, np.ndarray]:
    """Initial weights of a Vision Transformer from torch-style names and shapes.

    Class token and position embedding: truncated normal (+-2 std), std 0.02. Dense layers:
    truncated normal, std 0.02, bias 0 (the DeiT/timm recipe for training from scratch).
    LayerNorm: weight 1, bias 0. Patch-embedding conv: uniform in +-1/sqrt(fan_in) (weight and
    bias). Each tensor comes from its own generator seeded by ``(seed, crc32(name))``, so the
    result does not depend on key order and is identical in every framework.

    Parameters
    ----------
    shapes : mapping of str to tuple
        Torch-style name -> shape of every tensor of one model.
    seed : int or None
        None draws a fresh seed.
    dtype : numpy dtype

    Returns
    -------
    dict
        ``{name: array}`` for every key, in the order of ``shapes``.

    Raises
    ------
    ValueError
        For a tensor no rule knows how to fill.
    """
    seed = secrets.randbits(63) if seed is None else int(seed)
    shapes = {k: tuple(v) for k, v in shapes.items()}
    by_prefix: Dict[str, dict] = {}
    for name, shape in shapes.items():
        prefix, _, leaf = name.rpartition(".")
        by_prefix.setdefault(prefix, {})[leaf] = shape
    out = {}
    for name, shape in shapes.items():
        prefix, _, leaf = name.rpartition(".")
        siblings = by_prefix[prefix]
        for matches, fill in _RULES.values():
            if matches(leaf, shape, siblings):
                out[name] = np.asarray(fill(_rng(seed, name), shape, siblings), dtype=dtype)
                break
        else:
            raise ValueError(f"init_vit_arrays: do not know how to initialise {name!r} {shape}")
    return out
