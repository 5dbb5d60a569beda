"""cocotb testbench of hw/head.py (Head: readout counts and classifier); run by tests/test_hw_head.py."""

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from dynaspike.formats import FORMATS
from hw import reference as ref
from hw.head import count_layout, logit_layout
from sim import cocotb_tb as tb
from sim.cases import head_case
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run(dut, idle, stall, seed, images=2):
    rtl = tb_params()["rtl"]
    P, D, K, M = rtl["lanes"], rtl["dim"], rtl["classes"], rtl["mults"]
    seed = tb_params()["seed"] + seed
    case = head_case(P, D, K, M, rtl["max_weight"], 60, seed)
    lin, lout = count_layout(P, -(-D // P), rtl["max_weight"]), logit_layout(K)
    w_shape = data.ArrayLayout(signed(FORMATS.head_weight_bits), M)
    await tb.start(dut)
    dut.n_classes.value, dut.n_groups.value = K, -(-D // M)  # the whole built size
    for prefix, rows, pack in (("w_wr", case["w_rows"], lambda r: tb.pack(w_shape, r)),
                               ("b_wr", case["head_b"], lambda b: b & 0xFFFFFFFF)):
        for a, row in enumerate(rows):
            getattr(dut, f"{prefix}__en").value = 1
            getattr(dut, f"{prefix}__addr").value = a
            getattr(dut, f"{prefix}__data").value = pack(row)
            await RisingEdge(dut.clk)
        getattr(dut, f"{prefix}__en").value = 0
    log = tb.TransferLog(dut, "i", "o")
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    counts, logits = ref.head(case["beats"], case["head_w"], case["head_b"], D, P)
    for n in range(images):
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        for chunk, spikes, w in case["beats"]:
            await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"chunk": chunk, "spike": spikes, "w": w})))
        await src.wait()
        await RisingEdge(dut.clk)
        got = [int(c) for c in tb.unpack(data.ArrayLayout(FORMATS.count_bits, D), dut.counts.value)]
        assert got == counts, f"seed {seed} image {n}: counts differ at {[d for d in range(D) if got[d] != counts[d]][:5]}"
        go_cycle = log.cycle
        dut.go.value = 1
        await RisingEdge(dut.clk)
        dut.go.value = 0
        for c in range(K):
            out = tb.unpack(lout, (await snk.recv()).payload)
            g = (int(out.cls), int(out.logit), int(out.last))
            assert g == (c, logits[c], int(c == K - 1)), f"seed {seed} image {n} class {c}: got {g}, expected {logits[c]}"
        await RisingEdge(dut.clk)
        if not stall:
            took = log.cycles["o"][-1] - go_cycle
            assert took == cycles.head_cycles(K, D, M), f"classifier took {took} cycles, model {cycles.head_cycles(K, D, M)}"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def head_back_to_back_cycles(dut):
    await run(dut, 0.0, 0.0, 0)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def head_idle_and_backpressure(dut):
    await run(dut, 0.3, 0.5, 1)
