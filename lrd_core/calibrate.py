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
one copy per chunk) and their Gram product is added to the kept float64 ``d x d`` matrix, so besides
the kept matrices the transient memory is about ``2 * chunk_bytes``: the patch rows plus the padded
input chunk (a single sample whose patches exceed the chunk is split by output rows).

Precision and speed: ``precision="float64"`` (the default of :class:`Accumulator`) forms every
product in float64. ``precision="float32"`` (what the adapters' calibration uses: activations
are float32 anyway) extracts float32 rows and forms each Gram product over at most
``FLOAT32_BLOCK_ROWS`` rows in float32 (BLAS ``sgemm``/``ssyrk`` through NumPy, 1.7x faster than
float64 and half the transient memory), then adds it to the float64 sums: the relative error
stays near ``1e-6``. NumPy's ``a.T @ a`` is used rather than SciPy's ``dsyrk`` wrapper, which ran
30x slower on tall-skinny blocks here (3 vs 98 GFLOPS for 25,000 x 256).

Row sampling: ``rows_per_sample`` keeps a seeded random subset of each sample's output positions
when it has more of them, e.g. the 56x56 positions of an early layer whose Gram is far better
determined than its ``d`` requires. The subset depends only on the seed, the update count and
the shapes, so both frameworks sample the same positions. :func:`choose_statistics` with
``samples`` keeps about ``PATCH_MAX_ROWS * d`` rows of a layer and falls back to channel
statistics for a KxK conv with fewer than ``PATCH_MIN_ROWS * d`` positions in all: on a trained
ResNet-18 (digits) rows sampled down to ``8 d`` (``4 d``) gave held-out output errors within 1.6%
(2.5%) of those from all 1.4M rows, while channel statistics gave 20-130% larger errors. For
ResNet-50 at 224 on 256 images the Gram products of the layer3 3x3 convs (``d = 2304``) are most
of the work; at ``8 d`` rows the whole pass adds about 0.8 TFLOP to the forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import CalibrationError, ConfigError
from .layers import LayerInfo
from .patches import (DEFAULT_CHUNK_BYTES, _out_size, channel_rows, output_positions, patch_rows,  # noqa: F401
                      sampled_patch_rows)

STAT_KINDS = ("patch", "channel")
DEFAULT_MEMORY_CAP = 2 * 2 ** 30
FLOAT32_BLOCK_ROWS = 4096
PATCH_MIN_ROWS = 4      # a KxK conv's patch statistics need at least this many rows per dimension
PATCH_MAX_ROWS = 8      # ... and are sampled down to about this many
PRECISIONS = ("float64", "float32")
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


def _add_gram(gram: np.ndarray, rows: np.ndarray) -> None:
    """``gram += rows^T rows`` in place (float64 ``gram``; float32 rows in blocks of
    ``FLOAT32_BLOCK_ROWS`` so each float32 product sums few terms)."""
    with np.errstate(over="ignore", invalid="ignore"):      # overflow is reported by Accumulator.result
        if rows.dtype == np.float64:
            gram += rows.T @ rows
            return
        for i in range(0, rows.shape[0], FLOAT32_BLOCK_ROWS):
            part = rows[i:i + FLOAT32_BLOCK_ROWS]
            gram += part.T @ part


