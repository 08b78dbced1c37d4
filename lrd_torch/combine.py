"""The ``combine`` layer of basis convolutions (seed 003) in torch: every output channel is a weighted copy
of one basis output or a weighted sum of two.

``out[:, o] = weight[o, 0] * x[:, index[o, 0]] + weight[o, 1] * x[:, index[o, 1]] + bias[o]``. ``weight``
(Cout, 2) and ``bias`` are parameters; ``index`` (Cout, 2, int64) is a buffer, so it is saved in the state
dict (``<layer>.index``) and moves with the module, but never trains.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from lrd_core.layers import SubLayer


class Combine(nn.Module):
    """Gather + two-term combination of basis outputs (no dense mix).

    Parameters
    ----------
    in_channels : int
        Basis outputs it reads (C').
    out_channels : int
    bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.weight = nn.Parameter(torch.zeros(out_channels, 2))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("index", torch.zeros(out_channels, 2, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(1, self.out_channels, 2, 1, 1)
        first = x.index_select(1, self.index[:, 0]) * w[:, :, 0]
        out = first + x.index_select(1, self.index[:, 1]) * w[:, :, 1]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"

    @classmethod
    def from_sub(cls, sub: SubLayer, device=None, dtype: Optional[torch.dtype] = None) -> "Combine":
        """The layer of a ``combine`` SubLayer with its weight, index and bias."""
        layer = cls(sub.in_channels, sub.out_channels, sub.has_bias)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(sub.weight, np.float32)))
            layer.index.copy_(torch.from_numpy(np.ascontiguousarray(sub.index, np.int64)))
            if sub.has_bias:
                layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(sub.bias, np.float32)))
        return layer.to(device=device, dtype=dtype)
