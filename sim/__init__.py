"""Simulation of generated accelerators: the cocotb testbench and the simulator runner."""
