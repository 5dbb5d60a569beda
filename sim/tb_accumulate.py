"""cocotb testbench of hw/accumulate.py (AccumulateEngine); run by tests/test_hw_accumulate.py."""

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from dynaspike.formats import FORMATS
from hw import reference as ref
from hw.accumulate import event_layout
from sim import cocotb_tb as tb
from sim.cases import acc_events, acc_memory, acc_rows
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def load(dut, W, bias, lanes):
    """Write both memories through the write ports, one row per cycle."""
    w_shape = data.ArrayLayout(signed(FORMATS.weight_bits), lanes)
    b_shape = data.ArrayLayout(signed(FORMATS.acc_bits), lanes)
    for prefix, mem, shape in (("w_wr", W, w_shape), ("b_wr", bias, b_shape)):
        en, addr, dat = (getattr(dut, f"{prefix}__{s}") for s in ("en", "addr", "data"))
        for a, row in enumerate(mem):
            en.value, addr.value, dat.value = 1, a, tb.pack(shape, row)
            await RisingEdge(dut.clk)
        en.value = 0


async def run_rows(dut, kind, idle, stall, seed):
    params = tb_params()
    rtl = params["rtl"]
    lanes, weight_rows, bias_rows = rtl["lanes"], rtl["weight_rows"], rtl["bias_rows"]
    seed = params["seed"] + seed
    W, bias = acc_memory(lanes, weight_rows, bias_rows, seed, kind)
    rows = acc_rows(weight_rows, bias_rows, params["count"], seed, fan_in=params["fan_in"])
    ev = event_layout(weight_rows, bias_rows)
    out_shape = data.ArrayLayout(signed(FORMATS.acc_bits), lanes)
    await tb.start(dut)
    await load(dut, W, bias, lanes)
    log = tb.TransferLog(dut, "i", "o")
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    for e in acc_events(rows):
        await src.send(tb.PayloadTransaction(payload=tb.pack(ev, e)))
    for n, (spikes, w_base, b_row) in enumerate(rows):
        got = [int(a) for a in tb.unpack(out_shape, (await snk.recv()).payload)]
        expected = ref.accumulate(bias[b_row], W[w_base:], spikes)
        for p, (g, e) in enumerate(zip(got, expected)):
            assert g == e, (f"seed {seed} memory {kind} row {n} (w_base={w_base}, b_row={b_row}, "
                            f"{len(spikes)} spikes) lane {p}: got {g}, expected {e}")
    await RisingEdge(dut.clk)
    return rows, log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def accumulate_back_to_back_cycles(dut):
    """Producer always valid, consumer always ready: RTL cycles equal dynaspike.cycles exactly."""
    rows, log = await run_rows(dut, "random", 0.0, 0.0, 0)
    counts = [len(r[0]) for r in rows]
    i, o = log.cycles["i"], log.cycles["o"]
    assert i == list(range(i[0], i[0] + len(i))), f"the engine stalled its input: transfers at {i}"
    assert [c - i[0] for c in o] == cycles.acc_done_cycles(counts), (
        f"row done cycles {[c - i[0] for c in o]} differ from the model {cycles.acc_done_cycles(counts)}")
    assert o[-1] - i[0] == cycles.acc_cycles(counts)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def accumulate_idle_and_backpressure(dut):
    await run_rows(dut, "random", 0.3, 0.5, 3)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def accumulate_extremes_max(dut):
    """Every weight +127, biases such that a row with every spike present reaches exactly acc_max."""
    await run_rows(dut, "max", 0.1, 0.3, 5)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def accumulate_extremes_min(dut):
    await run_rows(dut, "min", 0.1, 0.3, 6)
