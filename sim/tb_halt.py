"""cocotb testbench of hw/halt.py (HaltUnit); run by tests/test_hw_halt.py."""

import cocotb
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from dynaspike.formats import FORMATS
from hw import reference as ref
from hw.halt import halt_in_layout, halt_out_layout
from sim import cocotb_tb as tb
from sim.cases import halt_case
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run(dut, idle, stall, seed):
    params = tb_params()
    tokens = params["rtl"]["max_tokens"]
    seed = params["seed"] + seed
    case = halt_case(tokens, params["count"], seed)
    await tb.start(dut)
    dut.clear.value = 1  # Hacc of a previous test in the same simulation
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    dut.shift.value, dut.lut_min.value, dut.threshold.value = case["shift"], case["lut_min"], case["threshold"]
    for a, v in enumerate(case["lut"]):
        dut.lut_wr__en.value, dut.lut_wr__addr.value, dut.lut_wr__data.value = 1, a, v
        await RisingEdge(dut.clk)
    dut.lut_wr__en.value = 0
    log = tb.TransferLog(dut, "i", "o")
    lin, lout = halt_in_layout(tokens), halt_out_layout(tokens)
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    for k, x, f in case["checks"]:
        await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"token": k, "x": x, "final": f})))
    halted, hacc_exp = ref.halt_checks(case["checks"], case["lut"], case["shift"], case["lut_min"],
                                       case["threshold"], tokens)
    for n, ((k, x, f), h) in enumerate(zip(case["checks"], halted)):
        out = tb.unpack(lout, (await snk.recv()).payload)
        assert (int(out.token), int(out.halted)) == (k, h), (
            f"seed {seed} check {n}: token {k} x={x} final={f}: got token {int(out.token)} halted "
            f"{int(out.halted)}, expected {h} (shift {case['shift']}, lut_min {case['lut_min']}, "
            f"threshold {case['threshold']})")
    await RisingEdge(dut.clk)
    hacc = [int(v) for v in tb.unpack(data.ArrayLayout(FORMATS.halt_acc_bits, tokens), dut.hacc.value)]
    assert hacc == hacc_exp, f"seed {seed}: Hacc {hacc}, expected {hacc_exp}"
    return case, log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def halt_back_to_back_cycles(dut):
    case, log = await run(dut, 0.0, 0.0, 0)
    i, o = log.cycles["i"], log.cycles["o"]
    assert [b - a for a, b in zip(i, o)] == [cycles.HALT_LATENCY] * len(i)
    assert o[-1] - i[0] == cycles.halt_cycles(len(case["checks"]))


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def halt_idle_and_backpressure(dut):
    await run(dut, 0.3, 0.4, 1)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def halt_other_params(dut):
    for s in range(2, 6):
        await run(dut, 0.1, 0.2, s)
