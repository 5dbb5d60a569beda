"""cocotb testbench that must fail: proves that sim/runner.py turns a cocotb failure into a pytest failure.

Run by tests/test_sim_runner.py on hw/lif.py; not a test of the LIF.
"""

import cocotb
from cocotb.triggers import ClockCycles

from sim import cocotb_tb as tb
from sim.runner import tb_params


@cocotb.test(timeout_time=tb.TIMEOUT_MS, timeout_unit="ms")
async def selftest_passes(dut):
    await tb.start(dut)
    await ClockCycles(dut.clk, 3)


@cocotb.test(timeout_time=tb.TIMEOUT_MS, timeout_unit="ms")
async def selftest_fails(dut):
    await tb.start(dut)
    value = tb_params()["value"]
    assert value == value + 1, f"deliberate failure with value {value}"
