"""Simulation infrastructure: Amaranth -> Verilog -> Verilator, cocotb testbenches (``tb_*.py``)."""