class Accumulator:
    """Statistics of one layer, fed with its input (and optionally output) arrays.

    Parameters
    ----------
    info : LayerInfo
    kind : {"patch", "channel"}
    output : bool
        Also accumulate the output channel second moment (``update`` then needs ``y``).
    chunk_bytes : int
        Bound on the transient rows per chunk.
    precision : {"float64", "float32"}
        Precision of the Gram products (the sums are float64 either way; see the module docstring).
    rows_per_sample : int, optional
        Output positions kept per sample of a conv with patch statistics; a sample with more
        positions is sampled (seeded by ``seed`` and the update count).
    seed : int
    """

    def __init__(self, info: LayerInfo, kind: str = "patch", output: bool = False,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, precision: str = "float64",
                 rows_per_sample: Optional[int] = None, seed: int = 0):
        if kind not in STAT_KINDS:
            raise ConfigError(f"layer {info.name!r}: statistics kind must be one of {STAT_KINDS}, got {kind!r}")
        if info.groups != 1:
            raise ConfigError(f"layer {info.name!r}: grouped convolutions have no data-aware factorization; "
                              f"exclude the layer from calibration")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.info, self.kind, self.output, self.chunk_bytes = info, kind, output, int(chunk_bytes)
        self.dtype = np.dtype(precision)
        self.rows_per_sample = None if rows_per_sample is None else max(1, int(rows_per_sample))
        self.seed, self.updates = int(seed), 0
        d = stat_dim(info, kind)
        self._gram = np.zeros((d, d), dtype=np.float64)
        self._total = np.zeros(d, dtype=np.float64)
        self._out = np.zeros((info.out_channels,) * 2, dtype=np.float64) if output else None
        self.rows = self.samples = self.out_rows = 0

    def _rows(self, x: np.ndarray) -> Iterator[np.ndarray]:
        info = self.info
        if info.kind == "conv2d" and self.kind == "patch":
            geometry = (info.kernel, info.stride, info.padding, info.dilation)
            positions = output_positions(info, x.shape)
            m = self.rows_per_sample
            if m is not None and positions > m:
                rng = np.random.default_rng((self.seed, self.updates))
                keep = np.sort(rng.random((x.shape[0], positions)).argsort(axis=1)[:, :m], axis=1)
                return sampled_patch_rows(x, keep, *geometry, self.chunk_bytes, self.dtype)
            return patch_rows(x, *geometry, self.chunk_bytes, self.dtype)
        return channel_rows(x, self.chunk_bytes, self.dtype)

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
            _add_gram(self._gram, block)
            self._total += block.sum(axis=0, dtype=np.float64)
            self.rows += block.shape[0]
        self.samples += int(x.shape[0])
        self.updates += 1
        if self.output:
            for block in channel_rows(y, self.chunk_bytes, self.dtype):
                _add_gram(self._out, block)
                self.out_rows += block.shape[0]

    def result(self) -> LayerStats:
        """The statistics so far (a snapshot).

        Raises
        ------
        CalibrationError
            The sums overflowed (finite inputs too large for float32 products).
        """
        if not (np.isfinite(self._gram).all() and np.isfinite(self._total).all()):
            raise CalibrationError(f"layer {self.info.name!r}: the calibration statistics overflow (NaN or Inf in "
                                   f"the sums of input products); check the inputs' scale and preprocessing")
        kernel = self.info.kernel if self.kind == "patch" else (1, 1)
        out = None if self._out is None else (self._out + self._out.T) / 2
        return LayerStats(self.info.name, self.kind, (self._gram + self._gram.T) / 2, self._total.copy(), self.rows,
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
    rows_per_sample: Optional[int] = None


def stat_dim(info: LayerInfo, kind: str) -> int:
    """``d``: ``Cin*kh*kw`` for patch statistics of a conv, else ``Cin``."""
    return info.in_channels * (info.kernel[0] * info.kernel[1] if kind == "patch" and info.kind == "conv2d" else 1)


def stats_bytes(info: LayerInfo, kind: str, output: bool = False) -> int:
    """Bytes kept for ``info``'s statistics of ``kind``: float64 ``d x d`` Gram + ``d`` sum (+ output)."""
    d = stat_dim(info, kind)
    extra = info.out_channels ** 2 * 8 if output else 0
    return d * d * 8 + d * 8 + extra


def choose_statistics(infos: Sequence[LayerInfo], memory_cap: int = DEFAULT_MEMORY_CAP,
                      output: bool = False, samples: Optional[int] = None, min_rows: float = PATCH_MIN_ROWS,
                      max_rows: Optional[float] = PATCH_MAX_ROWS) -> List[StatsChoice]:
    """Patch statistics for every layer unless the total exceeds ``memory_cap`` bytes.

    KxK convs whose patch matrices are largest fall back to channel statistics first, until the
    total fits (dense and 1x1 layers always keep their exact statistics: patch == channel there).

    With ``samples`` (the number of calibration samples; positions per sample from each layer's
    ``input_hw``): a KxK conv with fewer than ``min_rows * d`` positions in all gets channel
    statistics (too few rows to estimate its ``d x d`` patch covariance), and a conv with more
    than ``max_rows * d`` positions is sampled down to about that many (``rows_per_sample``).

    Raises
    ------
    CalibrationError
        When even channel statistics do not fit.
    """
    kinds = {i.name: "patch" for i in infos}
    reasons: Dict[str, str] = {}
    per_sample: Dict[str, int] = {}
    for i in infos if samples else ():
        if i.kind != "conv2d" or not i.input_hw:
            continue
        d, positions = stat_dim(i, "patch"), output_positions(i, (1, i.in_channels) + tuple(i.input_hw))
        if i.kernel != (1, 1) and samples * positions < min_rows * d:
            kinds[i.name] = "channel"
            reasons[i.name] = (f"{samples * positions} calibration positions are fewer than {min_rows:g} x the "
                               f"{d} patch dimensions; channel statistics used")
        elif max_rows is not None and samples * positions > max_rows * d:
            per_sample[i.name] = int(np.ceil(max_rows * d / samples))
    size = {i.name: stats_bytes(i, kinds[i.name], output) for i in infos}
    total = sum(size.values())
    spatial = sorted((i for i in infos if i.kind == "conv2d" and i.kernel != (1, 1) and kinds[i.name] == "patch"),
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
    return [StatsChoice(i.name, kinds[i.name], stat_dim(i, kinds[i.name]), size[i.name], reasons.get(i.name),
                        per_sample.get(i.name) if kinds[i.name] == "patch" else None) for i in infos]


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
    chunk_bytes, precision, seed
        See :class:`Accumulator`.
    samples : int, optional
        Number of calibration samples to come: enables row sampling and the fallback to channel
        statistics of :func:`choose_statistics`.
    """

    def __init__(self, infos: Sequence[LayerInfo], memory_cap: int = DEFAULT_MEMORY_CAP, output: bool = False,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, precision: str = "float64",
                 samples: Optional[int] = None, seed: int = 0):
        self.choices = choose_statistics(infos, memory_cap, output, samples)
        by_name = {i.name: i for i in infos}
        self.accumulators = {c.name: Accumulator(by_name[c.name], c.kind, output, chunk_bytes, precision,
                                                 c.rows_per_sample, seed) for c in self.choices}

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


from .calibrate_cache import cache_key, cache_path, digest, load_cached, load_stats, save_stats  # noqa: E402,F401
