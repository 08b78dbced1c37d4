"""Framework-neutral descriptions of the architectures both adapters build (the one source of their
configurations and option checks)."""
from __future__ import annotations

import numbers
from typing import Dict, Tuple

from .errors import ConfigError

STEMS = ("imagenet", "cifar")

#: name -> (block kind, blocks per stage)
RESNETS: Dict[str, Tuple[str, Tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}

RESNET_DOC = """Build {name} (v1.5).

    Parameters
    ----------
    num_classes : int
    stem : {{'imagenet', 'cifar'}}
        ImageNet: 7x7/2 conv + 3x3/2 max-pool; CIFAR: 3x3/1 conv, no pool.
    width : int
        Base channel count (64 is standard).
    seed : int or None
        Seed of the initial weights (identical in both frameworks); None draws fresh ones.

    Returns
    -------
    ResNet
"""


def positive_int(key: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return int(value)


def check_resnet(stem: str, width: int, num_classes: int) -> None:
    """Validate the options of a ResNet builder."""
    if stem not in STEMS:
        raise ConfigError(f"unknown stem {stem!r}; use one of {', '.join(STEMS)}")
    positive_int("width", width)
    positive_int("num_classes", num_classes)
