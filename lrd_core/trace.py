"""The record of one example pass through a model, and the structure read from it.

An adapter runs the model once and reports, in run order, every conv/dense layer call and every
other operation it can see (adds, concatenations, poolings, normalisations, ...) with the identities
and shapes of the tensors it read and wrote, plus the entry and exit of container modules/cells.
:class:`TraceRecorder` turns those reports into a plain-data :class:`Trace`; :class:`Graph` replays
it into a dataflow graph (one node per operation, edges from the producer of each tensor read) and
finds the residual/concatenation blocks of the network (:func:`find_blocks`) and the layers that feed
the model output (:meth:`Graph.final_layers`). :mod:`lrd_core.roles` turns these into roles.

Operations an adapter cannot see are bridged from the innermost enclosing container: a tensor read
with no known producer gets a synthetic producer. Inside the container it reads the latest loose end
(a tensor produced there and not read yet), else the container's inputs. A container output of
unknown origin joins every loose end (and the container's inputs when two or more layers ran in it):
an add of those shaped like the output when there are two or more, a concatenation when their
channels add up, else a generic operation. In-place operations (the same tensor identity written
again) start a new version of the tensor, so run order is all that is needed.
"""
from __future__ import annotations

import contextlib

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

LAYER_KINDS = ("conv2d", "dense")
OP_KINDS = LAYER_KINDS + ("add", "cat", "mul", "pool", "matmul", "attention", "other")
SCOPE_KINDS = ("enter", "exit")
INPUT = 0   #: node index of the model input in a :class:`Graph`

Shape = Tuple[int, ...]

# ---------------------------------------------------------------------------- op kinds
OP_NAMES: Dict[str, str] = {}


def register_op_kind(kind: str, *names: str) -> None:
    """Classify the operations or layer classes called ``names`` (case-insensitive) as ``kind``."""
    if kind not in OP_KINDS:
        raise ValueError(f"unknown op kind {kind!r}; use one of {OP_KINDS}")
    for name in names:
        OP_NAMES[name.lower()] = kind


register_op_kind("add", "add", "add_", "__add__", "__radd__", "__iadd__", "tensoradd", "addn", "add_ext")
register_op_kind("cat", "cat", "concat", "concatenate", "_concat", "cat_ext")
register_op_kind("mul", "mul", "mul_", "__mul__", "__rmul__", "__imul__", "multiply")
register_op_kind("pool", "mean", "reducemean", "adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d",
                 "max_pool2d", "globalavgpooling", "adaptiveavgpool2d")
# products of two activations (attention scores, attention-weighted values) and fused attention (q, k, v in order)
register_op_kind("matmul", "matmul", "__matmul__", "__rmatmul__", "bmm", "batchmatmul", "matmul_ext", "bmm_ext", "einsum")
register_op_kind("attention", "scaled_dot_product_attention", "flashattentionscore", "flash_attention_score")


def classify(op_type: str) -> str:
    """The kind of an operation or layer class name (``Tensor.__add__`` -> ``add``, ``AvgPool2d`` ->
    ``pool``); unknown names are ``other``."""
    key = str(op_type).rsplit(".", 1)[-1].lower()
    if key in OP_NAMES:
        return OP_NAMES[key]
    return "pool" if "pool" in key else "other"


@contextlib.contextmanager
def _nothing():
    yield


