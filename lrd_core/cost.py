"""Parameter and multiply-accumulate (MAC) counts of original and decomposed layers, and the operation
counts of basis convolutions (seed 003, :func:`basis_op_counts`)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

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

    Dense sublayers are applied at every one of the ``h * w`` positions (tokens) of ``input_hw``. A conv
    (grouped and depthwise included) costs ``weight.size`` MACs per output position; a ``combine`` layer
    costs one MAC per output element for a copy and two for a pair (its ``index`` is not a parameter).
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
        elif sub.kind == "combine":
            pairs = int((sub.index[:, 0] != sub.index[:, 1]).sum())
            macs += (sub.out_channels + pairs) * h * w
        else:
            macs += n * h * w
    return params, macs


def decomposed_cost(info: LayerInfo, method: str, ranks) -> Tuple[int, int]:
    """(params, MACs) of ``info`` decomposed by ``method`` at ``ranks`` without building weights."""
    from .factorize import skeleton

    if method == "none":
        return layer_params(info), layer_macs(info)
    return chain_cost(skeleton(info, method, ranks, dtype="shape"), info.input_hw)


# ------------------------------------------------------------------------------ basis convolutions (seed 003)
def basis_op_counts(kernel: Tuple[int, int], out_hw: Tuple[int, int], c_in: int, c_out: int,
                    n_basis: Optional[float] = None, alpha: Optional[float] = None,
                    beta: Optional[float] = None) -> Dict[str, float]:
    """Operation counts of seed 003 (Alekseev et al., section 3.1) for one KxK conv (here kh x kw).

    ``W x H`` is the output size, C' the basis count:

    * ``forward_original`` ``N_f^0 = K^2 W H Cin Cout``; ``backward_original`` ``N_b^0 = W H Cout K^2 Cin``
      (input values each output depends on);
    * with ``n_basis``: ``forward_restore`` ``N'_f = Cout C' Cin K^2 + K^2 W H Cin Cout`` (restore the full
      weight, then the full conv), ``forward`` ``N''_f = K^2 W H Cin C' + Cout C' W H`` (mix the basis
      *outputs*), ``backward`` ``N''_b = W H Cout C' K^2 Cin``;
    * with ``alpha`` and ``beta`` (C' = alpha Cout, (1 - beta) Cout copies, beta Cout two-term pairs):
      ``forward_ab`` ``N'''_f = K^2 W H Cin C' + (1 - beta) Cout W H + 2 beta Cout W H`` and ``backward_ab``
      ``N'''_b = W H (1 - beta) Cout K^2 Cin + 2 W H beta Cout K^2 Cin``.
    """
    k2 = kernel[0] * kernel[1]
    wh = out_hw[0] * out_hw[1]
    out = {"forward_original": float(k2 * wh * c_in * c_out), "backward_original": float(wh * c_out * k2 * c_in)}
    if n_basis is not None:
        cb = float(n_basis)
        out["forward_restore"] = c_out * cb * c_in * k2 + k2 * wh * c_in * c_out
        out["forward"] = k2 * wh * c_in * cb + c_out * cb * wh
        out["backward"] = wh * c_out * cb * k2 * c_in
    if alpha is not None and beta is not None:
        cb = alpha * c_out
        out["forward_ab"] = k2 * wh * c_in * cb + (1 - beta) * c_out * wh + 2 * beta * c_out * wh
        out["backward_ab"] = wh * (1 - beta) * c_out * k2 * c_in + 2 * wh * beta * c_out * k2 * c_in
    return out


def forward_basis_limit(kernel: Tuple[int, int], c_in: int, c_out: int) -> float:
    """C' below which mixing the basis outputs makes the forward pass cheaper: ``Cout / (1 + Cout / (Cin K^2))``."""
    return c_out / (1 + c_out / (c_in * kernel[0] * kernel[1]))


def training_basis_limit(kernel: Tuple[int, int], c_in: int, c_out: int) -> float:
    """C' below which forward + backward are cheaper with a dense mix: ``2 / (1 + 1/Cout + 1/(K^2 Cin))``."""
    return 2 / (1 + 1 / c_out + 1 / (kernel[0] * kernel[1] * c_in))


def alpha_beta_speedup(alpha: float, beta: float, kernel: Tuple[int, int] = (3, 3), c_in: Optional[int] = None) -> bool:
    """Whether the alpha/beta variant needs fewer training operations than the original layer.

    With ``c_in`` the exact condition ``beta (1 + 1/(K^2 Cin)) + alpha < 1 - 1/(K^2 Cin)``; without it the
    seed's simplification ``alpha + beta < 1``.
    """
    if c_in is None:
        return alpha + beta < 1
    e = 1.0 / (kernel[0] * kernel[1] * c_in)
    return beta * (1 + e) + alpha < 1 - e
