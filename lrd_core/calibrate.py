"""Calibration statistics: second moments of each layer's input, accumulated in float64.

The backend runs the model on calibration batches (no gradients) and hands each layer's *input*
array to :meth:`Collector.update` -- ``(N, C, H, W)`` for a conv, ``(N, F)`` or ``(N, T, F)`` for a
dense layer (and, optionally, the layer's output). Per layer one of two statistics is kept:

``patch``
    The exact input of the layer seen as a linear map: for a conv, every receptive field the layer
    reads (im2col with its stride, padding ``(top, bottom, left, right)`` and dilation; padded
    zeros included), as a vector of ``Cin*kh*kw`` ordered like ``weight.reshape(Cout, -1)`` of an
    OIHW kernel, i.e. index ``c*kh*kw + i*kw + j``. For dense and 1x1 convs this is the channel
    vector at the pixels the layer reads.
``channel``
    ``Cin x Cin`` over all samples and pixels of the input: the fallback for a KxK conv whose patch
    matrix would not fit the memory cap (the factorizations then use ``C_channel (x) I_{kh*kw}``).

What is kept is the **raw (uncentred) second moment** ``sum x x^T`` with the number of vectors
and their sum: a linear layer keeps its bias when it is decomposed, so the error it makes on an
input ``x`` is ``(W - W') x`` and its mean square is ``tr((W - W') E[x x^T] (W - W')^T)`` -- the
raw moment, not the covariance about the mean (which :meth:`LayerStats.centred` gives if wanted).

Memory: patches are extracted chunk by chunk (``sliding_window_view`` on a zero-padded chunk, then
one copy per chunk) and added to the kept ``d x d`` Gram matrix in place (BLAS ``dsyrk``), so
besides the kept matrices the transient memory is about ``2 * chunk_bytes``: the float64 patch
rows plus the padded float64 input chunk (a single sample whose patches exceed the chunk is split
by output rows).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.linalg.blas import dsyrk

from .errors import CalibrationError, ConfigError, MismatchError
from .io import atomic_file
from .layers import LayerInfo

STAT_KINDS = ("patch", "channel")
DEFAULT_CHUNK_BYTES = 32 * 2 ** 20
DEFAULT_MEMORY_CAP = 2 * 2 ** 30
SCHEMA = 1


# ---------------------------------------------------------------- validation
def _where(info: LayerInfo, source: str) -> str:
    return f"layer {info.name!r}" + (f" ({source})" if source else "")


def _common_checks(x: np.ndarray, where: str) -> None:
    if x.shape[0] == 0:
        raise CalibrationError(f"{where}: empty calibration batch; every batch needs at least one sample")
    if not np.isfinite(x).all():
        raise CalibrationError(f"{where}: NaN or Inf in the calibration data; check the inputs' "
                               f"preprocessing and the model weights")


def _float_array(x, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise CalibrationError(f"{where}: calibration data has dtype {x.dtype}; pass float arrays "
                               f"(float32) preprocessed like the training inputs")
    return x


def validate_input(info: LayerInfo, x, source: str = "") -> np.ndarray:
    """Check one array handed over as ``info``'s input; return it as a NumPy array.

    Raises
    ------
    CalibrationError
        Not a float array, wrong rank or channel count, empty, too small for the kernel, NaN/Inf.
    """
    where = _where(info, source)
    x = _float_array(x, where)
    if info.kind == "conv2d":
        if x.ndim != 4 or x.shape[1] != info.in_channels:
            raise CalibrationError(f"{where}: expected an input of shape (N, {info.in_channels}, H, W), "
                                   f"got {x.shape}; check the calibration batches' channel count and layout (NCHW)")
        t, b, l, r = info.padding
        need = [d * (k - 1) + 1 for d, k in zip(info.dilation, info.kernel)]
        if x.shape[2] + t + b < need[0] or x.shape[3] + l + r < need[1]:
            raise CalibrationError(f"{where}: input {x.shape[2]}x{x.shape[3]} is smaller than the "
                                   f"{info.kernel[0]}x{info.kernel[1]} kernel; use larger calibration images")
    elif x.ndim not in (2, 3) or x.shape[-1] != info.in_channels:
        raise CalibrationError(f"{where}: expected an input of shape (N, {info.in_channels}) or "
                               f"(N, T, {info.in_channels}), got {x.shape}")
    _common_checks(x, where)
    return x


def validate_batch(x, input_shape: Sequence[int], index: int = 0) -> np.ndarray:
    """Check one model-level calibration batch against the model's ``input_shape`` (batch size free)."""
    where = f"calibration batch {index}"
    x = _float_array(x, where)
    want = tuple(int(v) for v in input_shape)
    if x.ndim != len(want) or tuple(x.shape[1:]) != want[1:]:
        raise CalibrationError(f"{where}: shape {x.shape} does not match the model input "
                               f"(N, {', '.join(map(str, want[1:]))}); resize or re-layout the batches")
    _common_checks(x, where)
    return x


