"""Map a quantized IR graph onto a systolic accelerator.

=============  ======================================================================
``plan``       the configuration, widths, tiling, layer descriptors and cycles
``pack``       memory images per PE kind (a registry of weight packers)
``manifest``   the compiled design and its manifest (``manifest.json``)
``limits``     the size limits checked before any long work
=============  ======================================================================

The compiler never imports the gateware (:mod:`hwgen.rtl`); the two meet at
:mod:`hwgen.contract` and :mod:`hwgen.timing`.
"""

from .limits import SIZE_LIMITS, SizeLimits, check_size, memory_bits
from .manifest import CompiledDesign, LayerProgram
from .plan import AcceleratorConfig, compile_graph, walk_deltas

__all__ = ["SIZE_LIMITS", "AcceleratorConfig", "CompiledDesign", "LayerProgram", "SizeLimits",
           "check_size", "compile_graph", "memory_bits", "walk_deltas"]
