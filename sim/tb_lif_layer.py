"""cocotb testbench of hw/lif_layer.py (LIFLayer); run by tests/test_hw_lif_layer.py."""

import cocotb
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from hw import reference as ref
from hw.lif_layer import spikes_layout, update_layout
from sim import cocotb_tb as tb
from sim.cases import lif_layer_jobs
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run(dut, idle, stall, seed):
    p = tb_params()
    lanes, rows = p["rtl"]["lanes"], p["rtl"]["rows"]
    seed = p["seed"] + seed
    lin, lout = update_layout(lanes, rows), spikes_layout(lanes, rows)
    await tb.start(dut)
    log = tb.TransferLog(dut, "i", "o")
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    spans = []
    for n, ups in enumerate(lif_layer_jobs(lanes, rows, p["count"], seed)):
        await src.wait()  # the previous image's updates are all in: clear for the next image
        while len(log.cycles["o"]) < sum(len(u) for u in spans):
            await RisingEdge(dut.clk)
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        first_in = len(log.cycles["i"])
        for r, x, th in ups:
            await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"row": r, "x": x, "th": th})))
        for u, (row, spikes, v) in enumerate(ref.lif_layer(ups, rows, lanes)):
            out = tb.unpack(lout, (await snk.recv()).payload)
            got = (int(out.row), [(int(out.spike) >> q) & 1 for q in range(lanes)], [int(a) for a in out.v])
            assert got == (row, spikes, v), f"seed {seed} image {n} update {u} row {row}: got {got[:2]}, expected {(row, spikes)}"
        spans.append(ups)
        await RisingEdge(dut.clk)
        ins = log.cycles["i"][first_in:first_in + len(ups)]
        outs = log.cycles["o"][first_in:first_in + len(ups)]
        if not idle and not stall:
            assert outs[-1] - ins[0] == cycles.lif_layer_cycles(len(ups)), (
                f"image {n}: {outs[-1] - ins[0]} cycles, the model says {cycles.lif_layer_cycles(len(ups))}")


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lif_layer_back_to_back_cycles(dut):
    await run(dut, 0.0, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lif_layer_idle_and_backpressure(dut):
    await run(dut, 0.3, 0.4, 1)
