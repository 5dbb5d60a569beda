"""cocotb testbench of hw/axi_writer.py (AxiWriter) against cocotbext-axi's AXI RAM (write side); run by
tests/test_hw_axi_writer.py. After each command's ``busy`` falls, the RAM holds every beat of it, with the
RAM's channels and the input stream paused at random."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiRamWrite, AxiWriteBus

from hw.axi_master import beat_layout, command_layout
from sim import cocotb_tb as tb
from sim.cases import read_commands as commands
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS
RAM_BYTES = 1 << 24


async def run(dut, pause: float, seed: int):
    params = tb_params()
    seed = params["seed"] + seed
    await tb.start(dut)
    ram = tb.axi_ram(dut, AxiRamWrite, AxiWriteBus, RAM_BYTES, pause, seed)
    rng = random.Random(seed)
    src, din = tb.source(dut, "cmd", pause, seed + 4), tb.source(dut, "i", pause, seed + 5)
    lc, lb = command_layout(), beat_layout()
    for a, n in commands(seed, params["count"]):
        a %= RAM_BYTES - (1 << 12)
        data = [rng.getrandbits(64) for _ in range(n)]
        await src.send(tb.PayloadTransaction(payload=tb.pack(lc, {"addr": a, "beats": n})))
        for k, d in enumerate(data):
            await din.send(tb.PayloadTransaction(payload=tb.pack(lb, {"data": d, "last": k == n - 1})))
        await src.wait()
        await din.wait()
        for _ in range(2):   # the command is taken; then busy holds until its last write response
            await RisingEdge(dut.clk)
        while int(dut.busy.value):
            await RisingEdge(dut.clk)
        got = ram.read(a, 8 * n)
        want = b"".join(d.to_bytes(8, "little") for d in data)
        assert got == want, f"seed {seed}: command {a:#x}+{n}: memory differs"
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def writer_full_rate(dut):
    await run(dut, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def writer_random_latency_and_backpressure(dut):   # one RAM model per test: they run till its end
    await run(dut, 0.4, 1)
