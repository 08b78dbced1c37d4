"""Parameter and multiply-accumulate (MAC) counts of original and decomposed layers."""
from __future__ import annotations

from typing import Sequence, Tuple

from .layers import LayerInfo, SubLayer


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + p - d * (k - 1) - 1) // s + 1


def layer_params(info: LayerInfo) -> int:
    kh, kw = info.kernel
    n = info.out_channels * (info.in_channels // info.groups) * kh * kw
    return n + (info.out_channels if info.has_bias else 0)


def layer_macs(info: LayerInfo) -> int:
    """MACs of one sample (batch 1). Conv: Cout*Cin/g*kh*kw*Ho*Wo; dense: in*out per position
    (``info.tokens`` positions, 1 on a (batch, features) input)."""
    kh, kw = info.kernel
    ho, wo = info.output_hw
    return info.out_channels * (info.in_channels // info.groups) * kh * kw * ho * wo


def chain_cost(subs: Sequence[SubLayer], input_hw: Tuple[int, int]) -> Tuple[int, int]:
    """(params, MACs) of a chain of sublayers applied one after another to an input of ``input_hw``.

    Dense sublayers are applied at every one of the ``h * w`` positions (tokens) of ``input_hw``.
    """
    params = macs = 0
    h, w = input_hw
    for sub in subs:
        n = int(sub.weight.size)
        params += n + (int(sub.bias.size) if sub.bias is not None else 0)
        if sub.kind == "conv2d":
            kh, kw = sub.kernel
            t, b, l, r = sub.padding
            h = _conv_out(h, kh, sub.stride[0], t + b, sub.dilation[0])
            w = _conv_out(w, kw, sub.stride[1], l + r, sub.dilation[1])
            macs += n * h * w
        else:
            macs += n * h * w
    return params, macs


def decomposed_cost(info: LayerInfo, method: str, ranks) -> Tuple[int, int]:
    """(params, MACs) of ``info`` decomposed by ``method`` at ``ranks`` without building weights."""
    from .factorize import skeleton

    if method == "none":
        return layer_params(info), layer_macs(info)
    return chain_cost(skeleton(info, method, ranks, dtype="shape"), info.input_hw)
