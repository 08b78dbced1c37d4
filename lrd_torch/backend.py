"""The PyTorch backend: the framework primitives :mod:`lrd_core.api` is written against.

Everything else of ``lrd_torch`` (plan, compress, save/load, export, timing, freezing) is
:mod:`lrd_core.api` bound to :data:`BACKEND`.
"""
from __future__ import annotations

import contextlib
import copy
import os
import warnings
from typing import Dict, List, Optional, Sequence

# torch's OpenMP threads spin while they wait; as soon as another process shares the cores a
# ResNet-18 step took 3.4 s instead of 0.7 s (2 threads; PASSIVE: 0.7 s). A user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lrd_core.errors import ConfigError, DeviceError, ExportError, MismatchError, UnsupportedLayerError  # noqa: E402
from lrd_core.layers import SubLayer  # noqa: E402

from lrd_core.trace import run_with_input_hooks  # noqa: E402

from .combine import Combine  # noqa: E402
from .trace import layer_kind, record  # noqa: E402

_DEVICES = {"CPU": "cpu", "GPU": "cuda", "CUDA": "cuda"}


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _unsupported(m: nn.Module, base: type) -> Optional[str]:
    if type(m).forward is not base.forward:
        return (f"{type(m).__name__} overrides {base.__name__}.forward: a chain of plain layers would not "
                f"compute the same thing")
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            return f"padding_mode={m.padding_mode!r}: only zero padding can be rebuilt as a factor chain"
        if m.padding == "same" and any(d * (k - 1) % 2 for k, d in zip(m.kernel_size, m.dilation)):
            return "asymmetric 'same' padding (even kernel): torch Conv2d cannot hold it in a factor chain"
    return None


def geometry(m: nn.Module) -> dict:
    """The layer's kind, channels, kernel, stride, padding, dilation, groups and bias."""
    if isinstance(m, nn.Conv2d):
        padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
        return {"kind": "conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels,
                "kernel": tuple(m.kernel_size), "stride": tuple(m.stride), "padding": padding,
                "dilation": tuple(m.dilation), "groups": m.groups, "has_bias": m.bias is not None,
                "unsupported": _unsupported(m, nn.Conv2d)}
    return {"kind": "dense", "in_channels": m.in_features, "out_channels": m.out_features,
            "has_bias": m.bias is not None, "unsupported": _unsupported(m, nn.Linear)}


