"""Quantization: schemes, quantizer kinds, fake-quant torch modules and the quantized model.

============================  ==========================================================
:mod:`hwgen.quant.kinds`      the quantizer-kind registry (:func:`register_kind`)
:mod:`hwgen.quant.fixed`      the fixed-point kind: spec keys, calibration, fake-quant
:mod:`hwgen.quant.pow2`       the power-of-two kind (shift PEs)
:mod:`hwgen.quant.binary`     the binary kind (±1 weights, per-channel α; XNOR PEs)
:mod:`hwgen.quant.ternary`    the ternary kind ({−α, 0, +α} weights, TWN; shift PEs)
:mod:`hwgen.quant.codebook`   the code-book kind (k-means centroids, b-bit indices)
:mod:`hwgen.quant.outputs`    output keys every kind shares; binary activations, thresholds
:mod:`hwgen.quant.scheme`     schemes: built-in names and per-layer JSON specs
:mod:`hwgen.quant.modules`    the fake-quant torch modules, one per IR node
:mod:`hwgen.quant.network`    :func:`build_network`: float stages + scheme -> modules
:mod:`hwgen.quant.model`      :class:`QuantizedModel`, its report, :func:`quantize`
:mod:`hwgen.quant.imported`   other tools' quantizers (QONNX, Brevitas) as fixed formats
:mod:`hwgen.quant.brevitas`   Brevitas modules: float twins with quantized weights
============================  ==========================================================

:func:`quantize` quantizes any traceable ``nn.Module``::

    import hwgen
    q = hwgen.quantize(module, input_shape=(1, 8, 8), calibration=x_train, scheme="fixed8")
    y = hwgen.golden.run(q.graph, q.quantize_input(x))   # what the hardware computes
    print(q.report().format_table())

Checkpoints and data sets are the flow's business: :func:`hwgen.flow.load_quantized`
loads a checkpoint and quantizes it.
"""

from .binary import BinaryKind, BinarySpec
from .codebook import CodebookKind, CodebookSpec
from .fixed import FixedKind, FixedSpec, calibrate_frac, fake_quant
from .kinds import DEFAULT_KIND, KINDS, QuantKind, get_kind, register_kind
from .model import LayerRow, QuantizedModel, QuantReport, quantize, quantize_model
from .modules import (
    QuantAvgPool2d,
    QuantConv2d,
    QuantFlatten,
    QuantInput,
    QuantLinear,
    QuantMaxPool2d,
    QuantNetwork,
)
from .network import build_network
from .outputs import binary_activation, fold_thresholds
from .pow2 import Pow2Kind, Pow2Spec
from .scheme import SCHEMES, Scheme, layer_spec_from_json, load_scheme, scheme_from_json
from .ternary import TernaryKind, TernarySpec

#: The fixed-point layer spec (the name it had before quantizer kinds).
LayerSpec = FixedSpec

__all__ = [
    "DEFAULT_KIND",
    "KINDS",
    "SCHEMES",
    "BinaryKind",
    "BinarySpec",
    "CodebookKind",
    "CodebookSpec",
    "FixedKind",
    "FixedSpec",
    "LayerRow",
    "LayerSpec",
    "Pow2Kind",
    "Pow2Spec",
    "QuantAvgPool2d",
    "QuantConv2d",
    "QuantFlatten",
    "QuantInput",
    "QuantKind",
    "QuantLinear",
    "QuantMaxPool2d",
    "QuantNetwork",
    "QuantReport",
    "QuantizedModel",
    "Scheme",
    "TernaryKind",
    "TernarySpec",
    "binary_activation",
    "build_network",
    "calibrate_frac",
    "fake_quant",
    "fold_thresholds",
    "get_kind",
    "layer_spec_from_json",
    "load_scheme",
    "quantize",
    "quantize_model",
    "register_kind",
    "scheme_from_json",
]


def __getattr__(name):
    # load_quantized moved to hwgen.flow (it loads checkpoints and data sets); the old name
    # keeps working without importing the flow (and the compiler) with hwgen.quant.
    if name == "load_quantized":
        from ..flow import load_quantized
        return load_quantized
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
