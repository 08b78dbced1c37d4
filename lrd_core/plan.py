"""The plan: which layers are decomposed, how, at what ranks, and what it costs. JSON round-trip."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .config import PlanConfig
from .errors import MismatchError
from .layers import LayerInfo

PLAN_VERSION = 1


@dataclass
class LayerPlan:
    """The decision for one conv/dense layer. ``method == 'none'`` means left as it is."""

    info: LayerInfo
    selected: bool
    method: str = "none"
    ranks: Optional[Tuple[int, ...]] = None
    reason: Optional[str] = None
    note: Optional[str] = None
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    cp: Optional[Dict[str, List[float]]] = None   #: CP layers: {"error": [before, after EPC], "sensitivity": [...]}
    data_aware: bool = False                      #: factors from calibration statistics (lrd_core.factorize.aware)
    calibration: Optional[Dict] = None            #: data-aware layers: statistics kind, floor report, output errors
    weight_error: Optional[float] = None          #: ||W - W_hat|| / ||W|| of the planned factors (SVD, Tucker-2)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def decomposed(self) -> bool:
        return self.method != "none"

    def to_dict(self) -> dict:
        out = {"name": self.info.name, "kind": self.info.kind, "selected": bool(self.selected),
               "method": self.method, "ranks": None if self.ranks is None else [int(r) for r in self.ranks],
               "reason": self.reason, "note": self.note,
               "params_before": int(self.params_before), "params_after": int(self.params_after),
               "macs_before": int(self.macs_before), "macs_after": int(self.macs_after),
               "info": self.info.to_dict()}
        if self.weight_error is not None:
            out["weight_error"] = float(self.weight_error)
        if self.cp is not None:
            out["cp"] = {k: [float(v) for v in vals] for k, vals in self.cp.items()}
        if self.data_aware:
            out["data_aware"] = True
            if self.calibration is not None:
                out["calibration"] = dict(self.calibration)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "LayerPlan":
        return cls(info=LayerInfo.from_dict(d["info"]), selected=d["selected"], method=d["method"],
                   ranks=None if d.get("ranks") is None else tuple(int(r) for r in d["ranks"]),
                   reason=d.get("reason"), note=d.get("note"),
                   params_before=d["params_before"], params_after=d["params_after"],
                   macs_before=d["macs_before"], macs_after=d["macs_after"], cp=d.get("cp"),
                   data_aware=bool(d.get("data_aware", False)), calibration=d.get("calibration"),
                   weight_error=d.get("weight_error"))


@dataclass
class Plan:
    """Per-layer decisions plus the config that made them. ``meta`` holds free-form context
    (model name, input shape, framework, stage of a multi-stage run, measured latencies)."""

    config: PlanConfig
    layers: List[LayerPlan]
    meta: Dict = field(default_factory=dict)
    version: int = PLAN_VERSION
    #: In memory only (never written): the calibration statistics and factor chains of data-aware
    #: layers (:class:`lrd_core.api.calibration.Calibration`), reused by ``compress`` in the same process.
    calibration: Optional[object] = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ queries
    def __getitem__(self, name: str) -> LayerPlan:
        for lp in self.layers:
            if lp.name == name:
                return lp
        raise KeyError(name)

    def decomposed(self) -> List[LayerPlan]:
        return [lp for lp in self.layers if lp.decomposed]

    @property
    def totals(self) -> Dict[str, int]:
        return {key: int(sum(getattr(lp, key) for lp in self.layers))
                for key in ("params_before", "params_after", "macs_before", "macs_after")}

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {"version": self.version, "config": self.config.to_dict(), "meta": self.meta,
                "layers": [lp.to_dict() for lp in self.layers], "totals": self.totals}

    def to_json(self, path: str, inputs=()) -> str:
        """Write atomically (temp file + rename; never over one of ``inputs``); returns the path."""
        from .io import atomic_file

        with atomic_file(path, suffix=".json", inputs=inputs) as tmp:
            with open(tmp, "w") as fh:
                json.dump(self.to_dict(), fh, indent=1)
                fh.write("\n")
        return os.fspath(path)

    @classmethod
    def from_dict(cls, d: dict, source: str = "plan") -> "Plan":
        """Build a plan from its JSON object, validated (:mod:`lrd_core.validate`: schema, methods, ranks,
        geometry); every layer's params/MACs are recomputed, never read from ``d``."""
        from . import validate

        validate.plan_dict(d, source)
        plan = cls(config=validate.plan_config(d["config"], source),
                   layers=[LayerPlan.from_dict(x) for x in d["layers"]],
                   meta=dict(d.get("meta", {})), version=d["version"])
        validate.check_plan(plan, source)
        return validate.recompute_costs(plan)

    @classmethod
    def from_json(cls, path: str) -> "Plan":
        try:
            with open(path) as fh:
                d = json.load(fh)
        except ValueError as exc:                     # also UnicodeDecodeError of a binary file
            first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise MismatchError(f"{path} is not a plan JSON file ({first})") from None
        except IsADirectoryError:
            raise MismatchError(f"plan {path} is a folder, not a plan.json file") from None
        except FileNotFoundError:
            raise MismatchError(f"plan file {path} does not exist; make one with `lrd plan`") from None
        except OSError as exc:
            raise MismatchError(f"cannot read plan {path}: {exc.strerror or exc}") from None
        return cls.from_dict(d, source=os.fspath(path))

    # ------------------------------------------------------------------ display
    def summary(self, all_layers: bool = True) -> str:
        """A table of every layer (or only decomposed ones) with params/MACs before and after."""
        rows = [("layer", "shape", "method", "ranks", "params", "->", "MACs", "->", "err", "note")]
        for lp in self.layers:
            if not all_layers and not lp.decomposed:
                continue
            i = lp.info
            shape = f"{i.in_channels}->{i.out_channels}" + (
                f" {i.kernel[0]}x{i.kernel[1]}/{i.stride[0]}" if i.kind == "conv2d" else " fc")
            why = lp.reason or lp.note or ""
            rows.append((lp.name, shape, lp.method, "x".join(map(str, lp.ranks)) if lp.decomposed else "-",
                         _human(lp.params_before), _human(lp.params_after),
                         _human(lp.macs_before), _human(lp.macs_after), error_cell(lp), why))
        t = self.totals
        n_dec = len(self.decomposed())
        rows.append(("TOTAL", f"{n_dec}/{len(self.layers)} decomposed", "", "",
                     _human(t["params_before"]), _human(t["params_after"]),
                     _human(t["macs_before"]), _human(t["macs_after"]), "",
                     f"conv+dense params {_ratio(t['params_before'], t['params_after'])}, "
                     f"MACs {_ratio(t['macs_before'], t['macs_after'])}"))
        widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]) - 1)]
        lines = []
        for k, r in enumerate(rows):
            cells = [str(v).ljust(w) if c < 4 else str(v).rjust(w) for c, (v, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells) + ("  " + r[-1] if r[-1] else ""))
            if k == 0 or k == len(rows) - 2:
                lines.append("-" * min(120, sum(widths) + 2 * len(widths)))
        lines.append("params and MACs count conv and dense layers only (no norms, biases of other layers, embeddings); "
                     "err = relative weight error ||W - W'||/||W|| (out: output error on calibration data)")
        lines += skipped_footer(self.layers)
        return "\n".join(lines)


