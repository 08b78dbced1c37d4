"""Peak host memory of a workload, measured in a fresh child process (Linux ``/proc``).

CPU frameworks keep freed memory in their allocators, so the only comparable number across
torch and MindSpore is the resident set size. The child imports the framework, records its RSS,
builds the network, returns freed memory to the system (``malloc_trim``), resets the kernel's
high-water mark (``/proc/self/clear_refs``), runs one phase, and reports ``peak RSS - RSS after
import``: weights, gradients, optimizer state, activations and workspace.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Optional

from .errors import DeviceError


def _status(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0        # kB -> MiB
    except OSError:
        return None
    return None


def rss_mb() -> Optional[float]:
    """Current resident set size in MiB (None where /proc is missing)."""
    return _status("VmRSS")


def peak_mb() -> Optional[float]:
    """Resident high-water mark since the last :func:`reset_peak`, in MiB."""
    return _status("VmHWM")


def trim() -> bool:
    """Give memory the C allocator keeps after frees back to the system (glibc ``malloc_trim``), so
    that building and discarding full-size weights does not count towards a later phase."""
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS (after :func:`trim`); False where the kernel
    does not allow it."""
    trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_child(module: str, spec: dict, timeout: float = 900.0) -> dict:
    """Run ``python -m module '<spec json>'`` and return the JSON object it prints last."""
    # A fixed mmap threshold: large buffers are mapped and unmapped one by one, so the resident
    # size follows live memory instead of what glibc's adaptive heap happens to keep.
    env = dict(os.environ, GLOG_v=os.environ.get("GLOG_v", "3"), MALLOC_MMAP_THRESHOLD_="131072",
               MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"memory probe {module} failed: {tail}")
    return json.loads(lines[-1])
