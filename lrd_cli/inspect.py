"""``lrd inspect``: the conv/dense layers of a model, their roles and the modes that pick them."""
from __future__ import annotations

from lrd_core.modes import FIXED_MODES, MODES, TRANSFORMER_MODES

from .common import add_model_args, build_model, input_shape
from lrd_core.frameworks import adapter


def add(sub) -> None:
    p = sub.add_parser("inspect", help="list the conv/dense layers, their roles and the modes that pick them")
    add_model_args(p, checkpoint=False)
    p.set_defaults(func=run)


def run(args) -> int:
    fw = adapter(args.framework)
    model = build_model(fw, args)
    layers = fw.inspect(model, input_shape=input_shape(args, fw=fw))
    modes = list(FIXED_MODES)
    if any(l.role.kind for l in layers):
        modes += list(TRANSFORMER_MODES)
    header = ["layer", "kind", "in->out", "kernel/stride", "input", "stage/block", "role"] + modes
    rows, notes = [], []
    for l in layers:
        role = "stem" if l.role.is_stem else "shortcut" if l.role.is_downsample else \
            "final dense" if l.role.is_final_dense else ""
        if l.role.kind:
            role = f"{l.role.kind} {l.role.part or ''}".strip() + (" packed" if l.role.is_packed else "")
        if l.groups != 1:
            role = (role + " grouped").strip()
        if l.unsupported:
            role = (role + " not decomposable").strip()
            notes.append(f"  {l.name}: {l.unsupported}")
        size = f"{l.input_hw[0]}x{l.input_hw[1]}" if l.kind == "conv2d" else \
            (f"{l.tokens} tokens" if l.tokens > 1 else "-")
        rows.append([l.name, l.kind, f"{l.in_channels}->{l.out_channels}",
                     f"{l.kernel[0]}x{l.kernel[1]}/{l.stride[0]}" if l.kind == "conv2d" else "-",
                     size, _where(l.role), role]
                    + ["x" if MODES[m](l) else "." for m in modes])
    counts = ["", "", "", "", "", "", "selected:"] + [str(sum(MODES[m](l) for l in layers)) for m in modes]
    print("roles come from the traced structure (stem, stages, shortcut convs, final dense, attention and MLP "
          "layers of transformer blocks); override them with `lrd plan --role`")
    if notes:
        print("not decomposable:\n" + "\n".join(notes))
    widths = [max(len(r[c]) for r in [header] + rows + [counts]) for c in range(len(header))]
    for r in [header] + rows + [counts]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _where(role) -> str:
    """``stage`` for CNN layers, ``b<k>`` for layers of transformer block k, ``-`` outside."""
    if role.block_index is not None:
        return f"b{role.block_index}"
    return "-" if role.stage is None else str(role.stage)
