"""cocotb testbench of hw/attention.py (AttentionKV); run by tests/test_hw_attention.py."""

import cocotb
from cocotb.triggers import RisingEdge

from dynaspike import cycles
from hw import reference as ref
from hw.attention import kv_layout, q_layout, y_layout
from sim import cocotb_tb as tb
from sim.cases import attention_packets
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


async def run(dut, idle, stall, seed):
    p = tb_params()
    N, D, H = p["rtl"]["max_tokens"], p["rtl"]["dim"], p["rtl"]["heads"]
    seed = p["seed"] + seed
    packets = attention_packets(N, D, p["count"], seed)
    lkv, lq, ly = kv_layout(N, D), q_layout(D), y_layout(N, D, H)
    await tb.start(dut)
    log = tb.TransferLog(dut, "kv_i", "q_i", "o")
    # Both sources are filled at once: the unit itself alternates between the KV and the Y phase.
    kv_src, q_src = tb.source(dut, "kv_i", idle, seed), tb.source(dut, "q_i", idle, seed + 7)
    snk = tb.sink(dut, "o", stall, seed + 1)
    for ks, vs, sizes, qs in packets:
        for n, (k, v, s) in enumerate(zip(ks, vs, sizes)):
            await kv_src.send(tb.PayloadTransaction(payload=tb.pack(
                lkv, {"k": k, "v": v, "size": s, "last": int(n == len(ks) - 1)})))
        for n, q in enumerate(qs):
            await q_src.send(tb.PayloadTransaction(payload=tb.pack(lq, {"q": q, "last": int(n == len(qs) - 1)})))
    for m, (ks, vs, sizes, qs) in enumerate(packets):
        want = ref.attention(ks, vs, sizes, qs, D, H)
        for i, row in enumerate(want):
            out = tb.unpack(ly, (await snk.recv()).payload)
            got = [int(x) for x in out.y]
            bad = [(c, g, w) for c, (g, w) in enumerate(zip(got, row)) if g != w]
            assert not bad, f"seed {seed} packet {m} Q token {i}: (channel, got, expected) {bad[:6]}"
            assert int(out.last) == int(i == len(qs) - 1), f"seed {seed} packet {m} Q token {i}: last flag"
    await RisingEdge(dut.clk)
    return packets, log


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def attention_back_to_back_cycles(dut):
    p = tb_params()
    D, H = p["rtl"]["dim"], p["rtl"]["heads"]
    packets, log = await run(dut, 0.0, 0.0, 0)
    kv_pos = q_pos = 0
    for m, (ks, vs, sizes, qs) in enumerate(packets):
        start = log.cycles["kv_i"][kv_pos]
        kv_pos += len(ks)
        q_pos += len(qs)
        took = log.cycles["o"][q_pos - 1] - start
        want = cycles.attn_cycles(ks, vs, qs, D, H)
        assert took == want, f"packet {m}: {took} cycles, the model says {want}"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def attention_idle_and_backpressure(dut):
    await run(dut, 0.3, 0.5, 1)
