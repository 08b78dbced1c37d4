"""Export-time swaps: cells replaced by operators every MindIR/ONNX consumer supports, then restored.

Any cell with a ``portable()`` method (e.g. :class:`lrd_mindspore.models.resnet.StemMaxPool`, a CPU-speed
form of a padded max-pool) is swapped for what that method returns, in every format; a cell with an
``onnx_portable()`` method (the ViTs' exact GELU and LayerNorm) only for ONNX. For ONNX, padded
``nn.MaxPool2d`` cells (no ONNX export in MindSpore 2.10) become an explicit zero pad + "valid" pool,
exact only for non-negative inputs (e.g. after a ReLU) — the exporter's output check catches the rest.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, List

import mindspore as ms
from mindspore import nn

from lrd_core.errors import ExportError


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def padded_pools(net: nn.Cell) -> List[str]:
    """Names of max-pools with explicit padding (not exportable to ONNX by MindSpore 2.10)."""
    return [n for n, c in net.cells_and_names() if isinstance(c, nn.MaxPool2d) and getattr(c, "use_pad", False)]


def pool_workaround(name: str, pool: nn.MaxPool2d) -> nn.Cell:
    """Zero pad + "valid" max-pool in place of a padded max-pool."""
    prim = getattr(pool, "max_pool", None)
    if prim is not None and (tuple(prim.attrs.get("dilation", (1, 1, 1)))[-2:] != (1, 1)
                             or prim.attrs.get("ceil_mode", False)):
        raise ExportError(f"layer {name}: a dilated or ceil-mode padded max-pool has no ONNX export in MindSpore "
                          f"{ms.__version__}; export MINDIR, or replace it by nn.Pad + a 'valid' max-pool")
    ph, pw = tuple(pool.padding)[-2:]
    return nn.SequentialCell([nn.Pad(((0, 0), (0, 0), (ph, ph), (pw, pw))),
                              nn.MaxPool2d(_pair(pool.kernel_size), _pair(pool.stride), pad_mode="valid")])


@contextmanager
def portable(net: nn.Cell, onnx: bool, replace: Callable[[nn.Cell, str, nn.Cell], None]):
    """Swap cells for exportable equivalents inside the block; yields notes on the swaps whose
    exactness depends on the input (the padded max-pools of an ONNX export)."""
    cells = dict(net.cells_and_names())
    swapped, notes = [], []
    try:
        for name, cell in cells.items():
            if name and callable(getattr(cell, "portable", None)):
                replace(net, name, cell.portable())
                swapped.append(name)
        if onnx:                    # ONNX-only forms (e.g. erf-free GELU / LayerNorm of the ViTs)
            for name, cell in cells.items():
                if name and callable(getattr(cell, "onnx_portable", None)):
                    replace(net, name, cell.onnx_portable())
                    swapped.append(name)
            for name in padded_pools(net):
                replace(net, name, pool_workaround(name, cells[name]))
                swapped.append(name)
                notes.append(f"{name}: padded max-pool exported as zero pad + valid max-pool (exact only for "
                             f"non-negative inputs: put a ReLU before it or use pad_mode='same')")
        yield notes
    finally:
        for name in reversed(swapped):
            replace(net, name, cells[name])
