"""Plain-data descriptions of layers: what an adapter sees (LayerInfo) and what it builds (SubLayer)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

import numpy as np

KINDS = ("conv2d", "dense")
PAPER_STAGES = 4   #: stage count assumed when a Role does not say (the paper's ResNets: conv2_x..conv5_x)


@dataclass(frozen=True)
class Role:
    """Where a layer sits in the network, inferred by the core from the traced structure.

    Attributes
    ----------
    stage : int or None
        Stage index, 1 for the first stage after the stem, growing where the spatial size shrinks
        at a block (ResNet: 1..4 = conv2_x..conv5_x); None for the stem, the final dense layer,
        layers on a gating branch (squeeze-and-excitation) and layers of unknown place.
    num_stages : int or None
        Number of stages of the network (the same on every layer); None means the paper's four.
    is_downsample : bool
        The projection conv on a residual shortcut (possibly after a pooling layer).
    is_stem : bool
        A conv that runs before the first block.
    is_final_dense : bool
        A dense layer whose output reaches the model output with no conv/dense in between.
    kind : str or None
        Transformer sublayer: ``attn`` (a projection of an attention: its output feeds the attention's
        matrix products, or it reads their result) or ``mlp`` (a dense layer of a residual feed-forward
        branch); None elsewhere. See :mod:`lrd_core.vit_roles`.
    part : str or None
        Which projection: ``q``, ``k``, ``v`` or a packed combination (``qkv``, ``kv``, ...), ``proj``
        (attention output); ``fc1``, ``fc2``, ... (MLP layers in run order).
    block_index : int or None
        1-based index of the transformer block (attention + MLP) the layer belongs to.
    num_blocks : int or None
        Number of transformer blocks of the network (the same on every layer).
    """

    stage: Optional[int] = None
    num_stages: Optional[int] = None
    is_downsample: bool = False
    is_stem: bool = False
    is_final_dense: bool = False
    kind: Optional[str] = None
    part: Optional[str] = None
    block_index: Optional[int] = None
    num_blocks: Optional[int] = None

    @property
    def is_packed(self) -> bool:
        """An attention projection computing more than one of query, key and value."""
        return self.kind == "attn" and self.part is not None and len(set(self.part) & set("qkv")) > 1

    @property
    def block(self) -> Optional[int]:
        """Read-only former name of :attr:`stage`."""
        return self.stage

    @property
    def stage_from_end(self) -> Optional[int]:
        """1 for the last stage, 2 for the one before it, ...; None outside the stages."""
        if self.stage is None:
            return None
        return (self.num_stages or PAPER_STAGES) - self.stage + 1

    @classmethod
    def from_dict(cls, d) -> "Role":
        """Read a role from plan JSON, also the older form whose stage key was ``block``."""
        d = dict(d or {})
        if "block" in d:
            block = d.pop("block")
            d.setdefault("stage", block)
        return cls(**d)


@dataclass(frozen=True)
class LayerInfo:
    """One conv2d or dense layer of a model, framework-neutral.

    ``padding`` is (top, bottom, left, right). Dense layers use ``kernel=(1, 1)``, in/out features
    as channels and ``input_hw`` for the positions they are applied at: ``(1, 1)`` on a
    (batch, features) input, ``(tokens, 1)`` on (batch, tokens, features), ``(h, w)`` on
    (batch, h, w, features). ``unsupported`` says why the layer cannot be replaced by a factor chain
    (e.g. it did not run on the example input); the planner then leaves it as it is.
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
    unsupported: Optional[str] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"LayerInfo {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        for attr, n in (("kernel", 2), ("stride", 2), ("padding", 4), ("dilation", 2), ("input_hw", 2)):
            value = tuple(int(v) for v in getattr(self, attr))
            if len(value) != n:
                raise ValueError(f"LayerInfo {self.name!r}: {attr} needs {n} integers, got {value}")
            object.__setattr__(self, attr, value)
        if isinstance(self.role, dict):
            object.__setattr__(self, "role", Role.from_dict(self.role))

    @property
    def is_pointwise(self) -> bool:
        """Dense layers and 1x1 convolutions (decomposed by SVD)."""
        return self.kernel == (1, 1)

    @property
    def is_grouped(self) -> bool:
        return self.groups != 1

    @property
    def tokens(self) -> int:
        """Positions a dense layer is applied at per sample (1 on a (batch, features) input)."""
        return self.input_hw[0] * self.input_hw[1] if self.kind == "dense" else 1

    @property
    def weight_shape(self) -> Tuple[int, ...]:
        if self.kind == "dense":
            return (self.out_channels, self.in_channels)
        return (self.out_channels, self.in_channels // self.groups) + self.kernel

    @property
    def output_hw(self) -> Tuple[int, int]:
        """Output positions: the spatial size of a conv's output; a dense layer keeps its input's."""
        if self.kind == "dense":
            return self.input_hw
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
        d["role"] = Role.from_dict(d.get("role", {}))
        return cls(**d)


@dataclass
class SubLayer:
    """One native layer to build. Weight layout: conv OIHW, dense (out, in) — same in torch and MindSpore.

    ``position`` says which factor this is (``first``, ``core``, ``last``); freezing uses it.
    ``index`` holds integer gather indices for kinds that select channels (None for conv2d/dense).
    ``n_basis`` is the input channel count of a ``combine`` layer (its weight is (Cout, 2) and does not
    show it; None reads it from ``index``).
    """

    kind: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    position: str = "first"
    index: Optional[np.ndarray] = None
    n_basis: Optional[int] = None

    @property
    def in_channels(self) -> int:
        if self.kind == "combine":
            return int(self.n_basis) if self.n_basis is not None else int(np.max(self.index)) + 1
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
