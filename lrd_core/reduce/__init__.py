"""Reduced-order networks: RON (maximum-volume channel selection) and ASNet (active subspace + PCE).

Framework-free numerics; adapters record activations/gradients and build the native layers.

* :mod:`.maxvol` - ``maxvol`` / ``rect_maxvol`` row selection.
* :mod:`.graph` - plain-data network description (Linear, BatchNorm, Act, MaxPool, GlobalAvgPool,
  Flatten, Residual) and its NumPy reference forward.
* :mod:`.ron` - activation bases, channel selection and the weight transforms (pure functions).
* :mod:`.ron_net` - streams of a network, rank choice (energy / ranks / FLOP budget), the reduced network.
* :mod:`.pce`, :mod:`.asnet` - frequent directions, active subspace, Hermite PCE head.
* :mod:`.convert` - a native model (through a backend) read into graph ops; :mod:`.native` - graph ops
  and reduction records back to native modules; :mod:`.run` - RON/ASNet on a native model
  (``lrd_X.reduce`` = :func:`lrd_core.api.reduce.reduce`).
"""
from .asnet import ASNetHead, FrequentDirections, active_subspace, asnet_from_gradients, fit_head, split_at
from .graph import (ACTIVATIONS, OUTPUT, Act, BatchNorm, Flatten, GlobalAvgPool, Linear, MaxPool, Residual, forward,
                    output_shape, walk)
from .maxvol import maxvol, rect_maxvol
from .native import with_reduction
from .pce import hermite_features, multi_indices, n_terms
from .ron import (Basis, activation_basis, budget_ranks, lift_input, lift_layer, select_batchnorm, select_channels,
                  select_output, stream_samples)
from .ron_net import RONResult, Stream, network_macs, record_points, ron_reduce, trace_streams
from .rsvd import randomized_svd

__all__ = ["maxvol", "rect_maxvol", "randomized_svd", "Basis", "activation_basis", "stream_samples",
           "select_channels", "select_output", "select_batchnorm", "lift_input", "lift_layer", "budget_ranks",
           "Linear", "BatchNorm", "Act", "MaxPool", "GlobalAvgPool", "Flatten", "Residual", "ACTIVATIONS", "OUTPUT",
           "forward", "output_shape", "walk", "Stream", "RONResult", "trace_streams", "record_points",
           "network_macs", "ron_reduce", "FrequentDirections", "active_subspace", "ASNetHead", "fit_head",
           "asnet_from_gradients", "split_at", "multi_indices", "n_terms", "hermite_features", "with_reduction"]
