"""im2col rows of NCHW arrays for the calibration statistics (:mod:`lrd_core.calibrate`), chunk by chunk."""
from __future__ import annotations

from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layers import LayerInfo

DEFAULT_CHUNK_BYTES = 32 * 2 ** 20


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + p - d * (k - 1) - 1) // s + 1


def patch_rows(x: np.ndarray, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype=np.float64) -> Iterator[np.ndarray]:
    """Yield blocks of im2col rows ``(rows, C*kh*kw)`` of an NCHW array (``dtype``), chunk by chunk.

    Each row is one receptive field of the convolution, ordered like ``weight.reshape(Cout, -1)``
    of an OIHW kernel; all blocks stacked are the full patch matrix. Every block holds at most
    ``max(chunk_bytes, one output row of one sample)`` bytes.
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    t, b, l, r = padding
    dh, dw = dilation
    ho, wo = _out_size(h, kh, sh, t + b, dh), _out_size(w, kw, sw, l + r, dw)
    row_bytes = c * kh * kw * np.dtype(dtype).itemsize
    per_sample = ho * wo * row_bytes
    nb = max(1, chunk_bytes // max(per_sample, 1))
    hb = ho if per_sample <= chunk_bytes else max(1, chunk_bytes // (wo * row_bytes))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    for n0 in range(0, n, nb):
        xp = np.pad(np.asarray(x[n0:n0 + nb], dtype=dtype), ((0, 0), (0, 0), (t, b), (l, r)))
        for p0 in range(0, ho, hb):
            p1 = min(ho, p0 + hb)
            part = xp[:, :, p0 * sh:(p1 - 1) * sh + eh, :]
            win = sliding_window_view(part, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
            win = win[:, :, :p1 - p0, :wo]
            yield win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw)


def sampled_patch_rows(x: np.ndarray, keep: np.ndarray, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
                       dilation=(1, 1), chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype=np.float64
                       ) -> Iterator[np.ndarray]:
    """Like :func:`patch_rows` for the output positions ``keep`` only: ``keep`` is ``(N, m)`` flat
    indices into each sample's ``Ho*Wo`` output grid."""
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    t, b, l, r = padding
    dh, dw = dilation
    wo = _out_size(w, kw, sw, l + r, dw)
    m = keep.shape[1]
    nb = max(1, chunk_bytes // max(m * c * kh * kw * np.dtype(dtype).itemsize, 1))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    for n0 in range(0, n, nb):
        xp = np.pad(np.asarray(x[n0:n0 + nb], dtype=dtype), ((0, 0), (0, 0), (t, b), (l, r)))
        win = sliding_window_view(xp, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
        k = keep[n0:n0 + nb]
        rows = np.repeat(np.arange(len(k)), m)
        yield win[rows, :, (k // wo).ravel(), (k % wo).ravel()].reshape(-1, c * kh * kw)


def channel_rows(x: np.ndarray, chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype=np.float64) -> Iterator[np.ndarray]:
    """Yield blocks ``(rows, C)`` (``dtype``): every pixel (conv) or token (dense) as one row."""
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    flat = x.reshape(-1, x.shape[-1])
    step = max(1, chunk_bytes // (flat.shape[1] * np.dtype(dtype).itemsize))
    for i in range(0, flat.shape[0], step):
        yield np.asarray(flat[i:i + step], dtype=dtype)


def output_positions(info: LayerInfo, x_shape) -> int:
    """``Ho * Wo`` of a conv for an input of shape ``x_shape`` (1 per token/sample for dense)."""
    if info.kind != "conv2d":
        return int(np.prod(x_shape[1:-1])) if len(x_shape) > 2 else 1
    (kh, kw), (sh, sw), (t, b, l, r), (dh, dw) = info.kernel, info.stride, info.padding, info.dilation
    return _out_size(x_shape[2], kh, sh, t + b, dh) * _out_size(x_shape[3], kw, sw, l + r, dw)
