"""Plain-data descriptions of layers: what an adapter sees (LayerInfo) and what it builds (SubLayer)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

import numpy as np

KINDS = ("conv2d", "dense")


@dataclass(frozen=True)
class Role:
    """Where a layer sits in the network, inferred by the adapter from the module tree.

    Attributes
    ----------
    block : int or None
        ResNet stage index 1..4 (conv2_x..conv5_x = layer1..layer4), None outside the stages.
    is_downsample, is_stem, is_final_dense : bool
    """

    block: Optional[int] = None
    is_downsample: bool = False
    is_stem: bool = False
    is_final_dense: bool = False


@dataclass(frozen=True)
class LayerInfo:
    """One conv2d or dense layer of a model, framework-neutral.

    Dense layers use ``kernel=(1, 1)``, ``input_hw=(1, 1)`` and in/out features as channels.
    ``padding`` is (top, bottom, left, right).
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: Tuple[int, int] = (1, 1)
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    has_bias: bool = False
    input_hw: Tuple[int, int] = (1, 1)
    role: Role = field(default_factory=Role)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"LayerInfo {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        for attr, n in (("kernel", 2), ("stride", 2), ("padding", 4), ("dilation", 2), ("input_hw", 2)):
            value = tuple(int(v) for v in getattr(self, attr))
            if len(value) != n:
                raise ValueError(f"LayerInfo {self.name!r}: {attr} needs {n} integers, got {value}")
            object.__setattr__(self, attr, value)
        if isinstance(self.role, dict):
            object.__setattr__(self, "role", Role(**self.role))

    @property
    def is_pointwise(self) -> bool:
        """Dense layers and 1x1 convolutions (decomposed by SVD)."""
        return self.kernel == (1, 1)

    @property
    def is_grouped(self) -> bool:
        return self.groups != 1

    @property
    def weight_shape(self) -> Tuple[int, ...]:
        if self.kind == "dense":
            return (self.out_channels, self.in_channels)
        return (self.out_channels, self.in_channels // self.groups) + self.kernel

    @property
    def output_hw(self) -> Tuple[int, int]:
        if self.kind == "dense":
            return (1, 1)
        out = []
        for size, k, s, p, d in zip(self.input_hw, self.kernel, self.stride,
                                    (self.padding[0] + self.padding[1], self.padding[2] + self.padding[3]),
                                    self.dilation):
            out.append((size + p - d * (k - 1) - 1) // s + 1)
        return tuple(out)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("kernel", "stride", "padding", "dilation", "input_hw"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LayerInfo":
        d = dict(d)
        d["role"] = Role(**d.get("role", {}))
        return cls(**d)


@dataclass
class SubLayer:
    """One native layer to build. Weight layout: conv OIHW, dense (out, in) — same in torch and MindSpore.

    ``position`` says which factor this is (``first``, ``core``, ``last``); freezing uses it.
    """

    kind: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    position: str = "first"

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * (self.groups if self.kind == "conv2d" else 1)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> Tuple[int, int]:
        return tuple(self.weight.shape[2:]) if self.kind == "conv2d" else (1, 1)

    @property
    def has_bias(self) -> bool:
        return self.bias is not None