# ---------------------------------------------------------------------------- the record
def _tuples(value):
    """Nested lists (as read back from JSON) as nested tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class TraceOp:
    """One event of an example pass.

    ``kind`` is an op kind (:data:`OP_KINDS`) or ``enter``/``exit`` of a container (``inputs`` on
    enter, ``outputs`` on exit). ``name`` is the layer's qualified name for ``conv2d``/``dense``.
    """

    kind: str
    name: str
    inputs: Tuple[int, ...] = ()
    outputs: Tuple[int, ...] = ()
    in_shapes: Tuple[Shape, ...] = ()
    out_shapes: Tuple[Shape, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "TraceOp":
        return cls(**{k: _tuples(v) for k, v in d.items()})


@dataclass
class Trace:
    """Events of one example pass in run order, and the model's input and output tensors."""

    ops: List[TraceOp] = field(default_factory=list)
    inputs: Tuple[int, ...] = ()
    outputs: Tuple[int, ...] = ()
    input_shapes: Tuple[Shape, ...] = ()
    output_shapes: Tuple[Shape, ...] = ()

    def layer_calls(self) -> Dict[str, TraceOp]:
        """The first call of every conv/dense layer, by name."""
        calls: Dict[str, TraceOp] = {}
        for op in self.ops:
            if op.kind in LAYER_KINDS:
                calls.setdefault(op.name, op)
        return calls

    def to_dict(self) -> dict:
        """Plain data (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Trace":
        return cls(ops=[TraceOp.from_dict(o) for o in d["ops"]],
                   **{k: _tuples(v) for k, v in d.items() if k != "ops"})


class TraceRecorder:
    """Collects a :class:`Trace` from an adapter's hooks; keeps every tensor seen alive until
    :meth:`finish` so that identities are not reused during the pass.

    Parameters
    ----------
    is_tensor : callable
        True for an activation tensor (parameters and buffers should give False).
    shape_of : callable
        The shape of such a tensor as a tuple of ints.
    """

    def __init__(self, is_tensor: Callable[[object], bool], shape_of: Callable[[object], Sequence[int]]):
        self._is_tensor, self._shape_of = is_tensor, shape_of
        self._ops: List[TraceOp] = []
        self._alive: list = []
        self._depth = 0
        self._inputs: tuple = ()

    def tensors(self, *objs) -> list:
        """The activation tensors in (nested tuples/lists/dicts of) ``objs``, in order."""
        out: list = []
        stack = list(reversed(objs))
        while stack:
            obj = stack.pop()
            if isinstance(obj, (tuple, list)):
                stack.extend(reversed(obj))
            elif isinstance(obj, dict):
                stack.extend(reversed(list(obj.values())))
            elif obj is not None and self._is_tensor(obj):
                out.append(obj)
        return out

    def _ids(self, objs) -> Tuple[Tuple[int, ...], Tuple[Shape, ...]]:
        ts = self.tensors(objs)
        self._alive.extend(ts)
        return tuple(id(t) for t in ts), tuple(tuple(int(d) for d in self._shape_of(t)) for t in ts)

    @property
    def quiet(self) -> bool:
        """True while inside a recorded operation (its inner calls are not recorded)."""
        return self._depth > 0

    def start(self, inputs) -> None:
        self._inputs = self._ids(inputs)

    def begin(self) -> bool:
        """Call before an operation runs; returns whether it is outermost (and so recorded by :meth:`end`)."""
        self._depth += 1
        return self._depth == 1

    def end(self, outermost: bool, name: str, inputs, outputs, kind: Optional[str] = None,
            op_type: str = "") -> None:
        """Call after the operation returned; records it if ``outermost`` and it wrote a tensor."""
        self._depth = max(0, self._depth - 1)
        if not outermost:
            return
        out_ids, out_shapes = self._ids(outputs)
        if not out_ids:
            return
        in_ids, in_shapes = self._ids(inputs)
        self._ops.append(TraceOp(kind or classify(op_type or name), name, in_ids, out_ids, in_shapes, out_shapes))

    def hooks(self, name: str, kind: Optional[str], leaf: bool, guard: Callable = None):
        """``(pre, post)`` module/cell hooks (``pre(module, args, kwargs)``, ``post(module, args, kwargs,
        output)``) that record one named module: a leaf as an operation, a container as a scope. ``guard()``
        returns a context manager the recording runs in (e.g. pausing a function recorder)."""
        guard = guard or _nothing
        if leaf:
            tokens = []

            def pre(module, args, kwargs):
                tokens.append(self.begin())

            def post(module, args, kwargs, output):
                with guard():
                    self.end(tokens.pop() if tokens else False, name, (args, kwargs), output, kind=kind,
                             op_type=type(module).__name__)
        else:
            def pre(module, args, kwargs):
                with guard():
                    self.enter(name, (args, kwargs))

            def post(module, args, kwargs, output):
                with guard():
                    self.exit(name, output)
        return pre, post

    def enter(self, name: str, inputs) -> None:
        if not self.quiet:
            ids, shapes = self._ids(inputs)
            self._ops.append(TraceOp("enter", name, ids, (), shapes, ()))

    def exit(self, name: str, outputs) -> None:
        if not self.quiet:
            ids, shapes = self._ids(outputs)
            self._ops.append(TraceOp("exit", name, (), ids, (), shapes))

    def finish(self, outputs) -> Trace:
        out_ids, out_shapes = self._ids(outputs)
        trace = Trace(list(self._ops), self._inputs[0], out_ids, self._inputs[1], out_shapes)
        self._alive.clear()
        return trace


# ---------------------------------------------------------------------------- the dataflow graph
@dataclass(frozen=True)
class Node:
    """One operation of the replayed pass; ``parents`` are the producers of the tensors it read."""

    index: int
    kind: str
    name: str
    parents: Tuple[int, ...]
    in_shapes: Tuple[Shape, ...]
    out_shapes: Tuple[Shape, ...]
    synthetic: bool = False

    @property
    def is_layer(self) -> bool:
        return self.kind in LAYER_KINDS and not self.synthetic


@dataclass
class _Frame:
    inputs: List[Tuple[int, int]]                     # (tensor id, producer node) at entry
    produced: List[Tuple[int, int]] = field(default_factory=list)
    layers: int = 0                                   # layer calls seen inside (nested ones too)


def spatial_size(shape: Sequence[int]) -> Optional[int]:
    """H*W of an (N, C, H, W) tensor; None for other ranks (tokens, vectors)."""
    return int(shape[2]) * int(shape[3]) if len(shape) == 4 else None


def _bridge(shapes: Sequence[Shape], out: Shape) -> Tuple[str, List[int]]:
    """Kind of an unseen operation and which candidate sources it reads: an add of the candidates
    shaped like its output when there are two or more, a concatenation when the channels add up,
    else a generic operation reading them all."""
    same = [k for k, s in enumerate(shapes) if tuple(s) == tuple(out)]
    if len(same) >= 2:
        return "add", same
    every = list(range(len(shapes)))
    if len(shapes) >= 2 and all(len(s) == len(out) >= 2 and s[:1] + s[2:] == out[:1] + out[2:] for s in shapes) \
            and sum(s[1] for s in shapes) == out[1]:
        return "cat", every
    return "other", every


class Graph:
    """The dataflow graph of a :class:`Trace`: node 0 is the model input, then one node per
    operation in run order (plus synthetic producers of tensors whose producer was not seen)."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.nodes: List[Node] = [Node(INPUT, "input", "<input>", (), (), tuple(trace.input_shapes))]
        self._producer: Dict[int, int] = {t: INPUT for t in trace.inputs}
        self._consumed: Set[Tuple[int, int]] = set()
        self._frames = [_Frame([(t, INPUT) for t in trace.inputs])]
        self._shapes: Dict[Tuple[int, int], Shape] = {(t, INPUT): tuple(s) for t, s in
                                                      zip(trace.inputs, trace.input_shapes)}
        for op in trace.ops:
            self._replay(op)
        self.output_nodes = tuple(self._resolve(t, s, set(trace.outputs), leaving=True)
                                  for t, s in zip(trace.outputs, trace.output_shapes))
        self._ancestry()

    # -------------------------------------------------------------- replay
    def _add(self, kind, name, parents, in_shapes, out_shapes, synthetic=False) -> int:
        self.nodes.append(Node(len(self.nodes), kind, name, tuple(parents), tuple(in_shapes), tuple(out_shapes),
                               synthetic))
        return len(self.nodes) - 1

    def _produce(self, tid: int, node: int) -> None:
        self._producer[tid] = node
        self._frames[-1].produced.append((tid, node))

    def _resolve(self, tid: int, shape: Shape, exclude: Set[int], leaving: bool = False) -> int:
        """The producer of tensor ``tid``; a synthetic one when it was not seen (see the module doc).

        Inside a container the unseen operation is taken as unary on the latest loose end (else on
        the container's inputs); on leaving it, it joins every loose end, and the inputs too when
        two or more layers ran inside (a residual block, not a conv + activation wrapper).
        """
        node = self._producer.get(tid)
        if node is not None:
            self._consumed.add((tid, node))
            return node
        frame = self._frames[-1]
        loose = [(t, n) for t, n in frame.produced
                 if (t, n) not in self._consumed and t not in exclude and self._producer.get(t) == n]
        inputs = [src for src in frame.inputs if src[0] not in exclude and src not in loose]
        if leaving:
            sources = loose + (inputs if frame.layers >= 2 or not loose else [])
            kind, chosen = _bridge([self._shapes.get(src, ()) for src in sources], shape)
            sources = [sources[k] for k in chosen]
        else:
            kind, sources = "other", loose[-1:] or inputs
        shapes = [self._shapes.get(src, ()) for src in sources]
        node = self._add(kind, "<unseen>", [n for _, n in sources], shapes, [shape], True)
        self._consumed.update(sources)
        self._produce(tid, node)
        self._shapes[(tid, node)] = tuple(shape)
        self._consumed.add((tid, node))
        return node

    def _replay(self, op: TraceOp) -> None:
        exclude = set(op.inputs)
        parents = [self._resolve(t, s, exclude) for t, s in zip(op.inputs, op.in_shapes)]
        if op.kind == "enter":
            self._frames.append(_Frame(list(zip(op.inputs, parents))))
            return
        if op.kind == "exit":
            exclude = set(op.outputs)
            nodes = [self._resolve(t, s, exclude, leaving=True) for t, s in zip(op.outputs, op.out_shapes)]
            if len(self._frames) > 1:
                self._frames.pop()
            for t, n in zip(op.outputs, nodes):
                self._consumed.discard((t, n))
                self._frames[-1].produced.append((t, n))
            return
        node = self._add(op.kind, op.name, parents, op.in_shapes, op.out_shapes)
        if op.kind in LAYER_KINDS:
            for frame in self._frames:
                frame.layers += 1
        for t, s in zip(op.outputs, op.out_shapes):
            self._produce(t, node)
            self._shapes[(t, node)] = tuple(s)

    # -------------------------------------------------------------- queries
    def _ancestry(self) -> None:
        n = len(self.nodes)
        self.live = [False] * n
        self.ancestors = [0] * n
        self.live[INPUT] = True
        self.ancestors[INPUT] = 1
        for node in self.nodes[1:]:
            live_parents = [p for p in node.parents if self.live[p]]
            self.live[node.index] = bool(live_parents)
            mask = 1 << node.index
            for p in live_parents:
                mask |= self.ancestors[p]
            self.ancestors[node.index] = mask
        self.layer_mask = sum(1 << nd.index for nd in self.nodes if nd.is_layer and self.live[nd.index])

    def layer_nodes(self, mask: int) -> List[int]:
        """The layer nodes in a bit mask, in run order."""
        mask &= self.layer_mask
        return [k for k in range(mask.bit_length()) if mask >> k & 1]

    def final_layers(self) -> List[int]:
        """Layer nodes whose output reaches a model output through non-layer operations only."""
        found, seen = set(), set()
        stack = [n for n in self.output_nodes if self.live[n]]
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            if self.nodes[k].is_layer:
                found.add(k)
            else:
                stack.extend(p for p in self.nodes[k].parents if self.live[p])
        return sorted(found)


