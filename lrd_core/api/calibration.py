"""Calibration for any backend: data -> NumPy batches -> per-layer input statistics (cached on disk).

The adapter only runs the model and hands each layer's input over
(:meth:`~lrd_core.backend.Backend.record_inputs`); every statistic is accumulated in float64 in
:mod:`lrd_core.calibrate`. Sequential calibration (``sequential=True``) takes each data-aware layer's
statistics on a copy of the model whose earlier layers are already replaced by their data-aware
chains, so errors do not compound.

Statistics are cached under ``$LRD_CACHE_DIR/calibration`` (or ``~/.cache/lrd/calibration``), keyed
by the layers, the model's weights, the calibration batches and the options, so re-planning with the
same model and data skips the pass.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .. import calibrate as C
from ..errors import CalibrationError, LRDError
from ..layers import LayerInfo, SubLayer
from . import checks
from .state import state_to_numpy

DEFAULT_BATCH = 32


@dataclass
class Calibration:
    """Statistics of a set of layers and where they came from.

    Attributes
    ----------
    stats : {name: LayerStats}
    key : str
        Cache key (layers, weights, data, options).
    weights : str
        Digest of the model state the statistics were taken on.
    meta : dict
        What the plan records: batches, samples, seconds, cache hit, statistics kinds, sequential.
    chains : dict
        ``{name: ((method, ranks, floor, iters), [SubLayer])}`` data-aware chains already computed.
    """

    stats: Dict[str, C.LayerStats]
    key: str
    weights: str
    meta: dict = field(default_factory=dict)
    chains: Dict[str, Tuple[tuple, List[SubLayer]]] = field(default_factory=dict)

    def chain(self, signature: tuple) -> Optional[List[SubLayer]]:
        got = self.chains.get(signature[0])
        return got[1] if got is not None and got[0] == signature[1:] else None


# ---------------------------------------------------------------------------- data
def _array(backend, value, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(backend.to_numpy(value))
    except Exception:  # noqa: BLE001 - neither NumPy nor a native tensor
        try:
            return np.asarray(value)
        except Exception:  # noqa: BLE001
            raise CalibrationError(f"{what}: cannot read a {type(value).__name__} as an array; pass NumPy batches "
                                   f"(N, C, H, W) float32 or a dataset/loader") from None


def _inputs(data, ndim: int, batch: int) -> Iterable:
    """The input part of every batch of ``data`` (arrays, ArrayData, Loader, framework datasets)."""
    if hasattr(data, "x") and isinstance(getattr(data, "x"), np.ndarray):        # lrd_data.ArrayData
        data = data.x
    if hasattr(data, "shape") and len(getattr(data, "shape")) == ndim:            # one array of samples
        for k in range(0, int(data.shape[0]), batch):
            yield data[k:k + batch]
        return
    if hasattr(data, "epoch_batches"):                                           # lrd_data.Loader
        data = data.epoch_batches(0)
    elif hasattr(data, "create_tuple_iterator"):                                 # mindspore.dataset
        data = data.create_tuple_iterator(output_numpy=True, num_epochs=1)
    for item in data:
        if isinstance(item, dict):
            item = item.get("image", item.get("x", next(iter(item.values()))))
        elif isinstance(item, (tuple, list)):
            item = item[0]
        yield item


def to_batches(backend, data, input_shape: Sequence[int], limit: Optional[int] = None,
               batch_size: int = DEFAULT_BATCH) -> List[np.ndarray]:
    """Calibration ``data`` as a list of validated float32 batches ``(N, C, H, W)``.

    ``data``: an iterable of NumPy batches (or of ``(x, y)`` pairs), one array of samples (split into
    batches of ``batch_size``), an :class:`lrd_data.ArrayData` / :class:`lrd_data.Loader`, a torch
    ``DataLoader`` or a MindSpore dataset. ``limit`` keeps the first batches only.

    Raises
    ------
    CalibrationError
        No data; a batch of the wrong shape, channel count or dtype, or with NaN/Inf.
    """
    if data is None or isinstance(data, (str, bytes, int, float)):
        raise CalibrationError("calibration data must be NumPy batches (N, C, H, W) float32, an array of samples, "
                               "an lrd_data ArrayData/Loader or a framework dataset; CLI: --calibration "
                               "digits|<folder>|<file.npz>")
    shape = tuple(int(v) for v in input_shape)
    out = []
    for k, x in enumerate(_inputs(data, len(shape), batch_size)):
        if limit is not None and k >= limit:
            break
        x = C.validate_batch(_array(backend, x, f"calibration batch {k}"), shape, k)
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    if not out:
        raise CalibrationError("calibration data is empty; pass at least one batch of inputs")
    return out


def weights_digest(backend, model) -> str:
    """Digest of the model state under torch-style names, the same in both frameworks (torch's BatchNorm
    ``num_batches_tracked`` counters, which MindSpore has not, are left out)."""
    from ..naming import is_num_batches

    return C.digest({k: v for k, v in state_to_numpy(backend, model).items() if not is_num_batches(k)})


# ---------------------------------------------------------------------------- progress
def progress_bar(total: int, desc: str, progress: Optional[bool]):
    """A tqdm bar on stderr (``progress=None``: only when stderr is a terminal)."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, desc=desc, unit="batch", disable=not show, file=sys.stderr, leave=False,
                dynamic_ncols=True)


