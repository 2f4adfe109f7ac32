"""Amaranth components of the accelerator."""
