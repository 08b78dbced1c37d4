"""Infer each layer's role (ResNet stage, downsample, stem, final dense) from names and run order.

Adapters pass, per conv/dense layer in definition order, its qualified name, kind and the index at
which it ran on the example input. Name conventions understood: torchvision / MindSpore ModelZoo
ResNets (``layer1``..``layer4``, ``downsample``), and the common ``stage<k>``, ``shortcut`` forms.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from .layers import Role

_BLOCK = re.compile(r"(?:^|\.)(?:layer|stage)(\d+)\.")
_DOWNSAMPLE = {"downsample", "shortcut", "down_sample_layer", "proj"}


def block_index(name: str) -> Optional[int]:
    m = _BLOCK.search(name)
    if not m:
        return None
    k = int(m.group(1))
    return k if 1 <= k <= 4 else None


def infer_roles(entries: Sequence[Tuple[str, str, Optional[int]]]) -> List[Role]:
    """Roles for ``entries = [(name, kind, run_index or None)]`` (same order out as in)."""
    ran = sorted((idx, k) for k, (_, _, idx) in enumerate(entries) if idx is not None)
    order = [k for _, k in ran] or list(range(len(entries)))
    blocks = [block_index(n) for n, _, _ in entries]
    stem = None
    for k in order:
        name, kind, _ = entries[k]
        if kind == "conv2d":
            if blocks[k] is None:
                stem = k
            break
    dense = [k for k in order if entries[k][1] == "dense"]
    final = dense[-1] if dense else None
    roles = []
    for k, (name, kind, _) in enumerate(entries):
        parts = set(name.split("."))
        roles.append(Role(block=blocks[k], is_downsample=bool(parts & _DOWNSAMPLE) and kind == "conv2d",
                          is_stem=(k == stem), is_final_dense=(k == final)))
    return roles
