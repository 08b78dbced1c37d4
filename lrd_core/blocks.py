"""Which blocks a mode may decompose: the plan's ``blocks`` keyword (``"last:6"``, ``"first:4"``, ``"2-5,8"``).

The block of a layer is its transformer block (:attr:`~lrd_core.layers.Role.block_index`, counted
in :mod:`lrd_core.vit_roles`) and, in networks without transformer blocks, its stage (the ResNet
paper's "blocks 1-4" are the stages). With ``blocks`` set, a mode keeps only the layers inside the
chosen blocks; layers outside every block (stem, patch embedding, classifier) are left out too and
can be added by name (``include``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

from .errors import ConfigError
from .layers import PAPER_STAGES, LayerInfo, Role

_EDGE = re.compile(r"^(first|last):(\d+)$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
EXAMPLES = "'last:6', 'first:4' or '1-3,7' (1-based block indices)"


@dataclass(frozen=True)
class BlockChoice:
    """A parsed ``blocks`` spec: the first/last ``count`` blocks, or explicit 1-based ``indices``."""

    spec: str
    edge: Optional[str] = None
    count: int = 0
    indices: FrozenSet[int] = frozenset()

    def contains(self, index: int, total: int) -> bool:
        """Whether block ``index`` (1-based) of a network with ``total`` blocks is chosen."""
        if self.edge == "first":
            return index <= self.count
        if self.edge == "last":
            return index > total - self.count
        return index in self.indices

    def highest(self) -> int:
        """The largest block number the spec needs the network to have."""
        return self.count if self.edge else max(self.indices)


def parse_blocks(spec) -> Optional[BlockChoice]:
    """Check a ``blocks`` spec; None stays None.

    Raises
    ------
    ConfigError
        Not a string of the forms ``first:K``, ``last:K`` or ``I[-J][,...]`` with positive integers.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if not isinstance(spec, str):
        raise ConfigError(f"blocks takes a string such as {EXAMPLES}, got {spec!r}")
    text = spec.strip().lower().replace(" ", "")
    m = _EDGE.match(text)
    if m:
        if int(m.group(2)) < 1:
            raise ConfigError(f"blocks {spec!r}: the count must be >= 1, e.g. {EXAMPLES}")
        return BlockChoice(text, m.group(1), int(m.group(2)))
    indices = set()
    for item in text.split(","):
        r = _RANGE.match(item)
        if not r:
            raise ConfigError(f"blocks {spec!r} is not understood; use {EXAMPLES}")
        lo, hi = int(r.group(1)), int(r.group(2) or r.group(1))
        if lo < 1 or hi < lo:
            raise ConfigError(f"blocks {spec!r}: block indices start at 1 and ranges go upwards (e.g. 2-5)")
        indices.update(range(lo, hi + 1))
    return BlockChoice(text, indices=frozenset(indices))


def block_of(role: Role, transformer: bool) -> Optional[Tuple[int, int]]:
    """``(index, total)`` of a layer's transformer block (``transformer``) or stage; None outside."""
    if transformer:
        return None if role.block_index is None else (role.block_index, role.num_blocks or role.block_index)
    return None if role.stage is None else (role.stage, role.num_stages or PAPER_STAGES)


def restrict(layers: Sequence[LayerInfo], chosen: Dict[str, bool], spec) -> Dict[str, bool]:
    """``chosen`` with every layer outside the blocks of ``spec`` set to False.

    Blocks are transformer blocks when the network has any, else stages.

    Raises
    ------
    ConfigError
        The spec names a block the network does not have (or the network has no blocks).
    """
    choice = parse_blocks(spec)
    if choice is None:
        return dict(chosen)
    transformer = any(l.role.block_index is not None for l in layers)
    found = [b for b in (block_of(l.role, transformer) for l in layers) if b is not None]
    if not found:
        raise ConfigError(f"blocks {choice.spec!r}: the model has no transformer blocks or stages to choose from "
                          f"(see `lrd inspect`); select layers with include/exclude instead")
    total = max(b[1] for b in found)
    if choice.highest() > total:
        what = "transformer blocks" if transformer else "stages"
        raise ConfigError(f"blocks {choice.spec!r}: the model has {total} {what}; choose at most {total}")
    out = dict(chosen)
    for l in layers:
        b = block_of(l.role, transformer)
        if out.get(l.name) and (b is None or not choice.contains(b[0], b[1])):
            out[l.name] = False
    return out
