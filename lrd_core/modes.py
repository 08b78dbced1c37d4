"""Compression modes: which layers a mode decomposes (Table 1 of the layer-targeted LRD paper).

A mode is a predicate over a :class:`~lrd_core.layers.LayerInfo` (its kind, kernel and role).
Modes are data: add one with :func:`register_mode`.

The paper's "blocks 1-4" are every stage of the network and its "blocks 3 and 4" the last two
stages (:attr:`~lrd_core.layers.Role.stage_from_end` 1 and 2), so ResNets with another number of
stages behave alike. The transformer modes (``attn``, ``mlp``) read the roles of
:mod:`lrd_core.vit_roles`; :mod:`lrd_core.blocks` narrows any mode to the first/last k blocks.
"""
from __future__ import annotations

from typing import Callable, Dict

from .layers import LayerInfo

Predicate = Callable[[LayerInfo], bool]
MODES: Dict[str, Predicate] = {}
DESCRIPTIONS: Dict[str, str] = {}


def register_mode(name: str, description: str):
    def wrap(fn: Predicate) -> Predicate:
        MODES[name] = fn
        DESCRIPTIONS[name] = description
        return fn
    return wrap


def in_blocks(l: LayerInfo) -> bool:
    """A conv in one of the stages (not the stem)."""
    return l.kind == "conv2d" and l.role.stage is not None and not l.role.is_stem


def in_last_stages(l: LayerInfo, count: int) -> bool:
    """In one of the network's last ``count`` stages."""
    return l.role.stage_from_end is not None and 1 <= l.role.stage_from_end <= count


def conv1x1(l: LayerInfo) -> bool:
    return l.kind == "conv2d" and l.kernel == (1, 1)


def final_dense(l: LayerInfo) -> bool:
    return l.kind == "dense" and l.role.is_final_dense


@register_mode("vanilla", "every conv in the stages (incl. downsample) + final dense")
def vanilla(l: LayerInfo) -> bool:
    return in_blocks(l) or final_dense(l)


@register_mode("mode1", "vanilla without 1x1 convs")
def mode1(l: LayerInfo) -> bool:
    return vanilla(l) and not conv1x1(l)


@register_mode("mode2", "mode1 + the 1x1 convs, except the downsample convs of the last two stages (blocks 3, 4)")
def mode2(l: LayerInfo) -> bool:
    if mode1(l):
        return True
    return in_blocks(l) and conv1x1(l) and not (l.role.is_downsample and in_last_stages(l, 2))


@register_mode("mode3", "mode2 without the 1x1 convs of the last stage (block 4)")
def mode3(l: LayerInfo) -> bool:
    return mode2(l) and not (conv1x1(l) and in_last_stages(l, 1))


@register_mode("mode4", "vanilla without any downsample conv")
def mode4(l: LayerInfo) -> bool:
    return vanilla(l) and not l.role.is_downsample


@register_mode("mode5", "every 1x1 conv in the stages + final dense")
def mode5(l: LayerInfo) -> bool:
    return (in_blocks(l) and conv1x1(l)) or final_dense(l)


@register_mode("all", "every eligible conv and dense layer, any architecture (stem included)")
def all_layers(l: LayerInfo) -> bool:
    return True


def transformer(l: LayerInfo) -> bool:
    """An attention projection or MLP layer of a transformer block (:mod:`lrd_core.vit_roles`)."""
    return l.role.kind in ("attn", "mlp")


@register_mode("attn", "transformer attention projections: query, key, value (separate or packed) and output")
def attn(l: LayerInfo) -> bool:
    return l.role.kind == "attn"


@register_mode("mlp", "transformer MLP layers (fc1, fc2 of every block)")
def mlp(l: LayerInfo) -> bool:
    return l.role.kind == "mlp"


@register_mode("auto", "hardware-aware: vanilla's candidates and the transformer attention/MLP layers, kept "
                       "only where measured faster")
def auto(l: LayerInfo) -> bool:
    return vanilla(l) or transformer(l)


@register_mode("pareto", "accuracy-aware: auto's candidates, the layers and ranks chosen by a sensitivity-based "
                         "Pareto search (lrd_core.api.pareto)")
def pareto(l: LayerInfo) -> bool:
    return auto(l)


FIXED_MODES = ("vanilla", "mode1", "mode2", "mode3", "mode4", "mode5")
TRANSFORMER_MODES = ("attn", "mlp")