class TorchBackend:
    """PyTorch primitives (see :class:`lrd_core.backend.Backend`)."""

    name = "torch"
    version = torch.__version__
    model_type = nn.Module
    export_formats = ("ONNX",)
    checkpoint_suffixes = (".pt", ".pth")

    # ------------------------------------------------------------------ structure
    def record(self, model: nn.Module, example):
        if not isinstance(example, torch.Tensor):
            p = next(model.parameters(), None)
            example = torch.zeros(tuple(example), device=None if p is None else p.device,
                                  dtype=torch.float32 if p is None else p.dtype)
        return record(model, example)

    def named_layers(self, model: nn.Module):
        return [(n, m) for n, m in model.named_modules() if layer_kind(m) is not None]

    def geometry(self, layer: nn.Module) -> dict:
        return geometry(layer)

    def weight(self, layer: nn.Module) -> np.ndarray:
        return layer.weight.detach().cpu().float().numpy().copy()

    def bias(self, layer: nn.Module) -> Optional[np.ndarray]:
        return None if layer.bias is None else layer.bias.detach().cpu().float().numpy().copy()

    @staticmethod
    def _layer(sub: SubLayer, device, dtype) -> nn.Module:
        if sub.kind == "dense":
            layer = nn.Linear(sub.weight.shape[1], sub.weight.shape[0], bias=sub.has_bias)
        elif sub.kind == "conv2d":
            t, b, l, r = sub.padding
            if t != b or l != r:
                raise UnsupportedLayerError(f"asymmetric padding {sub.padding} has no torch Conv2d equivalent")
            layer = nn.Conv2d(sub.in_channels, sub.out_channels, sub.kernel, stride=sub.stride, padding=(t, l),
                              dilation=sub.dilation, groups=sub.groups, bias=sub.has_bias)
        elif sub.kind == "combine":
            return Combine.from_sub(sub, device, dtype)
        else:
            raise UnsupportedLayerError(f"torch cannot build a {sub.kind!r} sublayer")
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(sub.weight, np.float32)))
            if sub.has_bias:
                layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(sub.bias, np.float32)))
        return layer.to(device=device, dtype=dtype)

    def build(self, subs: Sequence[SubLayer], like: Optional[nn.Module] = None) -> nn.Sequential:
        device, dtype = None, torch.float32
        if like is not None:
            if getattr(like, "padding_mode", "zeros") != "zeros":
                raise UnsupportedLayerError(f"padding_mode={like.padding_mode!r} is not supported; only zero padding")
            device, dtype = like.weight.device, like.weight.dtype
        seq = nn.Sequential(*[self._layer(s, device, dtype) for s in subs])
        if like is not None:
            seq.train(like.training)
        return seq

    def replace(self, model: nn.Module, name: str, new: nn.Module) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)

    # ------------------------------------------------------------------ state
    def tensors(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        return dict(model.state_dict(keep_vars=True))

    def parameters(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        return dict(model.named_parameters())

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def assign(self, tensor, value: np.ndarray) -> None:
        with torch.no_grad():
            tensor.copy_(torch.as_tensor(np.asarray(value)).to(tensor.dtype))

    def set_trainable(self, parameter, flag: bool) -> None:
        parameter.requires_grad_(bool(flag))

    def is_trainable(self, parameter) -> bool:
        return bool(parameter.requires_grad)

    def copy(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model)

    # ------------------------------------------------------------------ checkpoint files
    def read_native(self, path: str) -> Dict[str, np.ndarray]:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise MismatchError(f"{path} is not a torch checkpoint ({type(exc).__name__}: {first})") from None
        for key in ("state_dict", "model", "net"):
            if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise MismatchError(f"{path} holds a {type(obj).__name__}, not a state dict")
        return {k: v.detach().cpu().numpy() for k, v in obj.items() if isinstance(v, torch.Tensor)}

    def write_native(self, arrays: Dict[str, np.ndarray], path: str) -> None:
        torch.save({k: torch.from_numpy(np.array(v, copy=True, order="C")) for k, v in arrays.items()}, path)

    # ------------------------------------------------------------------ running and timing
    def check_device(self, device: str = "CPU") -> str:
        text = str(device).upper()
        if text == "ASCEND":
            raise DeviceError("torch has no Ascend backend here; use --framework mindspore for Ascend 910/310")
        if text not in _DEVICES:
            raise DeviceError(f"unknown device {device!r}; use CPU or GPU")
        if _DEVICES[text] == "cuda" and not torch.cuda.is_available():
            raise DeviceError("no CUDA device visible to torch (this is a CPU-only build or host); run on a GPU "
                              "host with a CUDA build of torch, or use --device CPU")
        return "CPU" if _DEVICES[text] == "cpu" else "GPU"

    @contextlib.contextmanager
    def timing_scope(self, threads: Optional[int] = None):
        previous = torch.get_num_threads()
        if threads:
            torch.set_num_threads(int(threads))
        try:
            yield torch.get_num_threads()
        finally:
            torch.set_num_threads(previous)

    def forward(self, model: nn.Module, x: np.ndarray) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(_device_of(model))
                return model(t).float().cpu().numpy()
        finally:
            model.train(was)

    def record_inputs(self, model: nn.Module, x: np.ndarray, names: Sequence[str], sink) -> np.ndarray:
        return run_with_input_hooks(lambda: self.forward(model, x), {n: model.get_submodule(n) for n in names},
                                    lambda m, hook: m.register_forward_pre_hook(hook), self.to_numpy, sink)

    def runners(self, models, input_shape, phase: str, device: str, num_classes: Optional[int] = None,
                input_grad: bool = False, seed: int = 0) -> List:
        dev = torch.device(_DEVICES[device.upper()])
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(tuple(input_shape), generator=g).to(dev)
        labels = None
        if phase == "train" and num_classes:
            labels = torch.randint(0, num_classes, (input_shape[0],), generator=g).to(dev)
        return [self._runner(m.to(dev), x, phase, labels, input_grad, sync) for m in models]

    def release(self, runners) -> None:
        """Nothing to do: a runner's network and optimizer go with the callable."""

    @staticmethod
    def _runner(module: nn.Module, x, phase: str, labels, input_grad: bool, sync):
        if phase == "infer":
            module.eval()

            def infer():
                with torch.no_grad():
                    module(x)
                sync()
            return infer
        module.train()
        opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        xin = x.detach().clone().requires_grad_(input_grad)
        loss_fn = nn.CrossEntropyLoss()
        grad_out = []

        def step():
            opt.zero_grad(set_to_none=True)
            out = module(xin)
            if labels is not None:
                loss_fn(out, labels).backward()
            else:
                if not grad_out:
                    grad_out.append(torch.ones_like(out) / out.numel())
                out.backward(grad_out[0])
            opt.step()
            sync()
        return step

    def device_memory(self):
        return torch.cuda.reset_peak_memory_stats, lambda: torch.cuda.max_memory_allocated() / 2 ** 20

    # ------------------------------------------------------------------ export
    def export_native(self, model: nn.Module, path: str, fmt: str, input_shape, dynamic_batch: bool,
                      opset: int) -> List[str]:
        was = model.training
        model.eval()
        x = torch.zeros(tuple(input_shape), device=_device_of(model))
        axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], output_names=["y"],
                                  dynamic_axes=axes, opset_version=opset)
        except Exception as exc:  # noqa: BLE001 - any exporter failure is reported the same way
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"torch {torch.__version__} cannot export this model to ONNX ({first}); replace "
                              f"the operator named there, or export from the MindSpore twin") from None
        finally:
            model.train(was)
        return []

    def exported_runner(self, path: str, fmt: str):
        return None

    # ------------------------------------------------------------------ reduced-order networks
    def describe_module(self, model: nn.Module, name: str):
        from .reduced import describe
        try:
            module = model.get_submodule(name)
        except AttributeError:
            return None
        return describe(module)

    def make_module(self, spec: dict, like: Optional[nn.Module] = None) -> nn.Module:
        from .reduced import make
        return make(spec, like)

    def input_gradients(self, model: nn.Module, x: np.ndarray, cotangents):
        from .reduced import input_gradients
        return input_gradients(model, x, cotangents)


BACKEND = TorchBackend()
