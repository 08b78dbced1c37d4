"""Markdown tables and PNG plots of ``lrd bench model`` / ``lrd bench layer`` results."""
from __future__ import annotations

from lrd_core.io import atomic_file

from typing import List, Optional


def _f(v, fmt: str = "{:.2f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _timed(row: dict, key: str) -> str:
    if row.get(key + "_ms") is None:
        return "-"
    iqr = row.get(key + "_ratio_iqr")
    spread = f", IQR {iqr[0]:.2f}-{iqr[1]:.2f}" if iqr and row.get("mode") != "original" else ""
    return f"{row[key + '_ms']:.1f} ({row[key + '_ratio']:.2f}x{spread})"


def model_markdown(result: dict) -> str:
    """One table: a row per variant, times as ``ms (ratio to original)``."""
    b = result["batch"]
    rows: List[dict] = result["results"]
    has_bs1 = any("infer_bs1_ms" in r for r in rows)
    head = ["mode", "decomposed", "params", "params x", "MACs", "MACs x"]
    if has_bs1:
        head.append("infer bs1 ms")
    head += [f"infer bs{b} ms", f"bs{b} img/s", f"train bs{b} ms", "peak infer MB", "peak train MB"]
    has_acc = any(r.get("accuracy") is not None for r in rows)
    if has_acc:
        head.append("top-1 (no fine-tune)")
    lines = [f"{result['framework']} {result.get('framework_version', '')}, {result['model']} "
             f"{result['input_size']}x{result['input_size']}, {result['device']}, threads {result.get('threads')}, "
             f"PR ratio {result.get('ratio')} x{result.get('rank_multiple')}"
             + (f", auto budget {result['budget']}x" if result.get("budget") else "")
             + f" ({result['date']})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["mode"], str(r.get("decomposed", 0)), f"{r['params'] / 1e6:.2f}M", f"{r['params_reduction']:.2f}",
                 _f(r.get("macs") and r["macs"] / 1e9, "{:.2f}G"), _f(r.get("macs_reduction"))]
        if has_bs1:
            cells.append(_timed(r, "infer_bs1"))
        cells += [_timed(r, "infer"), _f(r.get("infer_throughput"), "{:.1f}"), _timed(r, "train"),
                  _f(r.get("infer_peak_mb"), "{:.0f}"), _f(r.get("train_peak_mb"), "{:.0f}")]
        if has_acc:
            cells.append(_f(r.get("accuracy") and 100 * r["accuracy"], "{:.2f}%"))
        lines.append("| " + " | ".join(cells) + " |")
    auto = next((r for r in rows if r["mode"] == "auto"), None)
    if auto and auto.get("search_seconds") is not None:
        start = "cold" if auto.get("cold") else f"{auto.get('cache_hits_first')} cache hits at start"
        lines += ["", f"auto search: {auto['search_seconds']:.1f} s ({start}, {auto.get('layer_variants_timed')} "
                      f"layer variants timed), {auto['search_seconds_cached']:.1f} s repeated from the cache "
                      f"({auto.get('cache_hits_cached')} hits, {auto.get('cache_misses_cached')} misses)"
                      + (f"; budget {auto['budget']}x met: {'yes' if auto.get('budget_met') else 'no'}"
                         if auto.get("budget") is not None else "")]
    if result.get("best"):
        lines += ["", f"best mode{' meeting the budget' if result.get('budget') else ''}: {result['best']}"]
    lines += ["", "ms: the original's median times the paired ratio (median over rounds of variant / original "
                  "timed in the same round, the original beside one variant at a time; IQR over rounds), so ms "
                  "and ratios agree; params count every "
                  "parameter of the network (lrd plan's totals count conv and dense layers only)"]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def model_plot(result: dict, path: str) -> str:
    """Grouped bars of the time ratios (and the parameter ratio) per variant."""

    plt = _pyplot()
    rows = result["results"]
    keys = [k for k in ("infer_bs1", "infer", "train") if rows[0].get(k + "_ratio") is not None]
    labels = {"infer_bs1": "inference bs1", "infer": f"inference bs{result['batch']}",
              "train": f"train step bs{result['batch']}"}
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 3, 4))
    width = 0.8 / (len(keys) + 1)
    for j, k in enumerate(keys + ["params"]):
        vals = [1.0 / r["params_reduction"] if k == "params" else (r.get(k + "_ratio") or 0.0) for r in rows]
        bars = ax.bar([i + j * width for i in range(len(rows))], vals, width,
                      label="parameters" if k == "params" else labels[k], hatch="//" if k == "params" else None)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)               # the value on every bar
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([i + width * len(keys) / 2 for i in range(len(rows))], [r["mode"] for r in rows])
    ax.set_ylabel("ratio to original (lower is better)")
    ax.set_title(f"{result['model']} on {result['device']} ({result['framework']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def layer_markdown(result: dict) -> str:
    lines = [f"{result['framework']}, {result['cin']}->{result['cout']} {result['kernel']}x{result['kernel']}, "
             f"batch {result['batch']}, {result['device']}, threads {result.get('threads')} ({result['date']})", "",
             "| input | phase | original ms | fastest rank (ratio) | crossover rank | steps at ranks |",
             "|---|---|---|---|---|---|"]
    for s in result["sweeps"]:
        k = min(range(len(s["ratio"])), key=s["ratio"].__getitem__)
        lines.append(f"| {s['hw']}x{s['hw']} | {s['phase']} | {s['original_ms']:.2f} | {s['ranks'][k]} "
                     f"({s['ratio'][k]:.2f}x) | {_f(s['crossover_rank'], '{}', 'none')} | "
                     f"{', '.join(map(str, s['step_ranks'])) or '-'} |")
    return "\n".join(lines) + "\n"


def layer_plot(result: dict, path: str, title: Optional[str] = None) -> str:
    """Time vs rank per (input size, phase), the original as a line, crossover and steps marked."""

    plt = _pyplot()
    sweeps = result["sweeps"]
    sizes = list(dict.fromkeys(s["hw"] for s in sweeps))
    cols = max(1, len(sweeps) // len(sizes))
    fig, axes = plt.subplots(len(sizes), cols, figsize=(5.5 * cols, 3.6 * len(sizes)), squeeze=False)
    for ax, s in zip(axes.flat, sweeps):
        ax.plot(s["ranks"], s["ms"], "o-", ms=3, label=f"{s['method']} chain")
        ax.axhline(s["original_ms"], color="k", ls="--", lw=1, label="original")
        for r in s["step_ranks"]:
            ax.axvline(r, color="0.7", ls=":", lw=1)
        if s["crossover_rank"] is not None:
            ax.axvline(s["crossover_rank"], color="r", lw=1.2, label=f"crossover r={s['crossover_rank']}")
        even = next((r for r, p in zip(s["ranks"], s["params_ratio"]) if p >= 1.0), None)
        if even is not None:
            ax.axvline(even, color="g", ls="-.", lw=1, label=f"params break-even r={even}")
        ax.set_xlabel("rank")
        ax.set_ylabel("ms")
        ax.set_title(f"{s['hw']}x{s['hw']} {s['phase']}")
        ax.legend(fontsize=7)
    fig.suptitle(title or f"{result['cin']}->{result['cout']} {result['kernel']}x{result['kernel']} "
                          f"({result['framework']}, {result['device']}; dotted: steps)", fontsize=10)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