# ---------------------------------------------------------------- patch extraction
def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + p - d * (k - 1) - 1) // s + 1


def patch_rows(x: np.ndarray, kernel=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
               chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Yield float64 blocks of im2col rows ``(rows, C*kh*kw)`` of an NCHW array, chunk by chunk.

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
    row_bytes = c * kh * kw * 8
    per_sample = ho * wo * row_bytes
    nb = max(1, chunk_bytes // max(per_sample, 1))
    hb = ho if per_sample <= chunk_bytes else max(1, chunk_bytes // (wo * row_bytes))
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    for n0 in range(0, n, nb):
        xp = np.pad(np.asarray(x[n0:n0 + nb], dtype=np.float64), ((0, 0), (0, 0), (t, b), (l, r)))
        for p0 in range(0, ho, hb):
            p1 = min(ho, p0 + hb)
            part = xp[:, :, p0 * sh:(p1 - 1) * sh + eh, :]
            win = sliding_window_view(part, (eh, ew), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
            win = win[:, :, :p1 - p0, :wo]
            yield win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw)


def channel_rows(x: np.ndarray, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[np.ndarray]:
    """Yield float64 blocks ``(rows, C)``: every pixel (conv) or token (dense) as one row."""
    if x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    flat = x.reshape(-1, x.shape[-1])
    step = max(1, chunk_bytes // (flat.shape[1] * 8))
    for i in range(0, flat.shape[0], step):
        yield np.asarray(flat[i:i + step], dtype=np.float64)


# ---------------------------------------------------------------- statistics
@dataclass
class LayerStats:
    """Accumulated input statistics of one layer.

    Attributes
    ----------
    name, kind : str
        Layer name; ``"patch"`` or ``"channel"`` (see the module docstring).
    gram : ndarray (d, d) float64
        ``sum x x^T`` over all ``rows`` input vectors.
    total : ndarray (d,) float64
        ``sum x``.
    rows, samples : int
        Number of vectors (samples x positions) and of samples.
    kernel : (int, int)
        The layer's kernel; ``d = Cin * kh * kw`` for patch statistics of a conv, else ``Cin``.
    out_gram, out_rows
        Optional ``sum y y^T`` over the output channel vectors and their count.
    """

    name: str
    kind: str
    gram: np.ndarray
    total: np.ndarray
    rows: int = 0
    samples: int = 0
    kernel: Tuple[int, int] = (1, 1)
    out_gram: Optional[np.ndarray] = None
    out_rows: int = 0

    @property
    def dim(self) -> int:
        return int(self.gram.shape[0])

    @property
    def cov(self) -> np.ndarray:
        """Second moment ``E[x x^T]`` (what the data-aware factorizations take)."""
        return self.gram / max(self.rows, 1)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.rows, 1)

    def centred(self) -> np.ndarray:
        """Covariance about the mean ``E[x x^T] - m m^T``."""
        m = self.mean
        return self.cov - np.outer(m, m)

    @property
    def out_cov(self) -> Optional[np.ndarray]:
        return None if self.out_gram is None else self.out_gram / max(self.out_rows, 1)


def _syrk(gram: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``gram += rows^T rows`` in place on the upper triangle (BLAS ``dsyrk``; ``gram`` Fortran-ordered)."""
    return dsyrk(1.0, rows.T, beta=1.0, c=gram, lower=0, overwrite_c=1)


def _symmetric(upper: np.ndarray) -> np.ndarray:
    """The full matrix from an upper triangle whose strict lower part is zero."""
    full = upper + upper.T
    full[np.diag_indices_from(full)] = np.diag(upper)
    return full


class Accumulator:
    """Statistics of one layer, fed with its input (and optionally output) arrays.

    Parameters
    ----------
    info : LayerInfo
    kind : {"patch", "channel"}
    output : bool
        Also accumulate the output channel second moment (``update`` then needs ``y``).
    chunk_bytes : int
        Bound on the transient float64 rows per chunk.
    """

    def __init__(self, info: LayerInfo, kind: str = "patch", output: bool = False,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        if kind not in STAT_KINDS:
            raise ConfigError(f"layer {info.name!r}: statistics kind must be one of {STAT_KINDS}, got {kind!r}")
        if info.groups != 1:
            raise ConfigError(f"layer {info.name!r}: grouped convolutions have no data-aware factorization; "
                              f"exclude the layer from calibration")
        self.info, self.kind, self.output, self.chunk_bytes = info, kind, output, int(chunk_bytes)
        d = stat_dim(info, kind)
        self._gram = np.zeros((d, d), dtype=np.float64, order="F")
        self._total = np.zeros(d, dtype=np.float64)
        self._out = np.zeros((info.out_channels,) * 2, dtype=np.float64, order="F") if output else None
        self.rows = self.samples = self.out_rows = 0

    def _rows(self, x: np.ndarray) -> Iterator[np.ndarray]:
        info = self.info
        if info.kind == "conv2d" and self.kind == "patch":
            return patch_rows(x, info.kernel, info.stride, info.padding, info.dilation, self.chunk_bytes)
        return channel_rows(x, self.chunk_bytes)

    def update(self, x, y=None, source: str = "") -> None:
        """Add one batch of the layer's input ``x`` (and output ``y`` when ``output=True``)."""
        x = validate_input(self.info, x, source)
        if self.output:
            y = np.asarray(y) if y is not None else None
            if y is None or y.shape[0] != x.shape[0] or y.shape[1 if y.ndim == 4 else -1] != self.info.out_channels:
                raise CalibrationError(f"{_where(self.info, source)}: output statistics need the layer output "
                                       f"with {self.info.out_channels} channels for every input batch")
            if not np.isfinite(y).all():
                raise CalibrationError(f"{_where(self.info, source)}: NaN or Inf in the layer output")
        for block in self._rows(x):
            self._gram = _syrk(self._gram, block)
            self._total += block.sum(axis=0)
            self.rows += block.shape[0]
        self.samples += int(x.shape[0])
        if self.output:
            for block in channel_rows(y, self.chunk_bytes):
                self._out = _syrk(self._out, block)
                self.out_rows += block.shape[0]

    def result(self) -> LayerStats:
        """The statistics so far (a snapshot)."""
        kernel = self.info.kernel if self.kind == "patch" else (1, 1)
        out = None if self._out is None else _symmetric(self._out)
        return LayerStats(self.info.name, self.kind, _symmetric(self._gram), self._total.copy(), self.rows,
                          self.samples, tuple(kernel), out, self.out_rows)


# ---------------------------------------------------------------- memory plan
@dataclass(frozen=True)
class StatsChoice:
    """Which statistics a layer gets and the bytes they keep."""

    name: str
    kind: str
    dim: int
    bytes: int
    reason: Optional[str] = None


def stat_dim(info: LayerInfo, kind: str) -> int:
    """``d``: ``Cin*kh*kw`` for patch statistics of a conv, else ``Cin``."""
    return info.in_channels * (info.kernel[0] * info.kernel[1] if kind == "patch" and info.kind == "conv2d" else 1)


def stats_bytes(info: LayerInfo, kind: str, output: bool = False) -> int:
    """Bytes kept for ``info``'s statistics of ``kind``: float64 ``d x d`` Gram + ``d`` sum (+ output)."""
    d = stat_dim(info, kind)
    extra = info.out_channels ** 2 * 8 if output else 0
    return d * d * 8 + d * 8 + extra


def choose_statistics(infos: Sequence[LayerInfo], memory_cap: int = DEFAULT_MEMORY_CAP,
                      output: bool = False) -> List[StatsChoice]:
    """Patch statistics for every layer unless the total exceeds ``memory_cap`` bytes.

    KxK convs whose patch matrices are largest fall back to channel statistics first, until the
    total fits (dense and 1x1 layers always keep their exact statistics: patch == channel there).

    Raises
    ------
    CalibrationError
        When even channel statistics do not fit.
    """
    kinds = {i.name: "patch" for i in infos}
    size = {i.name: stats_bytes(i, "patch", output) for i in infos}
    total = sum(size.values())
    reasons: Dict[str, str] = {}
    spatial = sorted((i for i in infos if i.kind == "conv2d" and i.kernel != (1, 1)),
                     key=lambda i: (-size[i.name], i.name))
    for info in spatial:
        if total <= memory_cap:
            break
        small = stats_bytes(info, "channel", output)
        total += small - size[info.name]
        kinds[info.name], size[info.name] = "channel", small
        reasons[info.name] = (f"patch statistics ({stats_bytes(info, 'patch', output) / 2 ** 20:.0f} MiB) "
                              f"exceed the memory cap; channel statistics used")
    if total > memory_cap:
        raise CalibrationError(f"calibration statistics need {total / 2 ** 30:.2f} GiB even with channel "
                               f"statistics, above the cap of {memory_cap / 2 ** 30:.2f} GiB; raise the cap "
                               f"or calibrate fewer layers")
    return [StatsChoice(i.name, kinds[i.name], stat_dim(i, kinds[i.name]), size[i.name], reasons.get(i.name))
            for i in infos]


class Collector:
    """Accumulators for a set of layers, fed by name (the backend's per-layer input hook).

    Parameters
    ----------
    infos : sequence of LayerInfo
        The layers to calibrate.
    memory_cap : int
        Bytes of kept statistics; see :func:`choose_statistics`.
    output : bool
        Also keep output second moments.
    """

    def __init__(self, infos: Sequence[LayerInfo], memory_cap: int = DEFAULT_MEMORY_CAP, output: bool = False,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        self.choices = choose_statistics(infos, memory_cap, output)
        by_name = {i.name: i for i in infos}
        self.accumulators = {c.name: Accumulator(by_name[c.name], c.kind, output, chunk_bytes)
                             for c in self.choices}

    def update(self, name: str, x, y=None, source: str = "") -> None:
        if name not in self.accumulators:
            raise CalibrationError(f"layer {name!r} is not being calibrated; known: {sorted(self.accumulators)[:5]}...")
        self.accumulators[name].update(x, y, source)

    def result(self) -> Dict[str, LayerStats]:
        """Statistics of every layer; raises if a layer never received data."""
        missing = [n for n, a in self.accumulators.items() if a.rows == 0]
        if missing:
            raise CalibrationError(f"no calibration input reached layer(s) {missing[:5]}; check that the "
                                   f"calibration batches run through the whole model")
        return {n: a.result() for n, a in self.accumulators.items()}


def check_samples(stats: LayerStats, rank: int) -> None:
    """A rank-``rank`` data-aware factorization needs at least ``rank`` input vectors."""
    if stats.rows < int(rank):
        raise CalibrationError(f"layer {stats.name!r}: {stats.rows} calibration vectors are fewer than the "
                               f"rank {int(rank)} asked; give more calibration samples or a smaller rank")


# ---------------------------------------------------------------- cache
def digest(arrays) -> str:
    """SHA-256 of arrays (a mapping, taken in sorted key order, or an iterable in order): names,
    shapes, dtypes and bytes."""
    h = hashlib.sha256()
    items = sorted(arrays.items()) if isinstance(arrays, Mapping) else enumerate(arrays)
    for key, value in items:
        a = np.ascontiguousarray(value)
        h.update(f"{key}|{a.shape}|{a.dtype.str}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(infos: Sequence[LayerInfo], weights_digest: str, data_digest: str, **options) -> str:
    """Key of a statistics set: layer names and signatures, weights, calibration data, options
    (e.g. ``memory_cap``, ``output``, ``sequential``)."""
    from .latency_cache import layer_signature

    payload = {"schema": SCHEMA, "layers": [[i.name, layer_signature(i)] for i in infos],
               "weights": weights_digest, "data": data_digest, "options": options}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_path(key: str, directory: Optional[str] = None) -> str:
    """``<directory or $LRD_CACHE_DIR or ~/.cache/lrd>/calibration/<key>.npz``."""
    root = directory or os.environ.get("LRD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lrd")
    return os.path.join(root, "calibration", f"{key}.npz")


def save_stats(path: str, stats: Mapping[str, LayerStats], key: Optional[str] = None) -> str:
    """Write a statistics set to one ``.npz`` atomically (temp file, then rename)."""
    meta = {"schema": SCHEMA, "key": key, "layers": []}
    arrays = {}
    for i, s in enumerate(stats.values()):
        meta["layers"].append({"name": s.name, "kind": s.kind, "rows": s.rows, "samples": s.samples,
                               "kernel": list(s.kernel), "out_rows": s.out_rows})
        arrays[f"{i}.gram"], arrays[f"{i}.total"] = s.gram, s.total
        if s.out_gram is not None:
            arrays[f"{i}.out_gram"] = s.out_gram
    with atomic_file(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_stats(path: str, key: Optional[str] = None) -> Dict[str, LayerStats]:
    """Read a set written by :func:`save_stats`; ``key`` (if given) must match the stored one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("schema") != SCHEMA:
                raise MismatchError(f"{path}: statistics schema {meta.get('schema')} != {SCHEMA}; recalibrate")
            if key is not None and meta.get("key") != key:
                raise MismatchError(f"{path}: statistics were taken for another model, weights or data "
                                    f"(key {meta.get('key')} != {key}); recalibrate")
            out = {}
            for i, m in enumerate(meta["layers"]):
                og = data[f"{i}.out_gram"] if f"{i}.out_gram" in data.files else None
                out[m["name"]] = LayerStats(m["name"], m["kind"], data[f"{i}.gram"], data[f"{i}.total"], m["rows"],
                                            m["samples"], tuple(m["kernel"]), og, m["out_rows"])
            return out
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, MismatchError):
            raise
        raise MismatchError(f"{path}: not a readable calibration statistics file ({exc}); delete it "
                            f"and recalibrate") from exc


def load_cached(key: str, directory: Optional[str] = None) -> Optional[Dict[str, LayerStats]]:
    """The cached set for ``key`` or None (missing or unreadable files count as a miss)."""
    path = cache_path(key, directory)
    if not os.path.isfile(path):
        return None
    try:
        return load_stats(path, key)
    except MismatchError:
        return None