# ---------------------------------------------------------------------------- one pass
class _Sink:
    """Feeds a collector from the backend's hook; keeps the first user error to raise it after the pass
    (no exception travels through framework code)."""

    def __init__(self, collector: C.Collector, source: str, stop_after: Optional[str] = None):
        self.collector, self.source, self.error, self.stop_after, self.order = collector, source, None, stop_after, []

    def __call__(self, name: str, x: np.ndarray) -> None:
        if self.error is not None:
            return
        if name not in self.order:
            self.order.append(name)
        try:
            self.collector.update(name, x, source=self.source)
        except LRDError as exc:
            self.error = exc


def _run(backend, model, collector: C.Collector, batches: Sequence[np.ndarray], bar) -> List[str]:
    names, order = list(collector.accumulators), []
    for k, x in enumerate(batches):
        sink = _Sink(collector, f"calibration batch {k}")
        backend.record_inputs(model, x, names, sink)
        if sink.error is not None:
            raise sink.error
        order = order or sink.order
        bar.update(1)
    return order


def run_order(backend, model, names: Sequence[str], x: np.ndarray) -> List[str]:
    """``names`` in the order the model runs them (one forward pass of ``x[:1]``)."""
    seen: List[str] = []
    backend.record_inputs(model, x[:1], list(names), lambda n, _a: seen.append(n) if n not in seen else None)
    return seen + [n for n in names if n not in seen]


# ---------------------------------------------------------------------------- statistics
class _Collector(C.Collector):
    """A collector whose statistics choice takes the row limits (``max_rows=None``: every row)."""

    def __init__(self, infos, memory_mb: float, samples: int, seed: int, max_rows):
        self.choices = C.choose_statistics(infos, int(memory_mb * 2 ** 20), False, samples,
                                           max_rows=max_rows)
        by_name = {i.name: i for i in infos}
        self.accumulators = {c.name: C.Accumulator(by_name[c.name], c.kind, False, C.DEFAULT_CHUNK_BYTES, "float32",
                                                   c.rows_per_sample, seed) for c in self.choices}


def _collector(infos: Sequence[LayerInfo], memory_mb: float, samples: int, seed: int, max_rows=C.PATCH_MAX_ROWS):
    return _Collector(infos, memory_mb, samples, seed, max_rows)


def _cache_dir(cache) -> Optional[str]:
    return cache if isinstance(cache, str) else None


