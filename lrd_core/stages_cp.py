"""Later multi-stage (MUSCO) stages of CP-3 / CP-4 chains, and the chains that keep their ranks.

A CP chain keeps its layers; only the rank R shrinks. The new rank comes from the stage's selector:
``vbmf`` runs the weakened EVBMF rule on the unfoldings of the chain's small core
(:func:`lrd_core.factorize.cp.cp_core`), ``R' = R - w (R - R_evbmf)``; ``pr`` aims at the stage's
parameter-reduction target. The chain is re-decomposed by :func:`lrd_core.factorize.cp.cp_redecompose`
(CPD of the core mapped back through the bases, then CPD-EPC when the plan asked for it).
Basis-convolution chains (:data:`FIXED_METHODS`) are not re-decomposed by later stages.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from . import ranks as R
from .errors import ConfigError
from .factorize.cp import CP_METHODS, cp_core, cp_redecompose, cp_vbmf_rank
from .layers import SubLayer

FIXED_METHODS = ("basis",)     #: methods whose chains keep their ranks in later stages


def cp_stage_ranks(lp, subs: Sequence[SubLayer], cfg, plan, stage: int) -> Tuple[int]:
    """``(R',)`` of a CP chain for ``stage`` (never larger than its current rank)."""
    from .multistage import stage_ratio

    current = int(lp.ranks[0])
    if cfg.rank_selection == "vbmf":
        raw = (cp_vbmf_rank(cp_core(subs)[1], cfg.vbmf_weakening, current=current),)
    elif cfg.rank_selection == "pr":
        raw = R.select(lp.info, lp.method, "pr", ratio=stage_ratio(cfg, plan, stage))
    else:
        raise ConfigError(f"stage rank selection {cfg.rank_selection!r} has no rule for {lp.method} chains; "
                          f"use vbmf or pr")
    q = cfg.rank_multiple or plan.config.rank_multiple
    new = R.quantize(raw, R.full_ranks(lp.info, lp.method), q, plan.config.rank_rounding)
    return (min(int(new[0]), current),)


def cp_stage_chain(lp, subs: Sequence[SubLayer], new_ranks, config) -> Tuple[List[SubLayer], dict]:
    """The CP chain of ``lp`` at ``new_ranks`` and its report (EPC and iterations from the plan's config)."""
    return cp_redecompose(subs, int(new_ranks[0]), epc=config.epc, n_iter=config.cp_iters,
                          epc_iter=config.epc_iters, name=lp.name)


STAGE_METHODS = CP_METHODS     #: methods re-decomposed by the rules of this module