@dataclass(frozen=True)
class Block:
    """Branches that leave one tensor (produced by node ``fork``) and meet again at node ``merge``.

    ``layers`` are the layer nodes strictly between them; ``shortcut`` is the single conv on the
    lighter branch of an add block (a projection shortcut), None for an identity shortcut or a
    concatenation block; ``out_size`` is the merged tensor's H*W (None when not 4-D).
    """

    fork: int
    merge: int
    kind: str
    layers: Tuple[int, ...]
    shortcut: Optional[int]
    out_size: Optional[int]


def _fork(graph: Graph, parents: Sequence[int]) -> Optional[int]:
    """The latest node every one of ``parents`` descends from (None if there is none)."""
    common = -1
    for p in parents:
        common &= graph.ancestors[p]
    return common.bit_length() - 1 if common > 0 else None


def _block_at(graph: Graph, merge: Node) -> Optional[Block]:
    parents = sorted({p for p in merge.parents if graph.live[p]})
    fork = _fork(graph, parents) if len(parents) >= 2 else None
    if fork is None:
        return None
    branches = [graph.ancestors[p] & ~graph.ancestors[fork] & graph.layer_mask for p in parents]
    every = 0
    for b in branches:
        every |= b
    if not every:
        return None
    shortcut = None
    if merge.kind == "add" and len(branches) == 2:
        counts = [bin(b).count("1") for b in branches]
        light, heavy = sorted((0, 1), key=lambda k: counts[k])
        if counts[light] == 1 and counts[heavy] > 1:
            node = graph.layer_nodes(branches[light])[0]
            shortcut = node if graph.nodes[node].kind == "conv2d" else None
    out_size = spatial_size(merge.out_shapes[0]) if merge.out_shapes else None
    return Block(fork, merge.index, merge.kind, tuple(graph.layer_nodes(every)), shortcut, out_size)