def error_cell(lp: LayerPlan) -> str:
    """``0.123`` (relative weight error) and ``out 0.045`` (output error, data-aware layers); ``-`` if unknown."""
    parts = []
    if lp.decomposed and lp.weight_error is not None:
        parts.append(f"{lp.weight_error:.3f}")
    elif lp.decomposed and lp.cp and lp.cp.get("error"):
        parts.append(f"{float(lp.cp['error'][-1]):.3f}")
    out = (lp.calibration or {}).get("output_error") if lp.decomposed else None
    if out is not None:
        parts.append(f"out {float(out):.3f}")
    return " ".join(parts) or "-"


def skipped_footer(layers) -> List[str]:
    """``skipped: 3 layers`` and one line per reason (layer names abbreviated) for layers left as they are."""
    groups: Dict[str, List[str]] = {}
    for lp in layers:
        if not lp.decomposed:
            groups.setdefault(lp.reason or "not selected", []).append(lp.name)
    if not groups:
        return []
    out = [f"skipped: {sum(len(v) for v in groups.values())} layers"]
    for reason, names in groups.items():
        shown = ", ".join(names[:4]) + (f", ... (+{len(names) - 4})" if len(names) > 4 else "")
        out.append(f"  {reason}: {shown}")
    return out


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def _ratio(before: int, after: int) -> str:
    return f"{before / after:.2f}x" if after else "inf"
