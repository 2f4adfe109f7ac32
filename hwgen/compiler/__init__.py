"""Map a quantized IR graph onto a systolic accelerator.

=============  ======================================================================
``plan``       the configuration, widths, tiling, layer descriptors and cycles
``pack``       memory images per PE kind (a registry of weight packers)
``manifest``   the compiled design and its manifest (``manifest.json``)
=============  ======================================================================

The compiler never imports the gateware (:mod:`hwgen.rtl`); the two meet at
:mod:`hwgen.contract` and :mod:`hwgen.timing`.
"""

from .manifest import CompiledDesign, LayerProgram
from .plan import AcceleratorConfig, compile_graph, walk_deltas

__all__ = ["AcceleratorConfig", "CompiledDesign", "LayerProgram", "compile_graph",
           "walk_deltas"]
