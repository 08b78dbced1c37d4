"""What a plan report tells a practitioner besides the ranks: the approximation error of each decomposed
layer, and warnings for plans that are probably not what was meant (random-initialised weights under a
data-driven rank selection; a model that is already compressed)."""
from __future__ import annotations

import logging
from typing import Mapping, Optional, Sequence

import numpy as np

log = logging.getLogger("lrd")

#: a layer "looks untrained" when its stable rank is at least this share of an i.i.d. matrix's
RANDOM_STABLE_RANK = 0.7
#: ... in at least this share of the layers
RANDOM_SHARE = 0.8


def stable_rank_share(weight: np.ndarray) -> float:
    """Stable rank ``||W||_F^2 / ||W||_2^2`` of the output-channel unfolding over that of an i.i.d. matrix of
    the same shape (``m n / (sqrt(m) + sqrt(n))^2``, Marchenko-Pastur): about 1 for random weights, well
    below for trained ones."""
    w = np.asarray(weight, dtype=np.float64)
    mat = w.reshape(w.shape[0], -1)
    m, n = mat.shape
    s = np.linalg.svd(mat, compute_uv=False)
    if s[0] <= 0:
        return 0.0
    measured = float(np.sum(s ** 2) / s[0] ** 2)
    expected = m * n / (np.sqrt(m) + np.sqrt(n)) ** 2
    return measured / expected


def looks_untrained(weights: Mapping[str, np.ndarray], names: Sequence[str]) -> bool:
    """True when most of the named layers' weights have the spectrum of random initialisation."""
    mats = [weights[n] for n in names if n in weights and np.asarray(weights[n]).ndim >= 2
            and min(np.asarray(weights[n]).shape[0], np.asarray(weights[n]).reshape(weights[n].shape[0], -1).shape[1]) >= 8]
    if not mats:
        return False
    shares = [stable_rank_share(w) for w in mats]
    return float(np.mean([s >= RANDOM_STABLE_RANK for s in shares])) >= RANDOM_SHARE


def warn_untrained(weights: Mapping[str, np.ndarray], names: Sequence[str], selection: str) -> Optional[str]:
    """Log (and return) a warning when a data-driven rank selection reads random-initialised weights."""
    if not looks_untrained(weights, names):
        return None
    what = "evbmf" if selection == "vbmf" else selection
    text = (f"rank selection {what} reads the trained weights, but these look random-initialised (no low-rank "
            f"structure); load the trained checkpoint (CLI: --checkpoint) or use rank_selection pr")
    log.warning(text)
    return text


def compressed_layers(names: Sequence[str]) -> list:
    """Layer names that are factors of an earlier decomposition (``...conv2.0``, ``fc.1``: the chains that
    :func:`compress` builds are containers of numbered layers)."""
    groups = {}
    for name in names:
        head, _, tail = name.rpartition(".")
        if tail.isdigit() and head:
            groups.setdefault(head, []).append(name)
    chains = {h for h, items in groups.items() if len(items) >= 2 and not h.split(".")[-1].isdigit()
              and any(part.startswith(("conv", "fc", "linear", "proj", "qkv", "dense", "head", "downsample",
                                       "down_sample", "end_point", "fc1", "fc2")) for part in h.split(".")[-1:])}
    return sorted(n for h in chains for n in groups[h])


def warn_compressed(names: Sequence[str]) -> Optional[str]:
    """Log (and return) a warning when a model looks already compressed (its layers are factor chains)."""
    factors = compressed_layers(names)
    if not factors:
        return None
    text = (f"the model looks already compressed ({len(factors)} layers are factors, e.g. {factors[0]}): planning "
            f"it again decomposes the factors; plan the original model (e.g. plan before compress)")
    log.warning(text)
    return text


def relative_error(original: np.ndarray, approx: np.ndarray) -> float:
    """``||W - W_hat||_F / ||W||_F``."""
    a, b = np.asarray(original, np.float64), np.asarray(approx, np.float64)
    norm = float(np.linalg.norm(a))
    return float(np.linalg.norm(a - b) / norm) if norm > 0 else 0.0


def weight_error(method: str, ranks, weight: Optional[np.ndarray], tucker_iters: int = 4) -> Optional[float]:
    """Relative weight error ``||W - W_hat||_F / ||W||_F`` of the SVD / Tucker-2 factors at ``ranks`` (the
    same factors :mod:`lrd_core.factorize` builds); None for other methods or without weights."""
    if weight is None or ranks is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    total = float(np.sum(w ** 2))
    if total <= 0:
        return 0.0
    if method == "svd":
        s = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
        kept = float(np.sum(s[:int(ranks[0])] ** 2))
    elif method == "tucker2" and w.ndim == 4:
        from .factorize.tucker2 import tucker2_factors
        kept = float(np.sum(tucker2_factors(w, (int(ranks[0]), int(ranks[1])), n_iter=tucker_iters)[1] ** 2))
    else:
        return None
    return round(float(np.sqrt(max(total - kept, 0.0) / total)), 6)
