"""Disk cache of per-layer latencies so that a repeated hardware-aware search takes seconds.

Entries live under an *environment* (device, framework, framework version, threads, host CPU):
a new framework version or another machine never reads stale numbers. Within an environment an
entry is keyed by the phase, batch, layer shape and variant (method + ranks). Each entry keeps the
variant's time and its ratio to the original layer measured in the same interleaved run; the
search works from the ratios. The file is JSON, written atomically and merged with what other
processes wrote meanwhile.
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Dict, Mapping, Optional, Sequence

from .io import atomic_file
from .layers import LayerInfo

SCHEMA = 1
ENV_KEYS = ("device", "framework", "version", "threads", "host")


def default_path() -> str:
    """``$LRD_CACHE_DIR/latency.json`` or ``~/.cache/lrd/latency.json``."""
    root = os.environ.get("LRD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lrd")
    return os.path.join(root, "latency.json")


def host_id() -> str:
    """A short description of the CPU (model name and core count)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} x{os.cpu_count()}"


def environment(device: str, framework: str, version: str, threads: Optional[int] = None,
                host: Optional[str] = None) -> Dict[str, str]:
    """The fields that make cached numbers valid."""
    return {"device": str(device), "framework": str(framework), "version": str(version),
            "threads": str(threads if threads is not None else "default"), "host": host or host_id()}


def env_key(env: Mapping[str, str]) -> str:
    return "|".join(f"{k}={env[k]}" for k in ENV_KEYS)


def layer_signature(info: LayerInfo) -> str:
    """Everything about a layer that changes its run time (not its name or weights)."""
    if info.kind == "dense":      # positions per sample count: a ViT's projections run on every token
        tokens = f":t{info.tokens}" if info.tokens != 1 else ""
        return f"dense:{info.in_channels}->{info.out_channels}:b{int(info.has_bias)}{tokens}"
    return (f"conv:{info.in_channels}->{info.out_channels}:k{info.kernel[0]}x{info.kernel[1]}"
            f":s{info.stride[0]}x{info.stride[1]}:p{','.join(map(str, info.padding))}"
            f":d{info.dilation[0]}x{info.dilation[1]}:g{info.groups}:b{int(info.has_bias)}"
            f":hw{info.input_hw[0]}x{info.input_hw[1]}")


def variant_key(method: str, ranks: Optional[Sequence[int]]) -> str:
    return "original" if method == "none" else f"{method}:{'x'.join(str(int(r)) for r in ranks)}"


def entry_key(phase: str, signature: str, variant: str) -> str:
    return f"{phase}|{signature}|{variant}"


class LatencyCache:
    """Per-layer latency entries for one environment, backed by a JSON file.

    Parameters
    ----------
    env : mapping
        From :func:`environment`.
    path : str, optional
        JSON file (default :func:`default_path`); ``None`` with ``memory=True`` keeps it in memory.
    memory : bool
        Do not touch the disk.

    Attributes
    ----------
    hits, misses : int
        Lookups answered / not answered since construction.
    """

    def __init__(self, env: Mapping[str, str], path: Optional[str] = None, memory: bool = False):
        self.env = dict(env)
        self.key = env_key(self.env)
        self.path = None if memory else (path or default_path())
        self.hits = self.misses = 0
        self._entries: Dict[str, dict] = {}
        self._dirty: Dict[str, dict] = {}
        if self.path and os.path.isfile(self.path):
            self._entries = dict(self._read().get("envs", {}).get(self.key, {}).get("entries", {}))

    def _read(self) -> dict:
        try:
            with open(self.path) as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) and data.get("schema") == SCHEMA else {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Optional[dict]:
        """The entry or None; counts a hit or a miss."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def peek(self, key: str) -> Optional[dict]:
        """Like :meth:`get` without counting."""
        return self._entries.get(key)

    def put(self, key: str, ms: float, ratio: Optional[float] = None, **extra) -> dict:
        entry = {"ms": float(ms), "when": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        if ratio is not None:
            entry["ratio"] = float(ratio)
        self._entries[key] = entry
        self._dirty[key] = entry
        return entry

    def save(self) -> Optional[str]:
        """Merge new entries into the file. Environments of the same device and framework with
        another framework version are dropped (their numbers are stale)."""
        if not self.path or not self._dirty:
            return self.path
        data = self._read() or {"schema": SCHEMA, "envs": {}}
        envs = data.setdefault("envs", {})
        for key in [k for k, v in envs.items() if k != self.key and _stale(v.get("env", {}), self.env)]:
            del envs[key]
        slot = envs.setdefault(self.key, {"env": self.env, "entries": {}})
        slot["entries"].update(self._dirty)
        with atomic_file(self.path, suffix=".json") as tmp:
            with open(tmp, "w") as fh:
                json.dump(data, fh, indent=0, sort_keys=True)
        self._entries.update(slot["entries"])
        self._dirty = {}
        return self.path

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries), "path": self.path}


def _stale(other: Mapping[str, str], env: Mapping[str, str]) -> bool:
    same_target = all(other.get(k) == env.get(k) for k in ("device", "framework", "host", "threads"))
    return same_target and other.get("version") != env.get("version")
