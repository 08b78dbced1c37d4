"""On-disk cache of calibration statistics (:mod:`lrd_core.calibrate`): keys, ``.npz`` files."""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .calibrate import SCHEMA, LayerStats
from .errors import MismatchError
from .io import atomic_file
from .layers import LayerInfo


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
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
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
