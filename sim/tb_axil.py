"""cocotb testbench of hw/axil.py (RegisterBlock) with cocotbext-axi's AXI4-Lite master."""

import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from hw.reference import register_inputs, register_reads
from sim import cocotb_tb as tb
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def setup(dut, seed):
    rng = random.Random(seed)
    await tb.start(dut)
    inputs = register_inputs(rng)
    dut.status.value = inputs["status"]
    for name in ("error_code", "error_beat", "images_done", "cycles"):
        getattr(dut, name).value = inputs[name]
    dut.perf.value = sum(v << (32 * k) for k, v in enumerate(inputs["perf"]))
    dut.model.value = sum(v << (32 * k) for k, v in enumerate(inputs["model"]))
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil", bus_separator="__"), dut.clk, dut.rst)
    return rng, inputs, master


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def axil_reads_the_map(dut):
    """Every word of the first 512 bytes reads as regmap says, with random R-channel backpressure."""
    p = tb_params()
    cap = packing.capacity_for(ModelConfig(), p["rtl"]["lanes"])
    rng, inputs, master = await setup(dut, p["seed"])
    master.read_if.r_channel.set_pause_generator(tb._pauses(0.4, p["seed"]))
    want = register_reads(inputs, 0, cap)
    want[regmap.REG["CYCLES"].offset + 4] = inputs["cycles"] >> 32
    for off in range(0, 0x200, 4):
        got = await master.read_dword(off)
        assert got == want.get(off, 0), f"offset {off:#x}: read {got:#x}, expected {want.get(off, 0):#x}"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def axil_writes_pulse_and_hold(dut):
    """CTRL pulses one cycle per write of 1s; RUN_CONFIG holds; concurrent reads and writes all answer."""
    p = tb_params()
    rng, inputs, master = await setup(dut, p["seed"] + 1)
    master.write_if.b_channel.set_pause_generator(tb._pauses(0.5, p["seed"] + 2))
    pulses = []

    async def watch():
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.ctrl.value):
                pulses.append(int(dut.ctrl.value))

    cocotb.start_soon(watch())
    ctrl, rc = regmap.REG["CTRL"], regmap.REG["RUN_CONFIG"]
    words = [rng.randrange(1, 8) for _ in range(20)]
    for w in words:
        await master.write_dword(ctrl.offset, w)
    for _ in range(3):
        await RisingEdge(dut.clk)
    assert pulses == words, f"CTRL pulses {pulses}, written {words}"
    # Reads and writes issued together (the master overlaps them); the last RUN_CONFIG write wins.
    tasks = [cocotb.start_soon(master.write_dword(rc.offset, v)) for v in (1, 2, 3)]
    reads = [cocotb.start_soon(master.read_dword(regmap.REG["ID"].offset)) for _ in range(4)]
    for t in tasks:
        await t
    assert [await r for r in reads] == [regmap.CORE_MAGIC] * 4
    assert await master.read_dword(rc.offset) == 3
