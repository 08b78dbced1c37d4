"""Repairs of ONNX files written by ``mindspore.onnx.export`` (MindSpore 2.10).

The exporter copies a Conv2D's ``pad_list`` (top, bottom, left, right) into the ONNX ``pads`` attribute,
whose order is (top, left, bottom, right): any conv whose height and width padding differ (the Kx1 /
1xK depthwise convs of a CP-4 chain, padding (1, 1, 0, 0)) came out with the wrong output size.
:func:`fix_conv_pads` rewrites the attribute; convs with equal padding on all sides are unchanged.
"""
from __future__ import annotations


def fix_conv_pads(path: str) -> int:
    """Reorder the ``pads`` of every Conv node of the ONNX file at ``path`` in place; returns how many changed."""
    import onnx

    proto = onnx.load(path)
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        for attr in node.attribute:
            if attr.name == "pads" and len(attr.ints) == 4:
                top, bottom, left, right = attr.ints
                if (top, bottom, left, right) != (top, left, bottom, right):
                    attr.ints[:] = [top, left, bottom, right]
                    changed += 1
    if changed:
        onnx.save(proto, path)
    return changed
