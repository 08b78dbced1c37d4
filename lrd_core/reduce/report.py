"""The table a user reads for a plan made by ``reduce``: what was kept, and the cost of every layer."""
from __future__ import annotations

from ..plan import Plan, _human, _ratio

__all__ = ["summary"]


def _header(rec: dict) -> list:
    if rec["method"] == "ron":
        lines = [f"RON on {rec['samples']} calibration samples: {len(rec['streams'])} streams reduced"]
        for s in rec["streams"]:
            energy = "" if s.get("energy") is None else f", energy {s['energy']:.4f}"
            lines.append(f"  stream {s['name']:<24} {s['channels']:>5} -> {len(s['kept']):>5} channels "
                         f"(rank {s['rank']}{energy}; producers {', '.join(s['producers'])})")
        return lines
    h = rec["head"]
    return [f"ASNet on {rec['samples']} calibration samples ({rec['gradients']} gradients): cut before "
            f"{rec['cut']!r} ({h['features']} features), r = {h['dim']}, Hermite degree {h['degree']} "
            f"({h['terms']} terms), fit residual {h['residual']:.3g}"]


def summary(plan: Plan) -> str:
    """What ``reduce`` kept and the per-layer parameters/MACs of the original network before and after."""
    rec = plan.meta.get("reduction")
    if not rec:
        return plan.summary()
    rows = [("layer", "params", "->", "MACs", "->", "note")]
    for r in rec["layers"]:
        rows.append((r["name"], _human(r["params_before"]), _human(r["params_after"]), _human(r["macs_before"]),
                     _human(r["macs_after"]), r.get("note") or ""))
    t = rec["totals"]
    rows.append(("TOTAL", _human(t["params_before"]), _human(t["params_after"]), _human(t["macs_before"]),
                 _human(t["macs_after"]), f"params {_ratio(t['params_before'], t['params_after'])}, "
                                         f"MACs {_ratio(t['macs_before'], t['macs_after'])}"))
    widths = [max(len(str(r[c])) for r in rows) for c in range(5)]
    lines = _header(rec)
    for k, r in enumerate(rows):
        cells = [str(v).ljust(w) if c == 0 else str(v).rjust(w) for c, (v, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells) + ("  " + r[5] if r[5] else ""))
        if k == 0 or k == len(rows) - 2:
            lines.append("-" * (sum(widths) + 2 * len(widths)))
    return "\n".join(lines)
