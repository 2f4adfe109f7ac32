"""hwgen: quantized PyTorch networks to bit-exact fixed-point systolic accelerators.

``hwgen.quantize`` (:func:`hwgen.quant.quantize`) is loaded on first use, so that
``import hwgen`` stays light (no torch).
"""
__version__ = "0.1.0"

__all__ = ["__version__", "quantize"]


def __getattr__(name):
    if name == "quantize":
        from .quant import quantize
        return quantize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
