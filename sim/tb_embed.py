"""cocotb testbench of hw/embed.py (Embedding); run by tests/test_hw_embed.py."""

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from dynaspike.formats import EMB_ACC_BITS, FORMATS
from hw import reference as ref
from hw.embed import beat_stride, embed_out_layout, window_layout
from sim import cocotb_tb as tb
from sim.cases import embed_case
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run(dut, kind, dim, patch_dim, idle, stall, seed):
    rtl = tb_params()["rtl"]
    E, N, maxpd = rtl["lanes"], rtl["max_tokens"], rtl["max_patch_dim"]
    seed = tb_params()["seed"] + seed
    case = embed_case(E, dim, patch_dim, N, seed, kind, stride=beat_stride(maxpd))
    max_chunks = -(-rtl["max_dim"] // E)
    lin, lout = window_layout(N), embed_out_layout(N, max_chunks, E)
    w_shape = data.ArrayLayout(signed(FORMATS.emb_weight_bits), E)
    b_shape = data.ArrayLayout(signed(EMB_ACC_BITS), E)
    await tb.start(dut)
    dut.chunks.value, dut.patch_dim.value, dut.bpt.value = case["chunks"], patch_dim, case["bpt"]
    for prefix, rows, shape in (("w_wr", case["w_rows"], w_shape), ("b_wr", case["b_rows"], b_shape),
                                ("pix_wr", case["pix_rows"], None)):
        for a, row in enumerate(rows):
            getattr(dut, f"{prefix}__en").value = 1
            getattr(dut, f"{prefix}__addr").value = a
            getattr(dut, f"{prefix}__data").value = row if shape is None else tb.pack(shape, row)
            await RisingEdge(dut.clk)
        getattr(dut, f"{prefix}__en").value = 0
    log = tb.TransferLog(dut, "i", "o")
    src, snk = tb.source(dut, "i", idle, seed), tb.sink(dut, "o", stall, seed + 1)
    for k in range(N):
        await src.send(tb.PayloadTransaction(payload=tb.pack(lin, {"token": k})))
    want = ref.embedding(case["w"], case["b"], case["pix"])
    for k, row in enumerate(want):
        for c in range(case["chunks"]):
            out = tb.unpack(lout, (await snk.recv()).payload)
            assert (int(out.token), int(out.chunk)) == (k, c), f"seed {seed}: token/chunk {int(out.token)}/{int(out.chunk)}"
            for l in range(E):
                d = c * E + l
                if d < dim:
                    assert int(out.e[l]) == row[d], (f"seed {seed} {kind} token {k} channel {d}: got {int(out.e[l])}, "
                                                     f"expected {row[d]}")
    await RisingEdge(dut.clk)
    return case, log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def embed_back_to_back_cycles(dut):
    rtl = tb_params()["rtl"]
    case, log = await run(dut, "random", rtl["max_dim"], rtl["max_patch_dim"], 0.0, 0.0, 0)
    i, o = log.cycles["i"], log.cycles["o"]
    assert o[-1] - i[0] == cycles.embed_cycles(case["nnz"], case["chunks"])


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def embed_edges_idle_and_backpressure(dut):
    rtl = tb_params()["rtl"]
    for n, kind in enumerate(("extreme", "boundary")):
        await run(dut, kind, rtl["max_dim"], rtl["max_patch_dim"], 0.2, 0.3, 1 + n)
    await run(dut, "random", rtl["max_dim"] - 8, 4, 0.2, 0.3, 5)  # a smaller model than the capacity
