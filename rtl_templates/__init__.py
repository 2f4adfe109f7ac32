"""Verilog templates that wrap the generated core for users' flows."""
