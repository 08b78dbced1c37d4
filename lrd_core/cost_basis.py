"""Parameters and MACs of CP-3 / CP-4 / basis-convolution chains, and the operation counts of seed 003.

Chain costs (batch 1) count one MAC per weight use: a conv (grouped or depthwise included) costs
``weight.size * Ho * Wo``, a dense sublayer ``weight.size`` per position (as ``cost.chain_cost``); a
``combine`` layer costs one MAC per output element for a copy and two for a pair (its ``index`` is
not a parameter).

The seed-003 counts (Alekseev et al., §3.1 "Basis Convolutions") use a KxK conv (here kh x kw) with
output size W x H, Cin inputs, Cout outputs and C' basis filters:

* ``N_f^0 = K^2 W H Cin Cout`` (forward) and ``N_b^0 = W H Cout K^2 Cin`` (backward: inputs each output
  depends on), the original layer;
* ``N'_f = Cout C' Cin K^2 + K^2 W H Cin Cout``: restoring the full weight, then the full conv;
* ``N''_f = K^2 W H Cin C' + Cout C' W H`` and ``N''_b = W H Cout C' K^2 Cin``: mixing the basis
  *outputs*; the forward pass is cheaper while ``C' < Cout / (1 + Cout / (Cin K^2))``, forward plus
  backward only while ``C' < 2 / (1 + 1/Cout + 1/(K^2 Cin))`` (about 2);
* ``N'''_f = K^2 W H Cin C' + (1 - beta) Cout W H + 2 beta Cout W H`` and
  ``N'''_b = W H (1 - beta) Cout K^2 Cin + 2 W H beta Cout K^2 Cin`` (copies and two-term pairs,
  ``C' = alpha Cout``): training is cheaper while
  ``beta (1 + 1/(K^2 Cin)) + alpha < 1 - 1/(K^2 Cin)``, simplified by the seed to ``alpha + beta < 1``.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

from .layers import LayerInfo, SubLayer


def _out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + p - d * (k - 1) - 1) // s + 1


def subchain_cost(subs: Sequence[SubLayer], input_hw: Tuple[int, int],
                  n_pair: Optional[int] = None) -> Tuple[int, int]:
    """(params, MACs) of a chain with conv2d (any groups), dense and ``combine`` sublayers.

    ``n_pair`` overrides the pair count of a ``combine`` layer (a skeleton's zero ``index`` reads as copies).
    """
    params = macs = 0
    h, w = input_hw
    for sub in subs:
        n = int(sub.weight.size)
        params += n + (int(sub.bias.size) if sub.bias is not None else 0)
        if sub.kind == "conv2d":
            (kh, kw), (t, b, l, r) = sub.kernel, sub.padding
            h = _out(h, kh, sub.stride[0], t + b, sub.dilation[0])
            w = _out(w, kw, sub.stride[1], l + r, sub.dilation[1])
            macs += n * h * w
        elif sub.kind == "combine":
            pairs = n_pair if n_pair is not None else int((sub.index[:, 0] != sub.index[:, 1]).sum())
            macs += (sub.out_channels + pairs) * h * w
        else:                                                      # dense: once per position (token)
            macs += n * h * w
    return params, macs


def cp_cost(info: LayerInfo, method: str, rank: int) -> Tuple[int, int]:
    """(params, MACs) of ``info`` as a CP-3 or CP-4 chain of ``rank``."""
    from .factorize.cp import cp_skeleton

    return subchain_cost(cp_skeleton(info, method, rank), info.input_hw)


def basis_cost(info: LayerInfo, ranks: Sequence[int]) -> Tuple[int, int]:
    """(params, MACs) of a basis chain: ranks ``(C',)`` (dense mix) or ``(C', n_pair)`` (combine)."""
    from .factorize.basis import basis_skeleton

    pairs = int(ranks[1]) if len(ranks) > 1 else None
    return subchain_cost(basis_skeleton(info, ranks), info.input_hw, n_pair=pairs)


COSTS: Dict[str, Callable[[LayerInfo, Sequence[int]], Tuple[int, int]]] = {
    "cp3": lambda info, ranks: cp_cost(info, "cp3", int(ranks[0])),
    "cp4": lambda info, ranks: cp_cost(info, "cp4", int(ranks[0])),
    "basis": basis_cost,
}


# ------------------------------------------------------------------------------------ seed 003
def basis_op_counts(kernel: Tuple[int, int], out_hw: Tuple[int, int], c_in: int, c_out: int,
                    n_basis: Optional[float] = None, alpha: Optional[float] = None,
                    beta: Optional[float] = None) -> Dict[str, float]:
    """Operation counts of seed 003 §3.1 (see the module docstring) for one conv layer.

    Keys: ``forward_original`` (N_f^0), ``backward_original`` (N_b^0); with ``n_basis``:
    ``forward_restore`` (N'_f), ``forward`` (N''_f), ``backward`` (N''_b); with ``alpha`` and ``beta``:
    ``forward_ab`` (N'''_f), ``backward_ab`` (N'''_b), C' = alpha Cout.
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
    """C' below which the output-mixing forward pass is cheaper: ``Cout / (1 + Cout / (Cin K^2))``."""
    return c_out / (1 + c_out / (c_in * kernel[0] * kernel[1]))


def training_basis_limit(kernel: Tuple[int, int], c_in: int, c_out: int) -> float:
    """C' below which forward + backward are cheaper: ``2 / (1 + 1/Cout + 1/(K^2 Cin))``."""
    return 2 / (1 + 1 / c_out + 1 / (kernel[0] * kernel[1] * c_in))


def alpha_beta_speedup(alpha: float, beta: float, kernel: Tuple[int, int] = (3, 3), c_in: Optional[int] = None) -> bool:
    """Whether the alpha/beta variant needs fewer training operations than the original layer.

    With ``c_in`` the exact condition ``beta (1 + 1/(K^2 Cin)) + alpha < 1 - 1/(K^2 Cin)``; without it
    the seed's simplification ``alpha + beta < 1``.
    """
    if c_in is None:
        return alpha + beta < 1
    e = 1.0 / (kernel[0] * kernel[1] * c_in)
    return beta * (1 + e) + alpha < 1 - e
