"""Transformer roles from a traced example pass: attention projections, MLP layers, block indices.

Read from the dataflow graph of :mod:`lrd_core.trace` (``matmul`` and ``attention`` operations must be
recorded; both adapters do), not from names:

- an *attention score* product is a ``matmul`` of two activations neither of which comes from another
  such product; the nearest layers upstream of its first operand are the *query* projections, of its
  second the *key* projections;
- an *attention-weighted value* product is a ``matmul`` one of whose operands descends from a score
  product (through softmax, scaling, dropout); the nearest layers upstream of the other operand are
  the *value* projections; a fused attention operation (``scaled_dot_product_attention``) reads query,
  key and value in that order;
- the nearest layers downstream of the value product (or the fused operation) are the *output
  projections* (``proj``);
- one layer feeding several of query/key/value is a packed projection (``part`` ``qkv``, ``kv``, ...);
- a residual branch (an add block of :func:`lrd_core.trace.find_blocks`) without attention whose
  dense layers read (batch, tokens, features) inputs is an *MLP*: its dense layers are ``fc1``,
  ``fc2``, ... in run order;
- *transformer blocks* are counted from 1 in run order: a residual branch with attention starts a
  block, an MLP branch belongs to the attention before it (else it starts one).

Searches stay inside the residual branch that holds the product, so a missing projection is never
taken from a neighbouring block. :func:`roles_from_names` is the fallback for layers that did not
run and for models without a trace.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .layers import Role
from .trace import Block, Graph, find_blocks, find_gate_layers

ATTN, MLP = "attn", "mlp"
KINDS = (ATTN, MLP)
QKV = "qkv"


# ---------------------------------------------------------------------------- graph helpers
def _children(graph: Graph) -> List[List[int]]:
    out: List[List[int]] = [[] for _ in graph.nodes]
    for node in graph.nodes[1:]:
        for p in set(node.parents):
            out[p].append(node.index)
    return out


def _inside(graph: Graph, block: Optional[Block], k: int) -> bool:
    """Node ``k`` lies strictly between the block's fork and merge (always True without a block)."""
    if block is None:
        return True
    return k != block.fork and bool(graph.ancestors[k] >> block.fork & 1) and bool(
        graph.ancestors[block.merge] >> k & 1) and k != block.merge


def _enclosing(graph: Graph, blocks: Sequence[Block], k: int) -> Optional[Block]:
    """The innermost add block whose branches hold node ``k``."""
    found = [b for b in blocks if b.kind == "add" and _inside(graph, b, k)]
    return min(found, key=lambda b: b.merge - b.fork) if found else None


def _upstream(graph: Graph, start: int, block: Optional[Block], products: Set[int]) -> Tuple[Set[int], bool]:
    """Nearest live layer nodes above ``start`` (itself included), and whether a product was reached."""
    layers, hit, seen, stack = set(), False, set(), [start]
    while stack:
        k = stack.pop()
        if k in seen or not graph.live[k] or not _inside(graph, block, k):
            continue
        seen.add(k)
        node = graph.nodes[k]
        if node.is_layer:
            layers.add(k)
        elif k in products:
            hit = True
        else:
            stack.extend(node.parents)
    return layers, hit


def _downstream(graph: Graph, children, start: int, block: Optional[Block]) -> Set[int]:
    """Nearest live layer nodes below ``start``, not past a merge when there is no enclosing block."""
    layers, seen, stack = set(), set(), list(children[start])
    while stack:
        k = stack.pop()
        if k in seen or not graph.live[k] or not _inside(graph, block, k):
            continue
        seen.add(k)
        node = graph.nodes[k]
        if node.is_layer:
            layers.add(k)
        elif block is not None or node.kind not in ("add", "cat"):
            stack.extend(children[k])
    return layers


def _operands(graph: Graph, node) -> List[int]:
    return [p for p in node.parents if graph.live[p]]


# ---------------------------------------------------------------------------- attention
def attention_parts(graph: Graph, blocks: Sequence[Block]) -> Dict[int, Set[str]]:
    """``{layer node: {"q", "k", "v", "proj"}}`` of every attention found in the graph."""
    products = {n.index for n in graph.nodes[1:] if n.kind == "matmul" and graph.live[n.index]
                and len(_operands(graph, n)) == 2}
    children = _children(graph)
    parts: Dict[int, Set[str]] = {}

    def mark(nodes, letter):
        for k in nodes:
            parts.setdefault(k, set()).add(letter)

    scores = set()
    for k in sorted(products):
        block = _enclosing(graph, blocks, k)
        ups = [_upstream(graph, p, block, products - {k}) for p in _operands(graph, graph.nodes[k])]
        if not any(hit for _, hit in ups):
            scores.add(k)
            mark(ups[0][0], "q")
            mark(ups[1][0], "k")
    for k in sorted(products - scores):
        block = _enclosing(graph, blocks, k)
        ups = [_upstream(graph, p, block, scores) for p in _operands(graph, graph.nodes[k])]
        hits = [hit for _, hit in ups]
        if sum(hits) != 1:
            continue
        values = ups[hits.index(False)][0]
        if values:
            mark(values, "v")
            mark(_downstream(graph, children, k, block), "proj")
    for node in graph.nodes[1:]:
        if node.kind != "attention" or not graph.live[node.index]:
            continue
        block = _enclosing(graph, blocks, node.index)
        ops = _operands(graph, node)
        for p, letter in zip(ops[:3], QKV):
            mark(_upstream(graph, p, block, set())[0], letter)
        if len(ops) >= 3:
            mark(_downstream(graph, children, node.index, block), "proj")
    return parts


