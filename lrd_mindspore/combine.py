"""The ``combine`` layer of basis convolutions (seed 003) in MindSpore: every output channel is a weighted
copy of one basis output or a weighted sum of two.

``out[:, o] = weight[o, 0] * x[:, index[o, 0]] + weight[o, 1] * x[:, index[o, 1]] + bias[o]``. ``weight``
(Cout, 2) and ``bias`` are trainable Parameters; ``index`` (Cout, 2) is an int64 Parameter with
``requires_grad=False`` so that it is saved in checkpoints under the same name as torch's buffer
(``<layer>.index``) and runs in GRAPH mode, MindIR and ONNX export. The backend never
hands integer Parameters to optimizers or freezing.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from lrd_core.layers import SubLayer


class Combine(nn.Cell):
    """Gather + two-term combination of basis outputs (no dense mix).

    Parameters
    ----------
    in_channels : int
        Basis outputs it reads (C').
    out_channels : int
    has_bias : bool
    """

    def __init__(self, in_channels: int, out_channels: int, has_bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.has_bias = int(in_channels), int(out_channels), bool(has_bias)
        self.weight = Parameter(ms.Tensor(np.zeros((out_channels, 2), np.float32)), name="weight")
        self.bias = Parameter(ms.Tensor(np.zeros(out_channels, np.float32)), name="bias") if has_bias else None
        self.index = Parameter(ms.Tensor(np.zeros((out_channels, 2), np.int64)), name="index", requires_grad=False)

    def construct(self, x):
        w = self.weight.reshape(1, self.out_channels, 2, 1, 1)
        first = ops.gather(x, self.index[:, 0], 1) * w[:, :, 0]
        out = first + ops.gather(x, self.index[:, 1], 1) * w[:, :, 1]
        if self.has_bias:
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out

    def extend_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, has_bias={self.has_bias}"

    @classmethod
    def from_sub(cls, sub: SubLayer) -> "Combine":
        """The cell of a ``combine`` SubLayer with its weight, index and bias."""
        cell = cls(sub.in_channels, sub.out_channels, sub.has_bias)
        cell.weight.set_data(ms.Tensor(np.ascontiguousarray(sub.weight, np.float32)))
        cell.index.set_data(ms.Tensor(np.ascontiguousarray(sub.index, np.int64)))
        if sub.has_bias:
            cell.bias.set_data(ms.Tensor(np.ascontiguousarray(sub.bias, np.float32)))
        return cell
