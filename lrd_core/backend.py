"""The backend seam: the framework primitives every algorithm of ``lrd_core`` is written against.

An adapter (``lrd_torch``, ``lrd_mindspore``) is essentially one object implementing
:class:`Backend` plus its models and training glue. Its public functions (``plan``, ``compress``,
``save``, ``export``, ``measure_latency``, ...) are the functions of :mod:`lrd_core.api` bound to
that object (:func:`lrd_core.api.bind`), so both frameworks run the very same code and can only
differ in these primitives.

Conventions: tensors cross the seam as NumPy arrays; parameter names are the canonical
torch-style ``state_dict`` names (a backend renames its own, e.g. MindSpore BatchNorm
``gamma``/``moving_mean``); layers are named by their qualified module path; devices are the
strings ``CPU``, ``GPU``, ``Ascend``.
"""
from __future__ import annotations

from typing import Any, Callable, ContextManager, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from .layers import SubLayer
from .trace import Trace

Runner = Callable[[], Any]


class Backend(Protocol):
    """What an adapter implements. Every method works on native objects of its framework."""

    name: str                      #: ``"torch"`` or ``"mindspore"``
    version: str                   #: the framework's version string
    model_type: type               #: base class of a native model (``nn.Module`` / ``nn.Cell``)
    export_formats: Tuple[str, ...]  #: formats :meth:`export_native` writes (e.g. ``("MINDIR", "ONNX")``)
    checkpoint_suffixes: Tuple[str, ...]  #: file suffixes of its own checkpoint format

    # ------------------------------------------------------------------ structure
    def record(self, model, example) -> Trace:
        """Run one eval-mode example pass (a shape -> zeros, or a native tensor) and record its structure
        (:mod:`lrd_core.trace`): every layer call and visible add/concat/pool with tensor identities and shapes."""

    def named_layers(self, model) -> List[Tuple[str, Any]]:
        """``[(qualified name, layer)]`` of every conv2d / dense layer, in definition order."""

    def geometry(self, layer) -> Dict[str, Any]:
        """The layer's ``kind``, ``in_channels``, ``out_channels``, ``kernel``, ``stride``, ``padding``
        (tuple or a framework padding mode), ``dilation``, ``groups``, ``has_bias`` and ``unsupported`` (the
        reason a factor chain could not replace it, or None)."""

    def weight(self, layer) -> np.ndarray:
        """The layer's weight as float32 NumPy (conv OIHW, dense (out, in))."""

    def bias(self, layer) -> Optional[np.ndarray]:
        """The layer's bias as float32 NumPy, or None."""

    def build(self, subs: Sequence[SubLayer], like=None) -> Any:
        """A native sequential chain of the SubLayers (on ``like``'s device, dtype and train mode)."""

    def replace(self, model, name: str, new) -> None:
        """Put ``new`` where the layer ``name`` is (parameter names refreshed)."""

    # ------------------------------------------------------------------ state
    def tensors(self, model) -> Dict[str, Any]:
        """``{torch-style name: native tensor}`` of every parameter and buffer, in state-dict order."""

    def parameters(self, model) -> Dict[str, Any]:
        """``{torch-style name: native parameter}`` of the trainable-by-nature parameters (weights,
        biases, norm affine; no running statistics)."""

    def to_numpy(self, tensor) -> np.ndarray:
        """A copy of a native tensor as NumPy."""

    def assign(self, tensor, value: np.ndarray) -> None:
        """Overwrite a native tensor in place (dtype converted to the tensor's)."""

    def set_trainable(self, parameter, flag: bool) -> None:
        """Set the framework's ``requires_grad`` flag."""

    def is_trainable(self, parameter) -> bool:
        """The framework's ``requires_grad`` flag."""

    def copy(self, model) -> Any:
        """An independent deep copy (fresh parameter identities)."""

    # ------------------------------------------------------------------ checkpoint files
    def read_native(self, path: str) -> Dict[str, np.ndarray]:
        """Arrays (torch-style names) of a checkpoint file in this framework's own format."""

    def write_native(self, arrays: Dict[str, np.ndarray], path: str) -> None:
        """Write torch-style arrays in this framework's own checkpoint format to ``path``."""

    # ------------------------------------------------------------------ running and timing
    def check_device(self, device: str) -> str:
        """Select ``device`` (``CPU``/``GPU``/``Ascend``); :class:`DeviceError` when absent."""

    def timing_scope(self, threads: Optional[int]) -> ContextManager[int]:
        """The execution setting for timing inside the block (``threads`` CPU threads, None: unchanged;
        MindSpore: GRAPH mode); yields the CPU thread count in use."""

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        """Eval-mode output of ``model`` for a NumPy batch (train mode restored afterwards)."""

    def record_inputs(self, model, x: np.ndarray, names: Sequence[str],
                      sink: Callable[[str, np.ndarray], None]) -> np.ndarray:
        """One eval-mode forward pass (no gradients) of the NumPy batch ``x``: the input of every submodule
        named in ``names`` goes to ``sink(name, float32 array)`` as the layer receives it, in run order;
        returns the model's output. Hooks are removed and modes restored even on error."""

    def runners(self, models: Sequence[Any], input_shape, phase: str, device: str,
                num_classes: Optional[int] = None, input_grad: bool = False, seed: int = 0) -> List[Runner]:
        """Zero-argument callables, one per model, that run one inference (``phase='infer'``) or one
        training step (``'train'``: forward, backward, momentum SGD; cross-entropy on random labels
        when ``num_classes`` is given, else a fixed output gradient) and wait for the device."""

    def release(self, runners: Sequence[Runner]) -> None:
        """Free what ``runners`` compiled (graphs, and a training runner's network and optimizer state: that
        network must not be used afterwards, so pass copies to :meth:`runners`); a no-op where nothing
        outlives the callables."""

    def device_memory(self) -> Tuple[Callable[[], None], Callable[[], float]]:
        """``(reset, peak_mb)`` of the accelerator's allocated memory (host memory is measured in core)."""

    # ------------------------------------------------------------------ export
    def export_native(self, model, path: str, fmt: str, input_shape, dynamic_batch: bool,
                      opset: int) -> List[str]:
        """Write ``model`` (eval mode) to ``path`` in ``fmt``; returns notes on workarounds applied."""

    def exported_runner(self, path: str, fmt: str) -> Optional[Callable[[np.ndarray], np.ndarray]]:
        """A callable running an exported file of a format only this framework reads (MindIR), else None."""

    # ------------------------------------------------------------------ reduced-order networks
    def describe_module(self, model, name: str) -> Optional[Dict[str, Any]]:
        """What the sub-module ``name`` (a non-conv/dense leaf) computes: ``{"op": "batchnorm", "eps", "gamma",
        "beta", "mean", "var"}``, ``act`` (``fn``), ``maxpool``/``avgpool`` (``kernel``, ``stride``, ``padding``
        t/b/l/r), ``global_avgpool``, ``flatten``, ``identity`` or ``{"op": "unknown", "type": ...}``; None when
        ``name`` is not a sub-module (a function called in ``forward``)."""

    def make_module(self, spec: Dict[str, Any], like=None) -> Any:
        """A native module from a spec of :mod:`lrd_core.reduce.native` (``kind``: ``layer``, ``chain``,
        ``batchnorm``, ``act``, ``maxpool``, ``global_avgpool``, ``flatten``, ``identity``, ``sequence``,
        ``residual``, ``asnet_head``), in ``like``'s train mode (eval mode without ``like``)."""

    def input_gradients(self, model, x: np.ndarray,
                        cotangents: Callable[[np.ndarray], Sequence[np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
        """Eval-mode output of ``model`` at the NumPy batch ``x`` and the vector-Jacobian products
        ``v^T d output / d x`` for every ``v`` of ``cotangents(output)``, stacked (M, *x.shape)."""