def _part_name(letters: Set[str]) -> str:
    qkv = "".join(c for c in QKV if c in letters)
    return qkv if qkv else "proj"


# ---------------------------------------------------------------------------- MLP and blocks
def _token_dense(graph: Graph, k: int) -> bool:
    node = graph.nodes[k]
    return node.kind == "dense" and bool(node.in_shapes) and len(node.in_shapes[0]) >= 3


def transformer_roles(graph: Graph, nodes: Dict[str, int], roles: Dict[str, Role]) -> Dict[str, Role]:
    """``roles`` with ``kind``, ``part``, ``block_index`` and ``num_blocks`` set where the graph shows
    attention and MLP branches (unchanged for a network without them).

    Parameters
    ----------
    graph : Graph
    nodes : dict
        ``{layer name: node index}`` of the layers that ran.
    roles : dict
        ``{layer name: Role}`` from the structural inference.
    """
    blocks = find_blocks(graph)
    attn = attention_parts(graph, blocks)
    gates = find_gate_layers(graph)
    names = {k: n for n, k in nodes.items()}
    found: Dict[int, Tuple[str, str]] = {k: (ATTN, _part_name(v)) for k, v in attn.items() if k in names}
    units: List[Tuple[int, str, List[int]]] = []
    for b in sorted((b for b in blocks if b.kind == "add"), key=lambda b: b.merge):
        inner = [k for k in b.layers if k in names]
        if any(k in members for _, _, members in units for k in inner):
            continue                                   # an outer residual around earlier branches
        if any(k in attn for k in inner):
            units.append((b.merge, ATTN, [k for k in inner if k in attn]))
            continue
        dense = [k for k in inner if _token_dense(graph, k) and k not in gates and k not in found]
        if dense and not any(_inside(graph, b, j) for j in attn):
            for i, k in enumerate(sorted(dense), 1):
                found[k] = (MLP, f"fc{i}")
            units.append((b.merge, MLP, dense))
    index: Dict[int, int] = {}
    count, previous = 0, None
    for _, kind, members in units:
        if kind == ATTN or previous != ATTN:
            count += 1
        previous = kind
        for k in members:
            index.setdefault(k, count)
    if not found:
        return dict(roles)
    out = dict(roles)
    for name, role in roles.items():
        k = nodes.get(name)
        kind, part = found.get(k, (None, None))
        out[name] = dataclasses.replace(role, kind=kind, part=part, block_index=index.get(k) if kind else None,
                                        num_blocks=count or None)
    return out


# ---------------------------------------------------------------------------- name rules (fallback)
_BLOCK = re.compile(r"(?:^|\.)(?:blocks?|layers?|encoder_layers?|h|resblocks)\.(\d+)\.")
_ATTN_SCOPES = {"attn", "attention", "self_attn", "self_attention", "mha", "msa"}
_MLP_SCOPES = {"mlp", "ffn", "ff", "feed_forward", "feedforward"}
_ATTN_PARTS = {"q": "q", "query": "q", "q_proj": "q", "k": "k", "key": "k", "k_proj": "k", "v": "v",
               "value": "v", "v_proj": "v", "qkv": "qkv", "in_proj": "qkv", "kv": "kv", "proj": "proj",
               "out_proj": "proj", "o_proj": "proj", "out": "proj", "dense": "proj"}
_MLP_PARTS = {"fc1": "fc1", "fc2": "fc2", "linear1": "fc1", "linear2": "fc2", "0": "fc1", "2": "fc2",
              "3": "fc2", "up_proj": "fc1", "down_proj": "fc2", "w1": "fc1", "w2": "fc2"}


def role_from_name(name: str) -> Tuple[Optional[str], Optional[str], Optional[int]]:
    """``(kind, part, block_index)`` of a dense layer from its qualified name alone (None when unknown)."""
    parts = name.split(".")
    m = _BLOCK.search(name)
    block = int(m.group(1)) + 1 if m else None
    scopes = set(parts[:-1])
    if scopes & _ATTN_SCOPES and parts[-1] in _ATTN_PARTS:
        return ATTN, _ATTN_PARTS[parts[-1]], block
    if scopes & _MLP_SCOPES and parts[-1] in _MLP_PARTS:
        return MLP, _MLP_PARTS[parts[-1]], block
    return None, None, None


def roles_from_names(roles: Dict[str, Role], layers: Sequence[Tuple[str, str]],
                     only: Optional[Set[str]] = None) -> Dict[str, Role]:
    """``roles`` with transformer fields from names for the dense layers in ``only`` (default: all)
    that have no kind yet; ``num_blocks`` is kept when set, else the highest block index named."""
    out = dict(roles)
    named = {}
    for name, kind in layers:
        if kind != "dense" or (only is not None and name not in only) or roles[name].kind is not None:
            continue
        found = role_from_name(name)
        if found[0] is not None:
            named[name] = found
    if not named:
        return out
    count = next((r.num_blocks for r in roles.values() if r.num_blocks), None) or max(
        (b for _, _, b in named.values() if b is not None), default=None)
    for name, (kind, part, block) in named.items():
        out[name] = dataclasses.replace(out[name], kind=kind, part=part, block_index=block, num_blocks=count)
    return out
