"""hwgen's exceptions: one base class, one subclass per kind of failure.

Every message is one sentence that names the offending value with ``!r`` and,
where there is one, the place (layer name, file path).
"""

__all__ = [
    "ArgumentError",
    "CheckpointError",
    "DoesNotFitError",
    "FormatError",
    "HwgenError",
    "ShapeError",
    "SimulationMismatch",
    "TimingError",
    "ToolError",
    "ToolNotFoundError",
    "UnreachableTargetError",
    "UnsupportedLayerError",
    "check_int",
    "check_positive",
]


class HwgenError(Exception):
    """Base class of every error hwgen raises on purpose."""


class ArgumentError(HwgenError, ValueError):
    """A value given to hwgen (a command-line option, a function argument, a config field)
    is invalid: of the wrong type, out of range, or naming nothing hwgen knows."""


class FormatError(HwgenError, ValueError):
    """A number format, rounding mode or overflow mode is invalid."""


class UnsupportedLayerError(HwgenError):
    """The front end or the compiler met an operation it cannot lower."""


class ShapeError(HwgenError, ValueError):
    """Tensor shapes do not match."""


class CheckpointError(HwgenError):
    """A checkpoint is missing, corrupt or not hwgen's."""


class DoesNotFitError(HwgenError):
    """A valid model does not fit a valid accelerator configuration, or a design is larger
    than hwgen builds (see :mod:`hwgen.compiler`'s size limits)."""


class TimingError(HwgenError):
    """A design placed and routed for a board does not reach the board's clock."""


class ToolNotFoundError(HwgenError):
    """An external tool (Verilator, Yosys, nextpnr) cannot be found."""


class ToolError(HwgenError):
    """An external tool ran and failed."""


class UnreachableTargetError(HwgenError):
    """A search found no configuration that meets its accuracy target."""


class SimulationMismatch(HwgenError):
    """The hardware disagrees with the golden model or the cycle model."""


def check_positive(value, what, error=FormatError):
    """Return ``value`` if it is a positive integer, else raise ``error`` naming ``what``:
    "Array rows must be a positive integer, not 0"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{what} must be a positive integer, not {value!r}")
    return value


def check_int(value, what, minimum=None, maximum=None, error=ArgumentError):
    """Return ``value`` as an ``int`` if it is an integer (numpy integers too, never a bool)
    in ``[minimum, maximum]``, else raise ``error`` naming ``what``: "Samples must be an
    integer of at least 1, not 0"."""
    import numbers
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return int(value)
    if minimum is not None and maximum is not None:
        bounds = f" from {minimum} to {maximum}"
    elif minimum is not None:
        bounds = f" of at least {minimum}"
    elif maximum is not None:
        bounds = f" of at most {maximum}"
    else:
        bounds = ""
    raise error(f"{what} must be an integer{bounds}, not {value!r}")
