"""cocotb testbench of hw/merge.py (TokenMerge); run by tests/test_hw_merge.py."""

import cocotb
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from dynaspike import cycles
from hw import reference as ref
from hw.merge import merge_in_layout, merge_out_layout
from sim import cocotb_tb as tb
from sim.cases import merge_images
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def probe_sizes(dut, N, out):
    """Record ``sizes`` in every cycle where an output with ``last`` is transferred."""
    lout, lsz = merge_out_layout(N), data.ArrayLayout(range(N + 1), N)
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.o__valid.value) and int(dut.o__ready.value):
            if int(tb.unpack(lout, dut.o__payload.value).last):
                out.append([int(s) for s in tb.unpack(lsz, dut.sizes.value)])


async def run(dut, images, idle, stall, seed, one_threshold):
    N, D = tb_params()["rtl"]["max_tokens"], tb_params()["rtl"]["dim"]
    lin, lout = merge_in_layout(D), merge_out_layout(N)
    await tb.start(dut)
    log = tb.TransferLog(dut, "i", "o")
    sizes = []
    cocotb.start_soon(probe_sizes(dut, N, sizes))
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    for th, vecs in images:
        if not one_threshold:
            await src.wait()  # every token of the previous image has been compared: safe to change
        dut.threshold.value = th
        for n, b in enumerate(vecs):
            await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"bits": b, "last": int(n == len(vecs) - 1)})))
    for m, (th, vecs) in enumerate(images):
        rep, size = ref.merge(vecs, th)
        for j in range(len(vecs)):
            out = tb.unpack(lout, (await snk.recv()).payload)
            got = (int(out.token), int(out.rep), int(out.last))
            want = (j, rep[j], int(j == len(vecs) - 1))
            assert got == want, f"seed {seed} image {m} (threshold {th}) token {j}: got {got}, expected {want}"
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    for m, (th, vecs) in enumerate(images):
        want = ref.merge(vecs, th)[1] + [0] * (N - len(vecs))
        assert sizes[m] == want, f"seed {seed} image {m} (threshold {th}): sizes {sizes[m]}, expected {want}"
    return log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def merge_back_to_back_cycles(dut):
    """Images back to back at full rate: every decision in the cycle cycles.merge_decisions gives."""
    p = tb_params()
    N, D = p["rtl"]["max_tokens"], p["rtl"]["dim"]
    images = [(3, v) for _, v in merge_images(N, D, p["count"], p["seed"])]
    log = await run(dut, images, 0.0, 0.0, p["seed"], True)
    i, o = log.cycles["i"], log.cycles["o"]
    pos = 0
    for k, (th, vecs) in enumerate(images):
        n = len(vecs)
        want = cycles.merge_decisions(i[pos:pos + n], cycles.merge_compares(ref.merge(vecs, th)[0], th >= 0))
        assert o[pos:pos + n] == want, f"image {k}: decisions offered in {o[pos:pos + n]}, expected {want}"
        pos += n


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def merge_thresholds_idle_and_backpressure(dut):
    p = tb_params()
    N, D = p["rtl"]["max_tokens"], p["rtl"]["dim"]
    await run(dut, merge_images(N, D, p["count"], p["seed"] + 1), 0.3, 0.4, p["seed"] + 1, False)
