"""The end-of-run summary: a table on stdout, ``summary.json`` and a PNG training-curve plot."""
from __future__ import annotations

import os
from typing import Optional

from lrd_core.io import atomic_file
from lrd_core.layout import CURVES_FILE, SUMMARY_FILE
from lrd_core.trainstate import write_json


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def table(s: dict) -> str:
    """The summary a user reads at the end of a run."""
    rows = [("", "original", "compressed", "ratio"),
            ("accuracy", _pct(s.get("accuracy_original")), _pct(s.get("accuracy_finetuned")), ""),
            ("  right after decomposition", "", _pct(s.get("accuracy_decomposed")), ""),
            ("params (all)", f"{s['params_original']:,}", f"{s['params_compressed']:,}",
             f"{s['params_original'] / max(s['params_compressed'], 1):.2f}x"),
            ("MACs (conv+dense)", f"{s['macs_original']:,}", f"{s['macs_compressed']:,}",
             f"{s['macs_original'] / max(s['macs_compressed'], 1):.2f}x")]
    if s.get("accuracy_recalibrated") is not None:
        rows.insert(3, ("  after BatchNorm re-calibration", "", _pct(s["accuracy_recalibrated"]), ""))
    if s.get("step_ms_original") is not None and s.get("step_ms_finetune") is not None:
        # measured in different runs (not interleaved): shown, but no ratio (see benchmarks/train_bench.py)
        rows.append(("train step (median)", f"{s['step_ms_original']:.1f} ms", f"{s['step_ms_finetune']:.1f} ms", ""))
    w = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join(v.ljust(x) for v, x in zip(r, w)).rstrip() for r in rows] + data_aware_table(s)
    for st in s.get("stages", [])[1:]:
        lines.append(f"stage {st['stage']}: params {st['params_compressed']:,}, after decomposition "
                     f"{_pct(st['accuracy_decomposed'])}, fine-tuned {_pct(st['accuracy_finetuned'])}")
    lines += list(s.get("skipped") or [])
    lines.append(f"decomposition {s['seconds_decompose']:.2f}s, total {s['seconds_total']:.0f}s "
                 f"({s['framework']}, freeze={s.get('freeze', 'none')})")
    return "\n".join(lines)


def data_aware_table(s: dict) -> list:
    """Weight-space beside data-aware decomposition at the same ranks (``compare_data_aware``), or nothing."""
    if s.get("accuracy_decomposed_data_aware") is None:
        return []
    ratio = s["params_original"] / max(s["params_compressed"], 1)
    rows = [(f"accuracy at the same ranks ({ratio:.2f}x fewer params)", "weight-space", "data-aware"),
            ("  original", _pct(s.get("accuracy_original")), _pct(s.get("accuracy_original"))),
            ("  right after decomposition", _pct(s.get("accuracy_decomposed")),
             _pct(s.get("accuracy_decomposed_data_aware_raw"))),
            ("  after BatchNorm re-calibration", _pct(s.get("accuracy_recalibrated")),
             _pct(s.get("accuracy_decomposed_data_aware"))),
            ("  after fine-tuning", _pct(s.get("accuracy_finetuned")), "-")]
    w = [max(len(r[c]) for r in rows) for c in range(3)]
    return [""] + ["  ".join(v.ljust(x) for v, x in zip(r, w)).rstrip() for r in rows]


def write(summary: dict, out_dir: str, name: str = SUMMARY_FILE) -> str:
    """Write ``name`` (JSON, atomically) and ``curves.png`` in ``out_dir``; returns the JSON path."""
    path = write_json(summary, os.path.join(out_dir, name))
    try:
        plot(summary, os.path.join(out_dir, CURVES_FILE))
    except ImportError:      # matplotlib is a dependency, but a plot must never fail a run
        pass
    return path


def freeze_boundaries(summary: dict, run: dict, last_step: int) -> list:
    """Steps (within ``run``) where a sequential-freezing phase starts, for fine-tune runs."""
    cfg = summary.get("config") or {}
    if run.get("name") == "original" or cfg.get("freeze") != "sequential" or not run.get("steps_per_epoch"):
        return []
    period = int(cfg.get("freeze_every") or 1) * (int(run["steps_per_epoch"]) if cfg.get("freeze_unit", "epoch")
                                                   == "epoch" else 1)
    return list(range(period, int(last_step), period)) if period > 0 else []


def plot(summary: dict, path: str) -> str:
    """Loss and accuracy over steps for the original training and every fine-tune, one figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for k, run in enumerate(summary.get("runs", [])):
        curve, label, colour = run.get("curve") or [], run["name"], f"C{k}"      # one colour per run, both panels
        if curve:
            steps = [offset + c[0] for c in curve]
            ax_loss.plot(steps, [c[1] for c in curve], lw=0.8, label=label, color=colour)
            ax_acc.plot(steps, [c[2] for c in curve], lw=0.5, alpha=0.5, label=f"{label} (train batches)",
                        color=colour)
            for b in freeze_boundaries(summary, run, curve[-1][0]):
                for ax in (ax_loss, ax_acc):
                    ax.axvline(offset + b, color=colour, lw=0.4, ls="--", alpha=0.6)
        evals = [(offset + h["global_step"], h["eval_accuracy"]) for h in run.get("history", []) if "eval_accuracy" in h]
        if evals:
            ax_acc.plot(*zip(*evals), "o-", label=f"{label} (eval)", color=colour)
        if run.get("accuracy_start") is not None:
            ax_acc.plot([offset], [run["accuracy_start"]], "kx", ms=8)
        if run.get("accuracy_recalibrated") is not None:
            ax_acc.plot([offset], [run["accuracy_recalibrated"]], "k^", ms=6)
        if curve:
            ax_acc.axvline(offset, color="grey", lw=0.5, ls=":")
        offset += curve[-1][0] if curve else 0
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", ylim=(0, 1.02),
               title="accuracy (x: right after decomposition, ^: BN re-calibrated; dashed: freezing phases)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{summary.get('model')} on {summary.get('data')} ({summary.get('framework')})")
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
