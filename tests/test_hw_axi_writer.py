# amaranth: UnusedElaboratable=no
"""hw/axi_writer.py: commands of beats written through AXI, into a memory model (fast tier: Amaranth's
simulator, a slave written here; cocotb + Verilator: cocotbext-axi's AxiRamWrite, sim/tb_axi_writer.py)."""

import itertools
import random

import pytest

from dynaspike import ddr
from hw.axi_writer import AxiWriter
from sim import amaranth_tb as atb
from sim.cases import read_commands as commands

SEED = 23
SLVERR = 2


def data_of(a: int, k: int) -> int:
    """The beat the test writes as beat ``k`` of the command at byte address ``a``."""
    return ((a + 8 * k) * 0x2545F4914F6CDD1D + k) & ((1 << 64) - 1)


def run_writer(cmds, *, burst=ddr.BURST, outstanding=ddr.OUTSTANDING, idle=0.0, aw_idle=0.0, w_idle=0.0, b_delay=0,
               error_bursts=(), seed=SEED):
    """Run ``cmds`` through an AxiWriter; return (memory {byte address: beat}, AW log, max bursts waiting for a
    response, state at the end)."""
    dut = AxiWriter(burst=burst, outstanding=outstanding)
    ax = dut.m_axi
    lay, blay = dut.cmd.payload.shape(), dut.i.payload.shape()
    beats = [blay.const({"data": data_of(a, k), "last": k == n - 1}) for a, n in cmds for k in range(n)]
    cdrv = atb.StreamDriver(dut.cmd, [lay.const({"addr": a, "beats": n}) for a, n in cmds], seed=seed)
    ddrv = atb.StreamDriver(dut.i, beats, idle=idle, seed=seed + 1)
    mem, aws, state = {}, [], {"max_waiting": 0, "bursts": 0, "responses": []}

    async def slave(ctx):
        """AW and W with random ready; a burst's data goes where its address says; B a few cycles after the
        burst's last beat, SLVERR for the bursts in ``error_bursts`` (by their order)."""
        rng = random.Random(seed + 2)
        addrs, cur, b_due, cycle, waiting = [], None, [], 0, 0
        while True:
            aw_ready, w_ready = int(rng.random() >= aw_idle), int(rng.random() >= w_idle)
            ctx.set(ax.awready, aw_ready)
            ctx.set(ax.wready, w_ready)
            b_valid = bool(b_due) and b_due[0][0] <= cycle
            if b_valid:
                ctx.set(ax.bresp, SLVERR if b_due[0][1] in error_bursts else 0)
            ctx.set(ax.bvalid, b_valid)
            (_, _, awvalid, awaddr, awlen, awsize, awburst, wvalid, wdata, wstrb, wlast,
             bready) = await ctx.tick().sample(ax.awvalid, ax.awaddr, ax.awlen, ax.awsize, ax.awburst, ax.wvalid,
                                               ax.wdata, ax.wstrb, ax.wlast, ax.bready)
            if awvalid and aw_ready:
                aws.append((awaddr, awlen, awsize, awburst))
                addrs.append([awaddr + 8 * k for k in range(awlen + 1)])
                waiting += 1
            if wvalid and w_ready:
                if cur is None:
                    assert addrs, "write data before its burst's address"
                    cur = addrs.pop(0)
                assert wstrb == 0xFF
                mem[cur.pop(0)] = wdata
                assert wlast == (not cur), "WLAST not on the burst's last beat"
                if not cur:
                    cur = None
                    b_due.append((cycle + b_delay, state["bursts"]))
                    state["bursts"] += 1
            if b_valid and bready:
                b_due.pop(0)
                waiting -= 1
                state["responses"].append(cycle)
            state["max_waiting"] = max(state["max_waiting"], waiting)
            state["waiting"] = waiting
            cycle += 1

    async def end(ctx):
        await cdrv(ctx)
        while True:
            _, _, busy, cready = await ctx.tick().sample(dut.busy, dut.cmd.ready)
            if not busy and len(mem) == sum(n for _, n in cmds if n):
                break
        state["error"], state["resp"] = ctx.get(dut.error), ctx.get(dut.resp)
        assert state["waiting"] == 0, "busy fell before every burst's write response"

    atb.run(dut, end, ddrv, background=[slave], deadline_cycles=60_000)
    state["accepted"] = cdrv.cycles
    return mem, aws, state


def unique(cmds):
    """The commands without overlaps (later writes would hide earlier ones)."""
    seen, out = set(), []
    for a, n in cmds:
        span = set(range(a, a + 8 * n, 8))
        if not span & seen:
            out.append((a, n))
            seen |= span
    return out


@pytest.mark.parametrize("idle,aw_idle,w_idle,b_delay", [(0.0, 0.0, 0.0, 0), (0.3, 0.5, 0.4, 7)],
                         ids=["full-rate", "random"])
def test_writer_writes_every_beat_in_bursts_that_stay_inside_their_block(idle, aw_idle, w_idle, b_delay):
    cmds = unique(commands(SEED))
    mem, aws, state = run_writer(cmds, idle=idle, aw_idle=aw_idle, w_idle=w_idle, b_delay=b_delay)
    assert mem == {a + 8 * k: data_of(a, k) for a, n in cmds for k in range(n)}
    for addr, awlen, awsize, awburst in aws:
        assert (awsize, awburst) == (3, 1) and awlen <= 15
        assert addr // 128 == (addr + 8 * awlen) // 128, f"burst {addr:#x}+{awlen + 1} leaves its 16-beat block"
    assert 1 <= state["max_waiting"] <= ddr.OUTSTANDING
    assert state["error"] == 0


@pytest.mark.parametrize("b_delay", [1, 6, 40])
def test_writer_takes_the_next_command_before_the_responses_when_write_schedule_says(b_delay):
    cmds = unique(commands(SEED))
    mem, aws, state = run_writer(cmds, b_delay=b_delay)
    assert mem == {a + 8 * k: data_of(a, k) for a, n in cmds for k in range(n)}
    sched = ddr.write_schedule(cmds, b_delay)
    assert state["accepted"] == [a for a, _ in sched]
    ends = list(itertools.accumulate(len(ddr.bursts(a, n)) for a, n in cmds))
    assert [state["responses"][e - 1] for e, (_, n) in zip(ends, cmds) if n] == [r for (_, r), (_, n) in
                                                                               zip(sched, cmds) if n]


def test_writer_keeps_at_most_its_outstanding_bursts_and_reports_the_first_error():
    cmds = [(0x8000, 64), (0xA000, 5)]
    mem, aws, state = run_writer(cmds, burst=4, outstanding=2, b_delay=20, error_bursts={3, 16})
    assert mem == {a + 8 * k: data_of(a, k) for a, n in cmds for k in range(n)}
    assert all(awlen <= 3 for _, awlen, _, _ in aws) and len(aws) == 16 + 2
    assert state["max_waiting"] <= 2
    assert (state["error"], state["resp"]) == (1, SLVERR)


def test_writer_refuses_bad_shapes():
    with pytest.raises(ValueError, match="AxiWriter outstanding must be a power of two"):
        AxiWriter(outstanding=3)


@pytest.mark.sim
def test_axi_writer_verilator():
    from sim.runner import run_cocotb

    run_cocotb("axi_writer", AxiWriter, {}, "tb_axi_writer", {"seed": SEED, "count": 30})
