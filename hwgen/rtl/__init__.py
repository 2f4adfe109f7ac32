"""Amaranth components of the accelerator (gateware: never imports torch).

=====================  ===============================================================
``layouts``            shared payload layouts and mode enums (PECtl, Rounding, ...)
``pe``, ``pe_mac``     the PE interface and the fixed-point multiply-accumulate PE
``systolic_array``     rows × cols output-stationary array of any PE kind
``post_process``       bias, requantize (rounding, overflow), ReLU, max-pool
``pixel_walker``       output pixels in pool-window order, as receptive-field corners
``drain``              a finished tile's results, one per cycle, to post-processing
``top``                memories, sequencer and I/O: the generated accelerator
=====================  ===============================================================
"""
