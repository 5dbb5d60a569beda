"""cocotb testbench of hw/state_mover.py with a staging hw/lif_layer.py, an AxiReader and an AxiWriter (the test's
``StatePath``) against cocotbext-axi's AXI RAM, read and write sides on one memory; run by
tests/test_hw_state_mover.py. ``sim.cases.state_banks``' rows: fill bank 0 from the RAM; update bank 0 while
filling bank 1; drain bank 0 while updating bank 1; drain bank 1. The RAM then holds the reference LIF's new
membranes of every row, and the layer gave its spikes, with the RAM's channels and every input stream paused
at random (the layer's output is never stalled)."""

import cocotb
from cocotb.triggers import Combine, RisingEdge
from cocotbext.axi import AxiRamRead, AxiRamWrite, AxiReadBus, AxiWriteBus

from dynaspike import ddr
from hw.lif_layer import spikes_layout, update_layout
from hw.state_mover import move_layout
from sim import cocotb_tb as tb
from sim.cases import state_banks
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS
RAM_BYTES = 1 << 20


async def run(dut, pause: float, seed: int):
    params = tb_params()
    rtl, seed = params["rtl"], params["seed"] + seed
    lanes, rows, max_rows = rtl["lanes"], rtl["rows"], rtl["max_rows"]
    await tb.start(dut)
    wram = tb.axi_ram(dut, AxiRamWrite, AxiWriteBus, RAM_BYTES, pause, seed, prefix="m_axi_w")
    rram = tb.axi_ram(dut, AxiRamRead, AxiReadBus, RAM_BYTES, pause, seed + 10, prefix="m_axi_r", mem=wram.mem)
    case = state_banks(lanes, rows, seed, max_rows)
    bank, row_bytes = case["bank"], case["row_bytes"]
    rram.write(case["in_addr"], ddr.pack_lanes(case["v_in"]))
    lf, ld = move_layout(rows, max_rows, zero=True), move_layout(rows, max_rows)
    lu, ls = update_layout(lanes, rows), spikes_layout(lanes, rows, membranes=False)
    fill, drain = tb.source(dut, "fill", pause, seed + 1), tb.source(dut, "drain", pause, seed + 2)
    upd, out = tb.source(dut, "i", pause, seed + 3), tb.sink(dut, "o", 0.0, seed + 4)   # never stalled
    dut.staged.value = 1
    spikes = {}

    async def send(src, layout, items):
        for item in items:
            await src.send(tb.PayloadTransaction(payload=tb.pack(layout, item)))
        await src.wait()

    async def fills(b):
        await send(fill, lf, [{"addr": case["in_addr"] + r * row_bytes, "row": r, "rows": n, "zero": z}
                              for r, n, z in case["fills"][b]])

    async def drains(b):
        await send(drain, ld, [{"addr": case["out_addr"] + r * row_bytes, "row": r, "rows": n}
                               for r, n in case["drains"][b]])

    async def updates(b):
        sending = cocotb.start_soon(send(upd, lu, [{"row": r, "x": [int(a) for a in case["x"][r]],
                                                    "th": [int(a) for a in case["th"][r]]}
                                                   for r in range(b * bank, (b + 1) * bank)]))
        for _ in range(bank):
            o = tb.unpack(ls, (await out.recv()).payload)
            spikes[int(o.row)] = [(int(o.spike) >> k) & 1 for k in range(lanes)]
        await sending

    async def idle(*names):
        await RisingEdge(dut.clk)
        while any(int(getattr(dut, n).value) for n in names):
            await RisingEdge(dut.clk)

    for jobs in ([fills(0)], [fills(1), updates(0)], [drains(0), updates(1)], [drains(1)]):
        await Combine(*(cocotb.start_soon(j) for j in jobs))
        await idle("fill_busy", "drain_busy")
    await idle("busy")
    for r in range(2 * bank):
        got = [int(a) for a in ddr.unpack_lanes(wram.read(case["out_addr"] + r * row_bytes, row_bytes), lanes)]
        assert (spikes[r], got) == case["want"][r], f"seed {seed}: row {r}"
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def state_full_rate(dut):
    await run(dut, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def state_random_latency_and_backpressure(dut):   # one RAM model per test: they run till its end
    await run(dut, 0.4, 1)