def statistics(backend, model, infos: Sequence[LayerInfo], batches: Sequence[np.ndarray], memory_mb: float = 2048,
               progress: Optional[bool] = None, cache=True, seed: int = 0,
               sequential: Optional[Callable] = None, extra_key: Optional[dict] = None,
               max_rows: Optional[float] = C.PATCH_MAX_ROWS, ranks: Optional[Dict[str, int]] = None,
               save: bool = True) -> Calibration:
    """Input statistics of ``infos`` on ``batches`` (a cache hit skips the pass).

    Parameters
    ----------
    infos : layers to calibrate (grouped/depthwise convs are left out by the caller)
    memory_mb : cap of the kept statistics (MiB)
    cache : bool or str
        False: no disk cache; True: the default directory; a string: that directory.
    sequential : callable, optional
        ``sequential(name, stats) -> chain``: the data-aware chain of a layer from its statistics;
        each layer's statistics are then taken with every earlier layer replaced by its chain.
    extra_key : dict, optional
        More cache-key options (a sequential pass depends on the plan's methods and ranks).
    max_rows : float or None
        Rows kept per layer, in multiples of its dimension ``d`` (None: every row; see
        :func:`lrd_core.calibrate.choose_statistics`).
    ranks : {name: int}, optional
        The largest rank each layer will be factorized at: checked against its calibration vectors
        (:func:`lrd_core.calibrate.check_samples`) before anything is cached.
    save : bool
        Write a computed result to the disk cache (False: the caller does it with :func:`save`
        once the statistics have been used successfully).

    Raises
    ------
    CalibrationError
        Bad batches, NaN/Inf activations, fewer calibration vectors than a layer's rank; nothing
        is written to the cache then.
    """
    checks.model(backend, model)
    t0 = time.perf_counter()
    weights = weights_digest(backend, model)
    samples = int(sum(len(x) for x in batches))
    options = {"memory_mb": float(memory_mb), "precision": "float32", "seed": int(seed), "sequential": bool(sequential),
               "rows": [C.PATCH_MIN_ROWS, max_rows], **(extra_key or {})}
    key = C.cache_key(infos, weights, C.digest(batches), **options)
    meta = {"key": key, "batches": len(batches), "samples": samples, "sequential": bool(sequential)}
    if cache is not False:
        hit = C.load_cached(key, _cache_dir(cache))
        if hit is not None and set(hit) == {i.name for i in infos}:
            meta.update(cache="hit", seconds=round(time.perf_counter() - t0, 3), kinds=_kinds(hit))
            return Calibration(hit, key, weights, meta)
    if sequential is None:
        collector = _collector(infos, memory_mb, samples, seed, max_rows)
        with progress_bar(len(batches), "calibrating", progress) as bar:
            _run(backend, model, collector, batches, bar)
        stats, chains = collector.result(), {}
    else:
        stats, chains = _sequential(backend, model, infos, batches, memory_mb, samples, seed, sequential, progress,
                                    max_rows)
    for name, rank in (ranks or {}).items():
        if name in stats:
            C.check_samples(stats[name], rank)
    meta.update(cache="miss" if cache is not False else "off", seconds=round(time.perf_counter() - t0, 3),
                kinds=_kinds(stats))
    cal = Calibration(stats, key, weights, meta, chains)
    if save:
        save_calibration(cal, cache)
    return cal


def save_calibration(cal: Calibration, cache=True) -> None:
    """Write ``cal`` to the disk cache (``cache``: False: nothing; True: the default directory; a
    directory); a result read from the cache is not written again."""
    if cache is not False and cal.meta.get("cache") != "hit":
        C.save_stats(C.cache_path(cal.key, _cache_dir(cache)), cal.stats, cal.key)


def _kinds(stats) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for s in stats.values():
        out[s.kind] = out.get(s.kind, 0) + 1
    return out


def _sequential(backend, model, infos, batches, memory_mb, samples, seed, factorize, progress, max_rows):
    """One pass per layer in run order over a copy whose earlier layers are already replaced."""
    by_name = {i.name: i for i in infos}
    order = run_order(backend, model, list(by_name), batches[0])
    work = backend.copy(model)
    layers = dict(backend.named_layers(work))
    stats, chains = {}, {}
    with progress_bar(len(order) * len(batches), "calibrating (sequential)", progress) as bar:
        for name in order:
            collector = _collector([by_name[name]], memory_mb, samples, seed, max_rows)
            _run(backend, work, collector, batches, bar)
            stats[name] = collector.result()[name]
            chain = factorize(name, stats[name])
            chains[name] = chain
            backend.replace(work, name, backend.build(chain[1], like=layers[name]))
    return stats, chains
