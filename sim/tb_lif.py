"""cocotb testbench of hw/lif.py (LIFUpdate) against hw/reference.py; run by tests/test_hw_lif.py."""

import cocotb
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from hw import reference as ref
from hw.lif import lif_in_layout, lif_out_layout
from sim import cocotb_tb as tb
from sim.cases import lif_cases
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run_cases(dut, idle, stall, seed):
    params = tb_params()
    lanes = params["rtl"]["lanes"]
    cases = lif_cases(lanes, params["count"], params["seed"] + seed)
    lin, lout = lif_in_layout(lanes), lif_out_layout(lanes)
    await tb.start(dut)
    log = tb.TransferLog(dut, "i", "o")
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    for v, x, th in cases:
        await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"v": v, "x": x, "th": th})))
    for n, (v, x, th) in enumerate(cases):
        out = tb.unpack(lout, (await snk.recv()).payload)
        v_exp, s_exp = ref.lif(v, x, th)
        v_got = [int(a) for a in out.v]
        s_got = [(int(out.spike) >> p) & 1 for p in range(lanes)]
        for p in range(lanes):
            assert (v_got[p], s_got[p]) == (v_exp[p], s_exp[p]), (
                f"seed {params['seed'] + seed} case {n} lane {p}: v={v[p]} x={x[p]} th={th[p]}: got "
                f"v'={v_got[p]} spike={s_got[p]}, expected v'={v_exp[p]} spike={s_exp[p]}")
    await RisingEdge(dut.clk)
    return cases, log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lif_back_to_back_cycles(dut):
    """Always valid, always ready: one update per cycle, outputs exactly LIF_LATENCY cycles later."""
    cases, log = await run_cases(dut, 0.0, 0.0, 0)
    i, o = log.cycles["i"], log.cycles["o"]
    assert len(i) == len(o) == len(cases)
    assert i == list(range(i[0], i[0] + len(cases))), f"input stalled: transfers at {i}"
    assert o[-1] - i[0] == cycles.lif_cycles(len(cases)), (
        f"{len(cases)} updates took {o[-1] - i[0]} cycles, the model says {cycles.lif_cycles(len(cases))}")


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lif_idle_and_backpressure(dut):
    """Random idle cycles on the input and random backpressure on the output never change a result."""
    await run_cases(dut, 0.3, 0.4, 7)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lif_heavy_backpressure(dut):
    await run_cases(dut, 0.05, 0.8, 11)
