"""hwgen: quantized PyTorch networks to bit-exact fixed-point systolic accelerators.

``hwgen.quantize`` (:func:`hwgen.quant.quantize`) and ``hwgen.compile``
(:func:`hwgen.api.compile`) are loaded on first use, so that ``import hwgen`` stays light
(no torch).
"""
__version__ = "0.1.0"

__all__ = ["__version__", "compile", "quantize"]


def __getattr__(name):
    if name == "quantize":
        from .quant import quantize
        return quantize
    if name == "compile":
        from .api import compile
        return compile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
