"""Vision Transformer (ViT-Ti/16, ViT-S/16, ViT-B/16) for MindSpore.

Same structure, names, parameter order and arithmetic as :mod:`lrd_torch.models.vit`: patch
embedding conv (kernel = stride = patch), class token, learned position embedding, pre-norm blocks
with separate ``attn.q``/``attn.k``/``attn.v`` dense layers, exact (erf) GELU MLP, final LayerNorm
and a dense head on the class token. Every projection is a plain ``nn.Dense`` applied to
(batch, tokens, features) tensors, which ``nn.Dense`` accepts in PYNATIVE and GRAPH mode, so the
planner can swap it for a ``SequentialCell`` of two ``nn.Dense``. :class:`LayerNorm` keeps its
parameters as ``weight``/``bias`` (no renaming between frameworks). Works in PYNATIVE and GRAPH mode
and exports to MindIR (dynamic batch included). MindSpore 2.10 cannot export ``Erf`` to ONNX and writes
its fused LayerNorm as an invalid ONNX graph, so :class:`GELU` and :class:`LayerNorm` offer
``onnx_portable()`` forms built from basic operators, to be swapped in for an ONNX export.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from lrd_core.init_vit import (LAYER_NORM_EPS, VIT_CONFIGS, ViTConfig, check_input_shape, init_vit_arrays,
                               vit_config)


def _zeros(*shape) -> Tensor:
    return Tensor(np.zeros(shape, np.float32))


def _dense(cin: int, cout: int) -> nn.Dense:
    return nn.Dense(cin, cout, weight_init="zeros", bias_init="zeros", has_bias=True)


def _dropout(p: float) -> nn.Cell:
    return nn.Dropout(p=p) if p > 0 else nn.Identity()


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis with torch's semantics (biased variance, eps inside the sqrt).

    Parameters are named ``weight`` and ``bias`` like torch's ``nn.LayerNorm``.
    """

    def __init__(self, dim: int, eps: float = LAYER_NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(Tensor(np.ones(dim, np.float32)), name="weight")
        self.bias = Parameter(_zeros(dim), name="bias")
        self.norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        return self.norm(x, self.weight, self.bias)[0]

    def onnx_portable(self) -> nn.Cell:
        """The same normalisation from elementwise operators (MindSpore 2.10 writes the fused
        ``LayerNorm`` primitive as an invalid ONNX graph); shares this cell's parameters."""
        return PortableLayerNorm(self)


class PortableLayerNorm(nn.Cell):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` from mean/sub/mul/sqrt/div (exportable)."""

    def __init__(self, norm: LayerNorm):
        super().__init__()
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def construct(self, x):
        centred = x - x.mean(-1, keep_dims=True)
        var = (centred * centred).mean(-1, keep_dims=True)
        return centred / ops.sqrt(var + self.eps) * self.weight + self.bias


class GELU(nn.GELU):
    """Exact GELU, ``x * Phi(x)`` with the erf form (torch's ``nn.GELU()`` default)."""

    def __init__(self):
        super().__init__(approximate=False)

    def onnx_portable(self) -> nn.Cell:
        """A form without ``Erf`` (which MindSpore 2.10 cannot export to ONNX), see :class:`PortableGELU`."""
        return PortableGELU()


# Abramowitz & Stegun 7.1.26: erfc(z) ~= t * (a1 + t * (a2 + ...)) * exp(-z**2), t = 1 / (1 + p z), z >= 0,
# absolute error <= 1.5e-7.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


class PortableGELU(nn.Cell):
    """GELU from relu/abs/exp/div: ``relu(x) - |x| * erfc(|x| / sqrt 2) / 2``.

    Uses the erfc approximation of Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7); evaluated
    in float32 it stays within 1e-6 * (1 + |x|) of the exact GELU. For ONNX export only.
    """

    def construct(self, x):
        a = ops.abs(x)
        t = ops.div(ops.ones_like(a), 1.0 + (_AS_P / 2.0 ** 0.5) * a)
        poly = ((((_AS_A[4] * t + _AS_A[3]) * t + _AS_A[2]) * t + _AS_A[1]) * t + _AS_A[0]) * t
        return ops.relu(x) - 0.5 * a * poly * ops.exp(-0.5 * a * a)


class PatchEmbed(nn.Cell):
    """Non-overlapping patches -> tokens: ``(B, 3, H, W) -> (B, H*W/patch**2, dim)``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.dim, self.num_patches = cfg.dim, cfg.num_patches
        self.proj = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size, pad_mode="valid", has_bias=True,
                              weight_init="zeros", bias_init="zeros")

    def construct(self, x):
        return self.proj(x).reshape(-1, self.dim, self.num_patches).transpose(0, 2, 1)


class Attention(nn.Cell):
    """Multi-head self-attention with separate q/k/v dense layers and scale ``head_dim ** -0.5``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.num_heads, self.head_dim, self.dim = cfg.num_heads, cfg.head_dim, cfg.dim
        self.scale = cfg.head_dim ** -0.5
        self.q = _dense(cfg.dim, cfg.dim)
        self.k = _dense(cfg.dim, cfg.dim)
        self.v = _dense(cfg.dim, cfg.dim)
        self.proj = _dense(cfg.dim, cfg.dim)
        self.proj_drop = _dropout(cfg.drop_rate)
        self.softmax = nn.Softmax(axis=-1)

    def _heads(self, t, n: int):
        return t.reshape(-1, n, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)   # (B, heads, N, hd)

    def construct(self, x):
        n = x.shape[1]
        q = self._heads(self.q(x) * self.scale, n)
        k = self._heads(self.k(x), n)
        v = self._heads(self.v(x), n)
        attn = self.softmax(ops.matmul(q, k.transpose(0, 1, 3, 2)))
        out = ops.matmul(attn, v).transpose(0, 2, 1, 3).reshape(-1, n, self.dim)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Cell):
    """``fc1`` -> GELU (exact, erf) -> dropout -> ``fc2`` -> dropout."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = _dense(cfg.dim, cfg.mlp_dim)
        self.act = GELU()
        self.drop1 = _dropout(cfg.drop_rate)
        self.fc2 = _dense(cfg.mlp_dim, cfg.dim)
        self.drop2 = _dropout(cfg.drop_rate)

    def construct(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Cell):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.norm2 = LayerNorm(cfg.dim)
        self.mlp = Mlp(cfg)

    def construct(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Cell):
    """Vision Transformer classifying from the class token.

    Parameters
    ----------
    cfg : lrd_core.init_vit.ViTConfig
        Validated options (see :func:`lrd_core.init_vit.vit_config`).
    seed : int or None
        Seed of the initial weights; None draws fresh ones.
    """

    def __init__(self, cfg: ViTConfig, seed: Optional[int] = None):
        super().__init__()
        self.cfg = cfg
        self.cls_token = Parameter(_zeros(1, 1, cfg.dim), name="cls_token")
        self.pos_embed = Parameter(_zeros(1, cfg.num_tokens, cfg.dim), name="pos_embed")
        self.patch_embed = PatchEmbed(cfg)
        self.pos_drop = _dropout(cfg.drop_rate)
        self.blocks = nn.SequentialCell([Block(cfg) for _ in range(cfg.depth)])
        self.norm = LayerNorm(cfg.dim)
        self.head = _dense(cfg.dim, cfg.num_classes)
        _initialise(self, seed)

    def __call__(self, *args, **kwargs):
        # A direct call checks the input shape (GRAPH mode cannot raise lrd errors inside construct);
        # when this cell is called from another cell's construct in GRAPH mode the check is skipped.
        if args and hasattr(args[0], "shape"):
            check_input_shape(self.cfg, args[0].shape)
        return super().__call__(*args, **kwargs)

    def construct(self, x):
        x = self.patch_embed(x)
        cls = ops.ones_like(x[:, :1]) * self.cls_token   # (B, 1, dim); exports with a symbolic batch
        x = ops.concat((cls, x), 1) + self.pos_embed
        x = self.norm(self.blocks(self.pos_drop(x)))
        return self.head(x[:, 0])


def _initialise(model: nn.Cell, seed: Optional[int]) -> None:
    from ..backend import BACKEND

    tensors = BACKEND.tensors(model)
    arrays = init_vit_arrays({k: tuple(t.shape) for k, t in tensors.items()}, seed)
    for k, t in tensors.items():
        BACKEND.assign(t, arrays[k])


def _builder(name: str, title: str):
    def build(num_classes: int = 1000, image_size: int = 224, patch_size: int = 16, drop_rate: float = 0.0,
              depth: Optional[int] = None, dim: Optional[int] = None, num_heads: Optional[int] = None,
              mlp_dim: Optional[int] = None, seed: Optional[int] = None) -> VisionTransformer:
        cfg = vit_config(name, num_classes=num_classes, image_size=image_size, patch_size=patch_size,
                         drop_rate=drop_rate, depth=depth, dim=dim, num_heads=num_heads, mlp_dim=mlp_dim)
        return VisionTransformer(cfg, seed)

    c = VIT_CONFIGS[name]
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"Build {title} (dim {c['dim']}, depth {c['depth']}, {c['num_heads']} heads, MLP {c['mlp_dim']}).\n\n"
                     "    Parameters\n    ----------\n    num_classes : int\n"
                     "    image_size, patch_size : int\n        Square input side and patch side; image_size must\n"
                     "        be a multiple of patch_size (224/16 standard; 32/4 for small images).\n"
                     "    drop_rate : float\n        Dropout after the position embedding, attention projection and MLP.\n"
                     "    depth, dim, num_heads, mlp_dim : int or None\n        Override the standard configuration.\n"
                     "    seed : int or None\n        Seed of the initial weights.\n\n"
                     "    Returns\n    -------\n    VisionTransformer\n\n    Raises\n    ------\n"
                     "    lrd_core.errors.ConfigError\n        For an invalid option.\n")
    return build


vit_tiny = _builder("vit_tiny", "ViT-Ti/16")
vit_small = _builder("vit_small", "ViT-S/16")
vit_b_16 = _builder("vit_b_16", "ViT-B/16")

MODELS = {"vit_tiny": vit_tiny, "vit_small": vit_small, "vit_b_16": vit_b_16}
