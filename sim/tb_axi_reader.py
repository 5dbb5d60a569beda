"""cocotb testbench of hw/axi_reader.py (AxiReader) against cocotbext-axi's AXI RAM (read side); run by
tests/test_hw_axi_reader.py. Every command's beats must equal the RAM's contents, with the RAM's channels
and the output stream paused at random."""

import random

import cocotb
from cocotbext.axi import AxiRamRead, AxiReadBus

from hw.axi_master import beat_layout, command_layout
from sim import cocotb_tb as tb
from sim.runner import tb_params
from sim.cases import read_commands as commands

TIMEOUT_MS = tb.TIMEOUT_MS
RAM_BYTES = 1 << 24


async def run(dut, pause: float, seed: int):
    params = tb_params()
    seed = params["seed"] + seed
    await tb.start(dut)
    ram = tb.axi_ram(dut, AxiRamRead, AxiReadBus, RAM_BYTES, pause, seed)
    rng = random.Random(seed)
    contents = bytes(rng.getrandbits(8) for _ in range(1 << 16))
    cmds = [(a % (RAM_BYTES - (1 << 12)), n) for a, n in commands(seed, params["count"])]
    for a, _ in cmds:   # random contents where the commands read
        ram.write(a, contents[a % len(contents):][:4096].ljust(4096, b"\x5a"))
    src, snk = tb.source(dut, "cmd", pause, seed + 3), tb.sink(dut, "o", pause, seed + 4)
    lc, lo = command_layout(), beat_layout()
    for a, n in cmds:
        await src.send(tb.PayloadTransaction(payload=tb.pack(lc, {"addr": a, "beats": n})))
    for a, n in cmds:
        want = ram.read(a, 8 * n)
        for k in range(n):
            out = tb.unpack(lo, (await snk.recv()).payload)
            got = int(out.data).to_bytes(8, "little")
            assert got == want[8 * k:8 * k + 8], f"seed {seed}: command {a:#x}+{n}, beat {k}: {got.hex()}"
            assert int(out.last) == (k == n - 1), f"seed {seed}: command {a:#x}+{n}, beat {k}: last"
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reader_full_rate(dut):
    await run(dut, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reader_random_latency_and_backpressure(dut):
    await run(dut, 0.4, 1)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reader_random_latency_and_backpressure_again(dut):   # one RAM model per test: they run till its end
    await run(dut, 0.6, 2)
