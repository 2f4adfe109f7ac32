"""Amaranth components of the accelerator (gateware: never imports torch nor the compiler;
it reads :mod:`hwgen.contract` and :mod:`hwgen.timing`).

=====================  ===============================================================
``layouts``            shared payload layouts and mode enums (PECtl, Rounding, PEKind...)
``pe``                 the PE interface and the registry of PE kinds (:func:`pe_class`)
``pe_mac``             the fixed-point multiply-accumulate PE (kind ``"fixed"``)
``pe_codebook``        the code-book engine's PE: a MAC (kind ``"codebook"``)
``weight_lookup``      code-book indices to weights, per column at the array's edge
``systolic_array``     rows × cols output-stationary array of any PE kind
``engine``             one array + its weight memory (+ lookup) + its feed and padding
``act_buffer``         activation memories, one copy per array row, broadcast writes
``sequencer``          the phase machine, feed counters and pixel records of the program
``drain``              a finished tile's results, one per cycle, to post-processing
``post_process``       bias, requantize (rounding, overflow), ReLU, max-pool
``top``                the blocks wired together: the generated accelerator
=====================  ===============================================================

Adding a PE kind: a new ``pe_<name>.py`` here with a :class:`~hwgen.rtl.pe.PE` subclass
that sets ``kind``, ``pad_value``, :meth:`~hwgen.rtl.pe.PE.weight_shape` and
:meth:`~hwgen.rtl.pe.PE.product` (found without an import anywhere), and its weight packer
``@packs("<name>")`` in :mod:`hwgen.compiler.pack`. Nothing else changes.
"""
