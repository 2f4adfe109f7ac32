"""hwgen's exceptions: one base class, one subclass per kind of failure.

Every message is one sentence that names the offending value with ``!r`` and,
where there is one, the place (layer name, file path).
"""

__all__ = [
    "CheckpointError",
    "DoesNotFitError",
    "FormatError",
    "HwgenError",
    "ShapeError",
    "SimulationMismatch",
    "ToolError",
    "ToolNotFoundError",
    "UnsupportedLayerError",
    "check_positive",
]


class HwgenError(Exception):
    """Base class of every error hwgen raises on purpose."""


class FormatError(HwgenError, ValueError):
    """A number format, rounding mode or overflow mode is invalid."""


class UnsupportedLayerError(HwgenError):
    """The front end or the compiler met an operation it cannot lower."""


class ShapeError(HwgenError, ValueError):
    """Tensor shapes do not match."""


class CheckpointError(HwgenError):
    """A checkpoint is missing, corrupt or not hwgen's."""


class DoesNotFitError(HwgenError):
    """A model does not fit the accelerator configuration."""


class ToolNotFoundError(HwgenError):
    """An external tool (Verilator, Yosys, nextpnr) cannot be found."""


class ToolError(HwgenError):
    """An external tool ran and failed."""


class SimulationMismatch(HwgenError):
    """The hardware disagrees with the golden model or the cycle model."""


def check_positive(value, what, error=FormatError):
    """Return ``value`` if it is a positive integer, else raise ``error`` naming ``what``:
    "Array rows must be a positive integer, not 0"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{what} must be a positive integer, not {value!r}")
    return value
