"""cocotb testbench of hw/read_arbiter.py (SharedReader: ReadArbiter + AxiReader) against cocotbext-axi's AXI
RAM (read side); run by tests/test_hw_read_arbiter.py. Two clients send their commands at the same time (weight
tiles and membrane-like runs); each must get exactly its commands' bytes of the RAM, in order, with the RAM's
channels and both clients' streams paused at random."""

import random

import cocotb
from cocotb.triggers import Combine
from cocotbext.axi import AxiRamRead, AxiReadBus

from hw.axi_master import beat_layout, command_layout
from sim import cocotb_tb as tb
from sim.cases import read_commands
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS
RAM_BYTES = 1 << 24


async def run(dut, pause: float, seed: int):
    params = tb_params()
    seed = params["seed"] + seed
    await tb.start(dut)
    ram = tb.axi_ram(dut, AxiRamRead, AxiReadBus, RAM_BYTES, pause, seed)
    rng = random.Random(seed)
    ram.write(0, rng.randbytes(RAM_BYTES))
    tiles = [(a % (RAM_BYTES - (1 << 12)), n) for a, n in read_commands(seed, params["count"])]
    rows = [(0x800000 + 96 * i, 12) for i in range(params["count"])] + [(0x900000, 0), (0x900010, 24)]
    lc, lo = command_layout(), beat_layout()

    async def client(k, cmds):
        src = tb.source(dut, f"cmds__{k}", pause, seed + 10 * k)
        snk = tb.sink(dut, f"outs__{k}", pause, seed + 10 * k + 1)

        async def send():
            for a, n in cmds:
                await src.send(tb.PayloadTransaction(payload=tb.pack(lc, {"addr": a, "beats": n})))

        sending = cocotb.start_soon(send())
        for a, n in cmds:
            want = ram.read(a, 8 * n)
            for j in range(n):
                out = tb.unpack(lo, (await snk.recv()).payload)
                got = int(out.data).to_bytes(8, "little")
                assert got == want[8 * j:8 * j + 8], f"seed {seed}: client {k}, command {a:#x}+{n}, beat {j}"
                assert int(out.last) == (j == n - 1), f"seed {seed}: client {k}, command {a:#x}+{n}, beat {j}: last"
        await sending

    await Combine(cocotb.start_soon(client(0, tiles)), cocotb.start_soon(client(1, rows)))
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def shared_full_rate(dut):
    await run(dut, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def shared_random_latency_and_backpressure(dut):   # one RAM model per test: they run till its end
    await run(dut, 0.4, 1)
