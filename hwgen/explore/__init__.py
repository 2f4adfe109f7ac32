"""Exploring designs: what each choice of scheme, array and target costs.

==============  =================================================================
``compare``     ``hwgen compare``: a sweep of schemes × arrays × targets, one row each
``energy``      a first-order energy estimate per inference (45 nm per-op energies)
``analyze``     ``hwgen analyze``: per-layer statistics and fractional lengths by width
``sensitivity`` ``hwgen sensitivity``: one layer quantized at a time, by width
``layers``      what the two share: widths, layer inputs, one layer quantized
``search``      ``hwgen search``: the cheapest per-layer quantization meeting a target
``executor``    where evaluations run (local processes, Dask) and the progress bar
==============  =================================================================
"""
