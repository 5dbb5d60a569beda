# amaranth: UnusedElaboratable=no
"""hw/attention.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.attention import AttentionKV
from sim import amaranth_tb as atb
from sim.cases import attention_packets

SEED = 2024


def run_attention(N, D, H, packets, idle, stall, seed):
    """Send each packet's KV tokens, then its Q tokens; return per-packet (kv transfer cycles, q, out)."""
    dut = AttentionKV(N, D, H)
    lkv, lq = dut.kv_i.payload.shape(), dut.q_i.payload.shape()

    # Two independent drivers, as in the core: the next packet's KV tokens are offered while the unit is
    # still in the Y phase of the previous one (and Q tokens while it is in the KV phase).
    kv_drv = atb.StreamDriver(dut.kv_i, [lkv.const({"k": k, "v": v, "size": s, "last": int(n == len(ks) - 1)})
                                         for ks, vs, sizes, _ in packets
                                         for n, (k, v, s) in enumerate(zip(ks, vs, sizes))], idle=idle, seed=seed)
    q_drv = atb.StreamDriver(dut.q_i, [lq.const({"q": q, "last": int(n == len(qs) - 1)})
                                       for *_, qs in packets for n, q in enumerate(qs)], idle=idle, seed=seed + 2)
    mon = atb.StreamMonitor(dut.o, sum(len(p[3]) for p in packets), stall=stall, seed=seed + 1)
    atb.run(dut, kv_drv, q_drv, mon)
    return {"kv": kv_drv.cycles, "q": q_drv.cycles}, mon


def check(D, H, packets, mon):
    pos = 0
    for m, (ks, vs, sizes, qs) in enumerate(packets):
        want = ref.attention(ks, vs, sizes, qs, D, H)
        for i, row in enumerate(want):
            out = mon.payloads[pos]
            got = [int(x) for x in out.y]
            bad = [(c, g, w) for c, (g, w) in enumerate(zip(got, row)) if g != w]
            assert not bad, f"packet {m} Q token {i}: (channel, got, expected) {bad[:6]}"
            assert int(out.last) == int(i == len(qs) - 1), f"packet {m} Q token {i}: last flag"
            pos += 1


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.5)])
def test_attention_matches_reference(idle, stall):
    packets = attention_packets(6, 16, 10, SEED)
    _, mon = run_attention(6, 16, 4, packets, idle, stall, SEED)
    check(16, 4, packets, mon)


def test_attention_digits_shape():
    packets = attention_packets(16, 64, 2, SEED + 1)
    _, mon = run_attention(16, 64, 4, packets, 0.1, 0.1, SEED)
    check(64, 4, packets, mon)


def test_attention_cycles_match_model():
    N, D, H = 6, 16, 4
    packets = attention_packets(N, D, 8, SEED + 2)
    stamps, mon = run_attention(N, D, H, packets, 0.0, 0.0, SEED)
    check(D, H, packets, mon)
    kv_pos = q_pos = 0
    for ks, vs, sizes, qs in packets:
        start = stamps["kv"][kv_pos]
        kv_pos += len(ks)
        q_pos += len(qs)
        end = mon.cycles[q_pos - 1]
        assert end - start == cycles.attn_cycles(ks, vs, qs, D, H), (
            f"packet took {end - start} cycles, model {cycles.attn_cycles(ks, vs, qs, D, H)}")


def test_attention_rejects_bad_parameters():
    with pytest.raises(ValueError, match="dim=10 is not a multiple of heads=4"):
        AttentionKV(4, 10, 4)
    with pytest.raises(ValueError, match="heads .* got 0"):
        AttentionKV(4, 8, 0)


@pytest.mark.sim
def test_attention_verilator():
    from sim.runner import run_cocotb

    run_cocotb("attention", AttentionKV, {"max_tokens": 16, "dim": 64, "heads": 4}, "tb_attention",
               {"seed": SEED, "count": 12})
