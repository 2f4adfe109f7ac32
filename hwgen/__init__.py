"""hwgen: quantized PyTorch networks to bit-exact fixed-point systolic accelerators."""
__version__ = "0.1.0"
