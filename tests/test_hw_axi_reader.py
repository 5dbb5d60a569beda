# amaranth: UnusedElaboratable=no
"""hw/axi_reader.py: commands of beats read through AXI, against a memory model (fast tier: Amaranth's
simulator, a slave written here; cocotb + Verilator: cocotbext-axi's AxiRamRead, sim/tb_axi_reader.py)."""

import random

import pytest

from dynaspike import ddr
from hw.axi_reader import AxiReader
from sim import amaranth_tb as atb
from sim.cases import read_commands as commands

SEED = 17
SLVERR = 2


def word(addr: int) -> int:
    """The memory's 64-bit beat at byte address ``addr`` (a function of the address: every beat differs)."""
    return (addr * 0x9E3779B97F4A7C15 + 0x1234) & ((1 << 64) - 1)


def run_reader(cmds, *, burst=ddr.BURST, outstanding=ddr.OUTSTANDING, stall=0.0, ar_idle=0.0, r_idle=0.0, error_at=(), seed=SEED,
               latency=1):
    """Run ``cmds`` through an AxiReader, each burst's first beat ``latency`` cycles after its address at the
    earliest; return (beats out as (data, last), AR log, state: max bursts in flight, error, resp, the
    cycles of the commands' acceptances and of the last beats)."""
    dut = AxiReader(burst=burst, outstanding=outstanding)
    ax = dut.m_axi
    lay = dut.cmd.payload.shape()
    total = sum(n for _, n in cmds)
    drv = atb.StreamDriver(dut.cmd, [lay.const({"addr": a, "beats": n}) for a, n in cmds], seed=seed)
    mon = atb.StreamMonitor(dut.o, total, stall=stall, seed=seed + 1)
    ars, state = [], {"max_in_flight": 0, "error": None}

    async def slave(ctx):
        """AR with random arready; R beats of the accepted bursts in order, with random idle cycles."""
        rng = random.Random(seed + 2)
        pending, cur, now = [], [], 0
        while True:
            ar_ready = int(rng.random() >= ar_idle)
            ctx.set(ax.arready, ar_ready)
            r_valid = bool(cur) and now >= cur_at and rng.random() >= r_idle
            if r_valid:
                addr, last = cur[0]
                ctx.set(ax.rdata, word(addr))
                ctx.set(ax.rlast, last)
                ctx.set(ax.rresp, SLVERR if addr in error_at else 0)
            ctx.set(ax.rvalid, r_valid)
            _, _, arvalid, araddr, arlen, arsize, arburst, rready = await ctx.tick().sample(
                ax.arvalid, ax.araddr, ax.arlen, ax.arsize, ax.arburst, ax.rready)
            if arvalid and ar_ready:
                ars.append((araddr, arlen, arsize, arburst))
                pending.append((now + latency, [(araddr + 8 * k, k == arlen) for k in range(arlen + 1)]))
            if r_valid and rready:
                cur.pop(0)
            now += 1
            if not cur and pending:
                cur_at, cur = pending.pop(0)
            state["max_in_flight"] = max(state["max_in_flight"], len(pending) + bool(cur))

    async def end(ctx):
        await drv(ctx)
        while len(mon.payloads) < total:
            await ctx.tick()
        for _ in range(4):
            await ctx.tick()
        state["error"], state["resp"], state["busy"] = ctx.get(dut.error), ctx.get(dut.resp), ctx.get(dut.busy)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.tick()
        state["after_clear"] = (ctx.get(dut.error), ctx.get(dut.resp))

    atb.run(dut, end, mon, background=[slave], deadline_cycles=40_000)
    state["accepted"] = drv.cycles
    state["last_beats"] = [c for c, p in zip(mon.cycles, mon.payloads) if p.last]
    return [(p.data, p.last) for p in mon.payloads], ars, state


@pytest.mark.parametrize("stall,ar_idle,r_idle", [(0.0, 0.0, 0.0), (0.3, 0.5, 0.4)], ids=["full-rate", "random"])
def test_reader_reads_every_beat_in_bursts_that_stay_inside_their_block(stall, ar_idle, r_idle):
    cmds = commands(SEED)
    beats, ars, state = run_reader(cmds, stall=stall, ar_idle=ar_idle, r_idle=r_idle)
    want = [(word(a + 8 * k), k == n - 1) for a, n in cmds for k in range(n)]
    assert beats == want
    for addr, arlen, arsize, arburst in ars:
        assert (arsize, arburst) == (3, 1) and arlen <= 15
        assert addr // 128 == (addr + 8 * arlen) // 128, f"burst {addr:#x}+{arlen + 1} leaves its 16-beat block"
    assert sum(arlen + 1 for _, arlen, _, _ in ars) == sum(n for _, n in cmds)
    assert 1 <= state["max_in_flight"] <= ddr.OUTSTANDING
    assert (state["error"], state["busy"]) == (0, 0)


@pytest.mark.parametrize("latency", [1, 5, 40])
def test_reader_takes_the_next_command_while_data_comes_back_when_read_schedule_says(latency):
    cmds = commands(SEED)
    beats, _, state = run_reader(cmds, latency=latency)
    assert beats == [(word(a + 8 * k), k == n - 1) for a, n in cmds for k in range(n)]
    sched = ddr.read_schedule(cmds, latency)
    assert state["accepted"] == [a for a, _ in sched]
    assert state["last_beats"] == [last for (_, last), (_, n) in zip(sched, cmds) if n]


def test_reader_keeps_at_most_its_outstanding_bursts_and_reports_the_first_error():
    cmds = [(0x8000, 64), (0x9000, 5)]
    beats, ars, state = run_reader(cmds, outstanding=2, burst=4, r_idle=0.6, error_at={0x8000 + 8 * 20, 0x9000})
    assert [d for d, _ in beats] == [word(a + 8 * k) for a, n in cmds for k in range(n)]   # the data still flows
    assert all(arlen <= 3 for _, arlen, _, _ in ars) and len(ars) == 16 + 2
    assert state["max_in_flight"] <= 2
    assert (state["error"], state["resp"]) == (1, SLVERR)
    assert state["after_clear"] == (0, 0)


def test_reader_refuses_a_burst_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="burst must be a power of two"):
        AxiReader(burst=12)
    with pytest.raises(ValueError, match="at most 256"):
        AxiReader(burst=512)


@pytest.mark.sim
def test_axi_reader_verilator():
    from sim.runner import run_cocotb

    run_cocotb("axi_reader", AxiReader, {}, "tb_axi_reader", {"seed": SEED, "count": 30})
