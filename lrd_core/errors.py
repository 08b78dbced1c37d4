"""Errors a user can cause. Every message names the layer (or file) and the fix."""


class LRDError(Exception):
    """Base class of every error lrd raises for bad input."""


class ConfigError(LRDError, ValueError):
    """An option has a value that cannot work (e.g. ratio <= 1, unknown mode)."""


class UnknownLayerError(LRDError, KeyError):
    """A layer name or pattern matches no conv/dense layer of the model."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RankError(LRDError, ValueError):
    """A requested rank is impossible for the layer."""


class UnsupportedLayerError(LRDError, ValueError):
    """The layer cannot be decomposed by the requested method (e.g. grouped conv)."""


class BadWeightsError(LRDError, ValueError):
    """Weights contain NaN or Inf."""


class MismatchError(LRDError, ValueError):
    """A checkpoint or plan does not match the model it is applied to."""


class DeviceError(LRDError, RuntimeError):
    """The requested device or runtime (Ascend, GPU, MindSpore Lite) is not available here."""


class ExportError(LRDError, RuntimeError):
    """The network cannot be exported in the requested format."""


class ReductionError(LRDError, ValueError):
    """A reduced-order method (RON, ASNet) cannot run on the given model, cut or calibration data."""


class CalibrationError(LRDError, ValueError):
    """Calibration data cannot give the statistics asked for (wrong shape, channels or dtype,
    NaN/Inf activations, too few samples for the requested rank)."""


class DecompositionError(LRDError, RuntimeError):
    """A numerical decomposition failed for a layer (e.g. a degenerate or diverging CPD)."""
