"""The MindSpore backend: the framework primitives :mod:`lrd_core.api` is written against.

MindSpore pitfalls handled here: inside a ``SequentialCell`` only ``seq[i] = new`` takes effect;
parameter names go stale after a swap (checkpoints would drop keys, optimizers see duplicates), so
they are refreshed; a GRAPH-mode network compiled before a swap keeps running its old graph (the
compile cache is keyed by the cell's creation time and id), so every cell on the path gets a fresh
creation time; BatchNorm parameters are renamed to torch's names (:mod:`lrd_mindspore.naming`);
timing runs in GRAPH mode (3-4x faster than PyNative for a train step).
"""
from __future__ import annotations

from . import _env  # noqa: F401  (oneDNN ISA cap before mindspore loads)

import contextlib  # noqa: E402
import copy  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import nn, ops  # noqa: E402

from lrd_core.errors import DeviceError, ExportError, MismatchError, UnsupportedLayerError  # noqa: E402
from lrd_core.layers import SubLayer  # noqa: E402

from lrd_core.trace import run_with_input_hooks  # noqa: E402

from .combine import Combine  # noqa: E402
from .trace import layer_kind, record  # noqa: E402
from .onnx_fix import fix_conv_pads  # noqa: E402
from .naming import mindspore_to_torch, mindspore_to_torch_names, torch_to_mindspore  # noqa: E402
from .portable import portable  # noqa: E402

_TARGETS = {"CPU": "CPU", "GPU": "GPU", "CUDA": "GPU", "ASCEND": "Ascend"}
_HOW = {"Ascend": "on an Ascend 910 host with CANN and the Ascend build of mindspore installed",
        "GPU": "on an NVIDIA GPU host with the GPU (CUDA) build of mindspore installed"}
_STATS = ("running_mean", "running_var")
# Training checkpoints also carry optimizer/loop state; those are not network weights.
_NOT_WEIGHTS = ("moments.", "accum.", "learning_rate", "global_step", "momentum", "scale_sense",
                "current_iterator_step", "last_overflow_iterator_step", "epoch_num", "step_num", "beta1_power",
                "beta2_power", "adam_m.", "adam_v.", "loss_scale")


class _Head(nn.Cell):
    """Returns one element of the output, so that reading it waits for the whole network cheaply."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        return self.net(x).reshape(-1)[0:1]


class _SumLoss(nn.Cell):
    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x):
        return self.net(x).sum()


class _LayerStep(nn.Cell):
    """Forward, gradients of the weights and of the input (as inside a network), momentum update."""

    def __init__(self, net, opt):
        super().__init__(auto_prefix=False)
        self.loss = _SumLoss(net)
        self.opt = opt
        self.weights = opt.parameters
        self.grad = ops.GradOperation(get_all=True, get_by_list=True)

    def construct(self, x):
        loss = self.loss(x)
        grads = self.grad(self.loss, self.weights)(x)
        self.opt(grads[1])
        return loss


def _unique_names(cell: nn.Cell, prefix: str = "") -> nn.Cell:
    for name, p in cell.parameters_and_names():
        p.name = prefix + name
    return cell


def _compiled(fn, cell: nn.Cell, owned: bool = True):
    """``fn`` tagged with the cell it compiles (``owned``: a training cell built for this runner alone)."""
    fn.lrd_cell, fn.lrd_owned = cell, owned
    return fn


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _unsupported(c: nn.Cell, base: type) -> Optional[str]:
    if type(c).construct is not base.construct:
        return (f"{type(c).__name__} overrides {base.__name__}.construct: a chain of plain layers would not "
                f"compute the same thing")
    if isinstance(c, nn.Conv2d):
        if getattr(c, "data_format", "NCHW") != "NCHW":
            return f"data_format={c.data_format!r}: only NCHW convolutions are rebuilt"
        if getattr(c, "padding_mode", "zeros") not in (None, "zeros"):
            return f"padding_mode={c.padding_mode!r}: only zero padding can be rebuilt as a factor chain"
    if isinstance(c, nn.Dense) and getattr(c, "activation_flag", False):
        return "Dense with a fused activation: move the activation out of the Dense to decompose it"
    return None


def geometry(c: nn.Cell) -> dict:
    """The layer's kind, channels, kernel, stride, padding, dilation, groups and bias."""
    if isinstance(c, nn.Conv2d):
        padding = c.padding if c.pad_mode == "pad" else c.pad_mode
        return {"kind": "conv2d", "in_channels": c.in_channels, "out_channels": c.out_channels,
                "kernel": _pair(c.kernel_size), "stride": _pair(c.stride), "padding": padding,
                "dilation": _pair(c.dilation), "groups": c.group, "has_bias": bool(c.has_bias),
                "unsupported": _unsupported(c, nn.Conv2d)}
    return {"kind": "dense", "in_channels": c.in_channels, "out_channels": c.out_channels,
            "has_bias": bool(c.has_bias), "unsupported": _unsupported(c, nn.Dense)}


