"""cocotb testbench of hw/tile_loader.py (TileLoader) against cocotbext-axi's AXI RAM (read side); run by
tests/test_hw_tile_loader.py. The shipped digits model's DDR weight buffer (``dynaspike.ddr.pack_weights``)
sits in the RAM; every tile is loaded to where the on-chip layout keeps its rows, and the memories written
must equal ``packing.memory_images``, with the RAM at full rate and with its channels paused at random. The
reader's own rules are checked (bursts, the next command taken right after the last burst is addressed);
at full rate every tile's last beat is in the cycle ``ddr.read_schedule`` gives at the RAM's latency (the
acceptances too are exact in the fast tier, against a memory that takes an address a cycle)."""

import itertools

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus

from dynaspike import ddr
from dynaspike.artifact import IntModel
from dynaspike.packing import memory_images
from sim import cocotb_tb as tb
from sim.cases import tile_commands, write_granules
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS
RAM_BYTES = 1 << 22
BASE = 0x1F_FFC8    # not burst-aligned: bursts split inside tiles, and one run crosses a 4 KiB page


async def watch_writes(dut, mem: dict, stamps: dict):
    """Apply every enabled granule of the three write ports to ``mem`` (row -> lanes), as the memories do;
    note the cycle of each AR handshake and R beat in ``stamps``."""
    P = tb_params()["rtl"]["lanes"]
    ports = {"weights": ("w_wr", 2 * P, 8), "biases": ("b_wr", 2 * P, 24), "thresholds": ("th_wr", P, 24)}
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycle += 1
        if int(dut.m_axi__arvalid.value) and int(dut.m_axi__arready.value):
            stamps["ar"].append(cycle)
        if int(dut.m_axi__rvalid.value) and int(dut.m_axi__rready.value):
            stamps["r"].append(cycle)
        if int(dut.cmd__valid.value) and int(dut.cmd__ready.value):
            stamps["cmd"].append(cycle)
        for name, (port, n, bits) in ports.items():
            en = int(getattr(dut, f"{port}__en").value)
            if not en:
                continue
            write_granules(mem[name], int(getattr(dut, f"{port}__addr").value), en,
                           int(getattr(dut, f"{port}__data").value), n, bits, len(getattr(dut, f"{port}__en")))


async def run(dut, pause: float, seed: int, exact: bool):
    params = tb_params()
    P = params["rtl"]["lanes"]
    model = IntModel.load(params["model"])
    await tb.start(dut)
    ram = tb.axi_ram(dut, AxiRamRead, AxiReadBus, RAM_BYTES, pause, params["seed"] + seed)
    ram.write(BASE, ddr.pack_weights(model, P))
    tiles = ddr.tiles(model.config, P)
    mem, stamps = {"weights": {}, "biases": {}, "thresholds": {}}, {"ar": [], "r": [], "cmd": []}
    cocotb.start_soon(watch_writes(dut, mem, stamps))
    src = tb.source(dut, "cmd", pause, params["seed"] + seed + 7)
    lay = dut_layout(params)
    for cmd in tile_commands(model.config, P, BASE):
        await src.send(tb.PayloadTransaction(payload=tb.pack(lay, cmd)))
    beats = sum(t["bytes"] for t in tiles) // ddr.BEAT_BYTES
    while len(stamps["r"]) < beats:   # every write happens in the cycle of its beat
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.busy.value) == 0 and len(stamps["r"]) == beats
    assert int(dut.error.value) == 0

    want = memory_images(model, P)
    for name, rows in want.items():
        for r, row in enumerate(rows):
            assert mem[name].get(r) == [int(v) for v in row], f"{name} row {r}"
    # the reader's rule, whatever the RAM's timing: each tile's bursts as hw.axi_master splits them, and
    # the next tile taken the cycle after the last of them is addressed
    n_bursts = [len(ddr.bursts(BASE + t["offset"], t["bytes"] // ddr.BEAT_BYTES)) for t in tiles]
    assert len(stamps["ar"]) == sum(n_bursts)
    if exact:   # the source offers the commands back to back
        last_ar = [stamps["ar"][e - 1] for e in itertools.accumulate(n_bursts)]
        assert stamps["cmd"][1:] == [c + 1 for c in last_ar[:-1]]
        # cocotbext-axi's RAM takes the addresses more slowly than a burst a cycle (so the acceptances differ
        # from ddr.read_schedule's) but streams its beats without a gap after its first burst's latency:
        # every tile is in its memories in the cycle ddr.read_schedule gives
        latency = stamps["r"][0] - stamps["ar"][0]
        sched = ddr.read_schedule([(BASE + t["offset"], t["bytes"] // ddr.BEAT_BYTES) for t in tiles], latency)
        ends = [stamps["r"][e - 1] - stamps["cmd"][0]
                for e in itertools.accumulate(t["bytes"] // ddr.BEAT_BYTES for t in tiles)]
        assert ends == [last for _, last in sched], f"tiles' last beats, RAM latency {latency}"
        dut._log.info(f"{len(tiles)} tiles, {len(stamps['r'])} beats in {ends[-1] + 1} cycles (RAM latency "
                      f"{latency}), as ddr.read_schedule gives")


def dut_layout(params):
    from hw.tile_loader import tile_command_layout

    r = params["rtl"]
    return tile_command_layout(r["max_fan_in"], r["weight_rows"], r["bias_rows"], r["th_rows"])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def tiles_full_rate_in_the_predicted_cycles(dut):
    await run(dut, 0.0, 0, exact=True)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def tiles_with_random_latency_and_gaps(dut):
    await run(dut, 0.5, 1, exact=False)
