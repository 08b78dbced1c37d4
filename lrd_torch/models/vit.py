"""Vision Transformer (ViT-Ti/16, ViT-S/16, ViT-B/16) for PyTorch.

Standard ViT: a patch-embedding conv (kernel = stride = patch), a learned class token and position
embedding, pre-norm blocks (LayerNorm eps 1e-6 -> multi-head self-attention -> residual, LayerNorm
-> GELU (erf) MLP -> residual), a final LayerNorm and a dense classifier reading the class token.
Query, key and value are three separate ``nn.Linear`` layers (``attn.q``, ``attn.k``, ``attn.v``)
so that every projection is a plain dense layer the planner can decompose (it sees
(batch, tokens, features) inputs); parameter counts equal those of a packed ``qkv`` layer.

Same structure, names and parameter order as :mod:`lrd_mindspore.models.vit`; the same ``seed``
gives the same weights in both frameworks (drawn by :func:`lrd_core.init_vit.init_vit_arrays`).
Names and shapes: :func:`lrd_core.init_vit.vit_param_shapes`.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from lrd_core.init_vit import (LAYER_NORM_EPS, VIT_CONFIGS, ViTConfig, check_input_shape, init_vit_arrays,
                               vit_config)


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: ``(B, 3, H, W) -> (B, H*W/patch**2, dim)``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v dense layers and scale ``head_dim ** -0.5``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.scale = cfg.head_dim ** -0.5
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.k = nn.Linear(cfg.dim, cfg.dim)
        self.v = nn.Linear(cfg.dim, cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.proj_drop = _dropout(cfg.drop_rate)

    def _heads(self, t, b: int, n: int):
        return t.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)   # (B, heads, N, hd)

    def forward(self, x):
        b, n = x.shape[0], x.shape[1]
        q = self._heads(self.q(x) * self.scale, b, n)
        k = self._heads(self.k(x), b, n)
        v = self._heads(self.v(x), b, n)
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """``fc1`` -> GELU (exact, erf) -> dropout -> ``fc2`` -> dropout."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.act = nn.GELU()
        self.drop1 = _dropout(cfg.drop_rate)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.dim)
        self.drop2 = _dropout(cfg.drop_rate)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(cfg)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
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
        with torch.device("meta"):    # no default initialisation: every tensor is set by _initialise
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim))
            self.patch_embed = PatchEmbed(cfg)
            self.pos_drop = _dropout(cfg.drop_rate)
            self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
            self.norm = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)
            self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.to_empty(device="cpu")
        _initialise(self, seed)

    def forward(self, x):
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            check_input_shape(self.cfg, x.shape)
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(self.pos_drop(x)))
        return self.head(x[:, 0])


def _initialise(model: nn.Module, seed: Optional[int]) -> None:
    sd = model.state_dict()
    arrays = init_vit_arrays({k: tuple(v.shape) for k, v in sd.items()}, seed)
    with torch.no_grad():
        for k, v in sd.items():
            v.copy_(torch.from_numpy(arrays[k]))


def _builder(name: str, title: str):
    def build(num_classes: int = 1000, image_size: int = 224, patch_size: int = 16, drop_rate: float = 0.0,
              depth: Optional[int] = None, dim: Optional[int] = None, num_heads: Optional[int] = None,
              mlp_dim: Optional[int] = None, seed: Optional[int] = None) -> VisionTransformer:
        cfg = vit_config(name, num_classes=num_classes, image_size=image_size, patch_size=patch_size,
                         drop_rate=drop_rate, depth=depth, dim=dim, num_heads=num_heads, mlp_dim=mlp_dim)
        return VisionTransformer(cfg, seed)   # built on "meta" first: the global RNG is not touched

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