class MindSporeBackend:
    """MindSpore primitives (see :class:`lrd_core.backend.Backend`)."""

    name = "mindspore"
    version = ms.__version__
    model_type = nn.Cell
    export_formats = ("MINDIR", "ONNX")
    checkpoint_suffixes = (".ckpt",)

    # ------------------------------------------------------------------ structure
    def record(self, model: nn.Cell, example):
        if not isinstance(example, ms.Tensor):
            example = ms.Tensor(np.zeros(tuple(example), np.float32))
        return record(model, example)

    def named_layers(self, model: nn.Cell):
        return [(n, c) for n, c in model.cells_and_names() if n and layer_kind(c) is not None]

    def geometry(self, layer: nn.Cell) -> dict:
        return geometry(layer)

    def weight(self, layer: nn.Cell) -> np.ndarray:
        return layer.weight.asnumpy().astype(np.float32, copy=True)

    def bias(self, layer: nn.Cell) -> Optional[np.ndarray]:
        return layer.bias.asnumpy().astype(np.float32, copy=True) if layer.has_bias else None

    @staticmethod
    def _cell(sub: SubLayer) -> nn.Cell:
        w = ms.Tensor(np.ascontiguousarray(sub.weight, dtype=np.float32))
        b = ms.Tensor(np.ascontiguousarray(sub.bias, dtype=np.float32)) if sub.has_bias else "zeros"
        if sub.kind == "dense":
            return nn.Dense(sub.weight.shape[1], sub.weight.shape[0], weight_init=w, bias_init=b,
                            has_bias=sub.has_bias)
        if sub.kind == "conv2d":
            return nn.Conv2d(sub.in_channels, sub.out_channels, sub.kernel, stride=sub.stride, pad_mode="pad",
                             padding=tuple(int(p) for p in sub.padding), dilation=sub.dilation, group=sub.groups,
                             has_bias=sub.has_bias, weight_init=w, bias_init=b)
        if sub.kind == "combine":
            return Combine.from_sub(sub)
        raise UnsupportedLayerError(f"MindSpore cannot build a {sub.kind!r} sublayer")

    def build(self, subs: Sequence[SubLayer], like: Optional[nn.Cell] = None) -> nn.SequentialCell:
        if like is not None and isinstance(like, nn.Dense) and getattr(like, "activation_flag", False):
            raise UnsupportedLayerError("Dense layers with a fused activation are not supported; "
                                        "move the activation out of the Dense")
        seq = nn.SequentialCell([self._cell(s) for s in subs])
        if like is not None:
            seq.set_train(like.training)
        return seq

    def replace(self, model: nn.Cell, name: str, new: nn.Cell) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = dict(model.cells_and_names())[parent_name] if parent_name else model
        if isinstance(parent, nn.SequentialCell) and child.isdigit():
            parent[int(child)] = new
        else:
            setattr(parent, child, new)
        new.update_parameters_name(name + ".")
        invalidate_graphs(model, name)

    # ------------------------------------------------------------------ state
    def tensors(self, model: nn.Cell) -> Dict[str, ms.Parameter]:
        # names from the cell tree (not Parameter.name, which may be stale after a swap)
        params = dict(model.parameters_and_names())
        return {t: params[m] for m, t in mindspore_to_torch_names(params).items()}

    def parameters(self, model: nn.Cell) -> Dict[str, ms.Parameter]:
        # running statistics and integer tensors (a combine layer's index) are buffers, as in torch
        return {k: p for k, p in self.tensors(model).items()
                if not k.endswith(_STATS) and np.dtype(ms.dtype_to_nptype(p.dtype)).kind == "f"}

    def to_numpy(self, tensor) -> np.ndarray:
        return np.array(tensor.asnumpy(), copy=True)

    def assign(self, tensor, value: np.ndarray) -> None:
        tensor.set_data(ms.Tensor(np.ascontiguousarray(value, dtype=ms.dtype_to_nptype(tensor.dtype))))

    def set_trainable(self, parameter, flag: bool) -> None:
        parameter.requires_grad = bool(flag)

    def is_trainable(self, parameter) -> bool:
        return bool(parameter.requires_grad)

    def copy(self, model: nn.Cell) -> nn.Cell:
        return _unique_names(copy.deepcopy(model))

    # ------------------------------------------------------------------ checkpoint files
    def read_native(self, path: str) -> Dict[str, np.ndarray]:
        try:
            params = ms.load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure means "not a checkpoint"
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise MismatchError(f"{path} is not a MindSpore checkpoint ({type(exc).__name__}: {first})") from None
        arrays = {k: v.asnumpy() for k, v in params.items() if not k.startswith(_NOT_WEIGHTS)}
        return mindspore_to_torch(arrays)

    def write_native(self, arrays: Dict[str, np.ndarray], path: str) -> None:
        items = [{"name": k, "data": ms.Tensor(np.array(v, copy=True, order="C"))}
                 for k, v in torch_to_mindspore(arrays).items()]
        ms.save_checkpoint(items, path)

    # ------------------------------------------------------------------ running and timing
    def check_device(self, device: str = "CPU") -> str:
        target = _TARGETS.get(str(device).upper())
        if target is None:
            raise DeviceError(f"unknown device {device!r}; use CPU, GPU or Ascend")
        if target != "CPU" and not ms.hal.is_available(target):
            raise DeviceError(f"MindSpore {ms.__version__} here has no {target} backend (no device or a CPU-only "
                              f"package); run {_HOW[target]}, or use --device CPU")
        current = ms.get_current_device().device_target
        if current != target:
            try:
                ms.set_device(target)
            except RuntimeError as exc:
                raise DeviceError(f"cannot switch MindSpore from {current} to {target} in this process ({exc}); "
                                  f"call mindspore.set_device({target!r}) before anything else runs") from None
        return target

    @contextlib.contextmanager
    def timing_scope(self, threads: Optional[int] = None):
        """GRAPH mode inside the block; CPU kernel threads are set once per process (MindSpore's rule)."""
        from mindspore._c_expression import RuntimeConf

        conf = RuntimeConf.get_instance()
        if threads and not conf.is_op_threads_num_configured():
            ms.device_context.cpu.op_tuning.threads_num(int(threads))
            self._threads_set = int(threads)
        getter = getattr(conf, "get_op_threads_num", None)     # not in every 2.10 build
        configured = getter() if getter is not None else getattr(self, "_threads_set", None)
        used = configured if conf.is_op_threads_num_configured() and configured else (os.cpu_count() or 1)
        previous = ms.get_context("mode")
        ms.set_context(mode=ms.GRAPH_MODE)
        try:
            yield int(used)
        finally:
            ms.set_context(mode=previous)

    def forward(self, model: nn.Cell, x: np.ndarray) -> np.ndarray:
        was = model.training
        model.set_train(False)
        try:
            return model(ms.Tensor(np.ascontiguousarray(x, np.float32))).asnumpy()
        finally:
            model.set_train(was)

    def record_inputs(self, model: nn.Cell, x: np.ndarray, names: Sequence[str], sink) -> np.ndarray:
        cells = dict(model.cells_and_names())
        missing = [n for n in names if n not in cells]
        if missing:
            raise KeyError(f"no sub-cell named {missing[0]!r}")
        mode = ms.get_context("mode")
        ms.set_context(mode=ms.PYNATIVE_MODE)           # hooks run in PyNative mode only
        try:
            return run_with_input_hooks(lambda: self.forward(model, x), {n: cells[n] for n in names},
                                        lambda c, hook: c.register_forward_pre_hook(hook), self.to_numpy, sink)
        finally:
            ms.set_context(mode=mode)

    def runners(self, models, input_shape, phase: str, device: str, num_classes: Optional[int] = None,
                input_grad: bool = False, seed: int = 0) -> List:
        rng = np.random.default_rng(seed)
        x = ms.Tensor(rng.standard_normal(tuple(input_shape)).astype(np.float32))
        fns = []
        for k, cell in enumerate(models):
            if phase == "infer":
                head = _Head(cell)
                head.set_train(False)
                fns.append(_compiled(lambda h=head: h(x).asnumpy(), head, owned=False))
                continue
            _unique_names(cell, f"v{k}.")
            opt = nn.Momentum(cell.trainable_params(), learning_rate=1e-4, momentum=0.9)
            if num_classes:
                y = ms.Tensor(rng.integers(0, num_classes, (input_shape[0],)).astype(np.int32))
                loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
                step = nn.TrainOneStepCell(nn.WithLossCell(cell, loss), opt)
                step.set_train(True)
                fns.append(_compiled(lambda s=step, y=y: s(x, y).asnumpy(), step))
            else:
                step = _LayerStep(cell, opt)
                step.set_train(True)
                fns.append(_compiled(lambda s=step: s(x).asnumpy(), step))
        return fns

    def release(self, runners) -> None:
        """Drop the GRAPH-mode compilations of ``runners``. The graph executor keeps a reference to a
        compiled training cell, so that cell is also emptied of its sub-cells and parameters (the network
        copy, optimizer moments): a training runner's network is not usable afterwards."""
        from mindspore.graph.api import _cell_graph_executor

        for fn in runners:
            top, owned = getattr(fn, "lrd_cell", None), getattr(fn, "lrd_owned", False)
            if top is None:
                continue
            cells = [top] + ([c for _, c in top.cells_and_names()] if owned else [])
            for c in cells:
                if c.compile_cache:
                    _cell_graph_executor.del_net_res(c, c.compile_cache)
                    c.compile_cache.clear()
            for c in cells if owned else []:
                c._params.clear()
                c._cells.clear()
                for key in [k for k, v in vars(c).items() if isinstance(v, (ms.Parameter, ms.ParameterTuple,
                                                                             tuple, list))]:
                    object.__delattr__(c, key)
            fn.lrd_cell = None

    def device_memory(self):
        return ms.runtime.reset_peak_memory_stats, lambda: ms.runtime.max_memory_allocated() / 2 ** 20

    # ------------------------------------------------------------------ export
    def export_native(self, model: nn.Cell, path: str, fmt: str, input_shape, dynamic_batch: bool,
                      opset: int) -> List[str]:
        shape = list(input_shape)
        x = (ms.Tensor(shape=[None] + shape[1:], dtype=ms.float32) if dynamic_batch
             else ms.Tensor(np.zeros(shape, np.float32)))
        was = model.training
        model.set_train(False)
        try:
            with portable(model, onnx=fmt == "ONNX", replace=self.replace) as notes:
                if fmt == "MINDIR":
                    base = path[:-len(".mindir")] if path.endswith(".mindir") else path
                    ms.export(model, x, file_name=base, file_format="MINDIR")
                    if base + ".mindir" != path:
                        os.replace(base + ".mindir", path)
                else:
                    self._onnx(model, path, x, dynamic_batch)
        finally:
            model.set_train(was)
        return notes

    @staticmethod
    def _onnx(model, path: str, x, dynamic_batch: bool) -> None:
        axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
        try:
            ms.onnx.export(model, x, file_name=path, input_names=["x"], output_names=["y"], dynamic_axes=axes)
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"MindSpore {ms.__version__} cannot export this network to ONNX ({first}); export "
                              f"MINDIR instead, or replace that operator") from None
        fix_conv_pads(path)         # MindSpore writes Conv pads as (top, bottom, left, right)
        if dynamic_batch:          # MindSpore writes the traced batch into the output shape
            import onnx

            proto = onnx.load(path)
            for out in proto.graph.output:
                dims = out.type.tensor_type.shape.dim
                if dims:
                    dims[0].ClearField("dim_value")
                    dims[0].dim_param = "batch"
            onnx.save(proto, path)

    def exported_runner(self, path: str, fmt: str):
        if fmt != "MINDIR":
            return None
        cell = nn.GraphCell(ms.load(path))
        return lambda x: cell(ms.Tensor(np.ascontiguousarray(x, np.float32))).asnumpy()

    # ------------------------------------------------------------------ reduced-order networks
    def describe_module(self, model: nn.Cell, name: str):
        from .reduced import describe
        cell = dict(model.cells_and_names()).get(name) if name else None
        return None if cell is None else describe(cell)

    def make_module(self, spec: dict, like: Optional[nn.Cell] = None) -> nn.Cell:
        from .reduced import make
        return make(spec, like)

    def input_gradients(self, model: nn.Cell, x: np.ndarray, cotangents):
        from .reduced import input_gradients
        return input_gradients(model, x, cotangents)


def invalidate_graphs(model: nn.Cell, name: str = "") -> None:
    """Make MindSpore recompile ``model`` (and the cells on the path to ``name``) on the next call."""
    stamp = time.time_ns()
    path, cells = "", [model]
    by_name = dict(model.cells_and_names()) if name else {}
    for part in name.split(".")[:-1] if name else []:
        path = f"{path}.{part}" if path else part
        if path in by_name:
            cells.append(by_name[path])
    for k, cell in enumerate(cells):
        object.__setattr__(cell, "_create_time", stamp + k)


BACKEND = MindSporeBackend()
