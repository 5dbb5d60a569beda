# amaranth: UnusedElaboratable=no
"""hw/read_arbiter.py: two clients' commands through one AxiReader (fast tier: Amaranth's simulator and
``sim.amaranth_tb.axi_read_slave``): every client gets its own beats in order, whatever the backpressure
and idles, and with none the timing of every command and beat is ``dynaspike.ddr.shared_read_beats``'."""

import pytest
from dynaspike import ddr
from hw.read_arbiter import ReadArbiter, SharedReader
from sim import amaranth_tb as atb
from sim.cases import read_commands

SEED = 29


def word(addr: int) -> int:
    return (addr * 0x9E3779B97F4A7C15 + 0x5678) & ((1 << 64) - 1)


def run(cmds, *, delays=None, idle=0.0, stall=0.0, ar_idle=0.0, r_idle=0.0, latency=1, seed=SEED):
    """Each client's commands ``cmds[k]`` (``(addr, beats)``) from cycle ``delays[k]`` on; returns per client
    the beats it got (data, last), its commands' acceptance cycles and its beats' cycles."""
    dut = SharedReader(len(cmds))
    lay = dut.cmds[0].payload.shape()
    delays = delays or [0] * len(cmds)
    drivers = [atb.StreamDriver(dut.cmds[k], [lay.const({"addr": a, "beats": n}) for a, n in c], idle=idle,
                                seed=seed + 10 * k, delay=delays[k]) for k, c in enumerate(cmds)]
    monitors = [atb.StreamMonitor(dut.outs[k], sum(n for _, n in c), stall=stall, seed=seed + 10 * k + 1)
                for k, c in enumerate(cmds)]
    slave = atb.axi_read_slave(dut.m_axi, word, latency=latency, ar_idle=ar_idle, r_idle=r_idle,
                               seed=seed + 99)
    state = {}

    async def end(ctx):
        await drivers[0](ctx)
        while any(len(mo.payloads) < mo.count for mo in monitors):
            await ctx.tick()
        for _ in range(3):
            await ctx.tick()
        state["busy"] = ctx.get(dut.busy)

    # the drivers after the first run beside `end` (which awaits the first itself)
    atb.run(dut, end, *drivers[1:], *monitors, background=[slave], deadline_cycles=60_000)
    got = [[(p.data, p.last) for p in mo.payloads] for mo in monitors]
    return got, [d.cycles for d in drivers], [mo.cycles for mo in monitors], state


def want(c):
    return [(word(a + 8 * k), k == n - 1) for a, n in c for k in range(n)]


def two_clients(seed=SEED):
    tiles = read_commands(seed)                                   # one beat to 100, zero beats, page crossings
    rows = [(0x80000 + 96 * i, 12) for i in range(10)] + [(0x90000, 0), (0x90010, 24)]   # membrane-like runs
    return [tiles, rows]


@pytest.mark.parametrize("idle,stall,ar_idle,r_idle", [(0.0, 0.0, 0.0, 0.0), (0.3, 0.3, 0.4, 0.3)],
                         ids=["full-rate", "random"])
def test_each_client_gets_its_own_beats_in_order(idle, stall, ar_idle, r_idle):
    cmds = two_clients()
    got, _, _, state = run(cmds, idle=idle, stall=stall, ar_idle=ar_idle, r_idle=r_idle)
    assert got == [want(c) for c in cmds]
    assert state["busy"] == 0


@pytest.mark.parametrize("latency,delays", [(1, [0, 0]), (5, [0, 7]), (40, [30, 0]), (40, [0, 0])])
def test_timing_is_shared_read_beats(latency, delays):
    cmds = two_clients()
    got, accepted, beats, _ = run(cmds, latency=latency, delays=delays)
    assert got == [want(c) for c in cmds]
    sched = ddr.shared_read_beats([[(a, n, delays[k] if i == 0 else 0) for i, (a, n) in enumerate(c)]
                                   for k, c in enumerate(cmds)], latency)
    for k in range(len(cmds)):
        assert accepted[k] == [a for a, _ in sched[k]], f"client {k}: acceptances"
        assert beats[k] == [b for _, bs in sched[k] for b in bs], f"client {k}: beats"


def test_round_robin_alternates_when_both_offer():
    cmds = [[(0x1000 + 128 * i, 2) for i in range(4)], [(0x8000 + 128 * i, 2) for i in range(4)]]
    _, accepted, _, _ = run(cmds, latency=3)
    order = sorted([(c, k) for k in range(2) for c in accepted[k]])
    assert [k for _, k in order] == [0, 1] * 4, order


def test_three_clients_and_refusals():
    cmds = [[(0x1000, 3), (0x1100, 1)], [(0x2000, 17)], [(0x3000, 0), (0x3008, 5)]]
    got, accepted, beats, _ = run(cmds, latency=4, stall=0.0)
    assert got == [want(c) for c in cmds]
    sched = ddr.shared_read_beats([[(a, n, 0) for a, n in c] for c in cmds], 4)
    assert accepted == [[a for a, _ in s] for s in sched]
    with pytest.raises(ValueError, match="clients must be an integer >= 2"):
        ReadArbiter(1)
    with pytest.raises(ValueError, match="SharedReader clients must be an integer >= 2"):
        SharedReader(True)
    with pytest.raises(ValueError, match="read_latency"):
        ddr.shared_read_beats([[(0, 1, 0)]], 0)


@pytest.mark.sim
def test_shared_reader_verilator():
    from sim.runner import run_cocotb

    run_cocotb("read_arbiter", SharedReader, {}, "tb_read_arbiter", {"seed": SEED, "count": 20})
