"""Exploring designs: what each choice of scheme, array and target costs.

=============  ==================================================================
``compare``    ``hwgen compare``: a sweep of schemes × arrays × targets, one row each
``energy``     a first-order energy estimate per inference (45 nm per-op energies)
=============  ==================================================================
"""
