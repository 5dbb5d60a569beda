# amaranth: UnusedElaboratable=no
"""hw/axi_writer.py: commands of beats written through AXI, into a memory model (fast tier: Amaranth's
simulator, a slave written here; cocotb + Verilator: cocotbext-axi's AxiRamWrite, sim/tb_axi_writer.py)."""

import itertools

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
    mem, aws, state = {}, [], {}
    slave = atb.axi_write_slave(ax, mem, aws=aws, state=state, aw_idle=aw_idle, w_idle=w_idle, b_delay=b_delay,
                                error_bursts=error_bursts, seed=seed + 2)

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