def find_blocks(graph: Graph) -> List[Block]:
    """Every add/concatenation whose inputs come from branches of one tensor with at least one
    layer between, in run order of the merge."""
    found = (_block_at(graph, n) for n in graph.nodes[1:] if n.kind in ("add", "cat") and graph.live[n.index])
    return [b for b in found if b is not None]


def find_gate_layers(graph: Graph) -> Set[int]:
    """Layer nodes on gating branches: a branch that leaves a tensor, runs its layers on something
    smaller (pooled channels or a spatial map) and multiplies the tensor with the result
    (squeeze-and-excitation, CBAM, attention maps)."""
    gates: Set[int] = set()
    for node in graph.nodes[1:]:
        parents = sorted({p for p in node.parents if graph.live[p]})
        if node.kind != "mul" or not graph.live[node.index] or not node.out_shapes or len(parents) != 2:
            continue
        fork = _fork(graph, parents)
        if fork is None:
            continue
        full = math.prod(node.out_shapes[0])
        branches = [graph.layer_nodes(graph.ancestors[p] & ~graph.ancestors[fork]) for p in parents]
        smallest = [min((math.prod(graph.nodes[k].in_shapes[0]) for k in b if graph.nodes[k].in_shapes),
                        default=full) for b in branches]
        if min(smallest) < full and smallest[0] != smallest[1]:
            gates.update(branches[smallest.index(min(smallest))])
    return gates


def output_size(graph: Graph, node: int) -> Optional[int]:
    """H*W of a node's first output; None for dense layers and other non-4-D outputs."""
    shapes = graph.nodes[node].out_shapes
    return spatial_size(shapes[0]) if shapes else None


def run_with_input_hooks(run: Callable[[], object], modules: Dict[str, object], register: Callable,
                         to_numpy: Callable, sink: Callable) -> object:
    """Call ``run()`` with a pre-hook on every module of ``modules`` (``{name: module}``) handing its first
    input to ``sink(name, float32 array)``; ``register(module, hook) -> handle`` (with ``handle.remove()``)
    is the framework's pre-hook registration. The hooks are removed even on error."""
    import numpy as np

    def hook_for(name):
        def hook(module, inputs):
            sink(name, np.asarray(to_numpy(inputs[0]), dtype=np.float32))
        return hook

    handles = [register(m, hook_for(n)) for n, m in modules.items()]
    try:
        return run()
    finally:
        for h in handles:
            h.remove()
