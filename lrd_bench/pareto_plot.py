"""PNG of a ``mode="pareto"`` plan's front: estimated metric drop against latency ratio, coloured by
size ratio, with the chosen point (estimated and measured) and the fixed modes' estimates marked."""
from __future__ import annotations

from typing import Mapping

from lrd_core.io import atomic_file


def plot_front(pareto: Mapping, path: str, title: str = "") -> str:
    """Write the front of ``plan.meta["pareto"]`` to ``path`` (PNG, atomically); returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto.get("front") or []
    fig, ax = plt.subplots(figsize=(7.5, 5))
    if front:
        drop, lat, size = zip(*front)
        sc = ax.scatter(lat, drop, c=size, s=10, cmap="viridis", label="front (estimated)")
        fig.colorbar(sc, ax=ax, label=f"{pareto.get('size', 'params')} ratio (compressed / original)")
    est = pareto.get("estimated") or {}
    if est:
        ax.plot([est["latency_ratio"]], [est["drop"]], "r*", ms=16, label="chosen (estimated)")
    meas = pareto.get("measured") or {}
    ratios = list((meas.get("latency_ratios") or {}).values())
    if meas and ratios:
        ax.plot([sum(ratios) / len(ratios)], [meas["drop"]], "rx", ms=11, mew=2, label="chosen (measured)")
    same = {}                                  # modes with the same estimate share one label
    for mode, p in sorted((pareto.get("fixed_modes") or {}).items()):
        same.setdefault((round(p["latency_ratio"], 4), round(p["drop"], 6), round(p["size_ratio"], 4)), []).append(mode)
    for (lat_r, drop_r, size_r), modes in same.items():
        ax.plot([lat_r], [drop_r], "ks", ms=6, mfc="none")
        ax.annotate(f"{'='.join(modes)} ({1 / size_r:.2f}x)", (lat_r, drop_r), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.plot([], [], "ks", mfc="none", label="fixed modes (estimated)")
    ax.set(xlabel="latency ratio (compressed / original, summed over the timed phases)",
           ylabel="metric drop (original - compressed)",
           title=title or f"Pareto front: budget {pareto.get('budget')} ({pareto.get('budget_kind')})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
