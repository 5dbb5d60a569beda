# amaranth: UnusedElaboratable=no
"""hw/state_mover.py with a staging hw/lif_layer.py, an AxiReader and an AxiWriter (fast tier: Amaranth's
simulator, ``sim.amaranth_tb``'s AXI slaves): membrane rows read from DDR, updated by the LIF layer while
the mover fills and drains the other bank, and written back are the reference LIF's, whatever the
backpressure; without it, every command, row write and read, beat and response is where
``dynaspike.ddr.fill_schedule`` and ``drain_schedule`` put them."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from dynaspike import ddr
from hw.axi_reader import AxiReader, axi_read_signature
from hw.axi_writer import AxiWriter, axi_write_signature
from hw.lif_layer import LIFLayer
from hw.state_mover import StateMover
from sim import amaranth_tb as atb
from sim.cases import state_banks

SEED = 41
IN = 0x10000                        # where the timing tests' commands read and write


class StatePath(wiring.Component):
    """A staging LIF layer, its state mover, and the mover's own AXI reader and writer, with their ports
    (the LIF layer's ``i``, ``o``, ``staged``, ``clear``; the mover's ``fill``, ``drain`` and busy flags;
    the reader's ``m_axi_r``, the writer's ``m_axi_w``; ``busy`` of the mover and the writer; either
    master's ``error``)."""

    def __init__(self, lanes: int, rows: int, max_rows: int):
        self.lif = LIFLayer(lanes, rows, transparent=False, membranes_out=False, staging=True)
        self.mover = StateMover(lanes, rows, max_rows)
        self.reader = AxiReader(beat_count_bits=self.mover.beat_count_bits)
        self.writer = AxiWriter(beat_count_bits=self.mover.beat_count_bits)
        lif, mv = self.lif.signature.members, self.mover.signature.members
        super().__init__({
            "i": lif["i"], "o": lif["o"], "staged": lif["staged"], "clear": lif["clear"],
            "fill": mv["fill"], "drain": mv["drain"], "fill_busy": mv["fill_busy"], "drain_busy": mv["drain_busy"],
            "m_axi_r": Out(axi_read_signature()), "m_axi_w": Out(axi_write_signature()),
            "busy": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lif, mv, rd, wr = self.lif, self.mover, self.reader, self.writer
        m.submodules.lif, m.submodules.mover, m.submodules.reader, m.submodules.writer = lif, mv, rd, wr
        wiring.connect(m, mv.stage, lif.stage)
        wiring.connect(m, mv.rd_cmd, rd.cmd)
        wiring.connect(m, rd.o, mv.rd)
        wiring.connect(m, mv.wr_cmd, wr.cmd)
        wiring.connect(m, mv.wr, wr.i)
        wiring.connect(m, wiring.flipped(self.i), lif.i)
        wiring.connect(m, lif.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.fill), mv.fill)
        wiring.connect(m, wiring.flipped(self.drain), mv.drain)
        wiring.connect(m, wiring.flipped(self.m_axi_r), rd.m_axi)
        wiring.connect(m, wiring.flipped(self.m_axi_w), wr.m_axi)
        m.d.comb += [lif.staged.eq(self.staged), lif.clear.eq(self.clear), self.fill_busy.eq(mv.fill_busy),
                     self.drain_busy.eq(mv.drain_busy), self.busy.eq(mv.busy | wr.busy),
                     self.error.eq(rd.error | wr.error)]
        return m


def read_row(mem: dict, addr: int, lanes: int, row_beats: int) -> list:
    buf = b"".join(mem[addr + 8 * k].to_bytes(8, "little") for k in range(row_beats))
    return [int(a) for a in ddr.unpack_lanes(buf, lanes)]


async def lockstep(ctx, drivers, monitor=None, *, seed=0):
    """Drive the streams ``drivers`` (``(port, payloads, idle)``) and take ``monitor``'s ``(port, count)``
    payloads (always ready) in one testbench, cycle by cycle, so that a test can run phases one after
    another; returns the monitor's payloads."""
    rng = random.Random(seed)
    pending = [list(items) for _, items, _ in drivers]
    got, count = [], monitor[1] if monitor else 0
    if monitor:
        ctx.set(monitor[0].ready, 1)
    while any(pending) or len(got) < count:
        offers = []
        for (port, _, idle), left in zip(drivers, pending):
            offer = bool(left) and rng.random() >= idle
            ctx.set(port.valid, offer)
            if offer:
                ctx.set(port.payload, left[0])
            offers.append(offer)
        probes = [port.ready for port, _, _ in drivers] + ([monitor[0].valid, monitor[0].payload] if monitor else [])
        _, _, *vals = await ctx.tick().sample(*probes)
        for k, offer in enumerate(offers):
            if offer and vals[k]:
                pending[k].pop(0)
        if monitor and vals[len(drivers)]:
            got.append(vals[len(drivers) + 1])
    for port, _, _ in drivers:
        ctx.set(port.valid, 0)
    return got


def run_banks(lanes=8, rows=16, seed=SEED, *, latency=3, b_delay=2, ar_idle=0.0, r_idle=0.0, aw_idle=0.0,
              w_idle=0.0, idle=0.0):
    """``sim.cases.state_banks``: fill bank 0; update bank 0 while filling bank 1; drain bank 0 while
    updating bank 1; drain bank 1 (each phase starts when the one before is idle). Returns per row the
    spikes of its update and the membranes the drains wrote, the case, the masters' error."""
    dut = StatePath(lanes, rows, 3)
    case = state_banks(lanes, rows, seed)
    bank, row_bytes, v_in = case["bank"], case["row_bytes"], case["v_in"]
    buf = ddr.pack_lanes(v_in)
    mem = {case["in_addr"] + 8 * k: int.from_bytes(buf[8 * k:8 * k + 8], "little") for k in range(len(buf) // 8)}
    flay, dlay, ulay = dut.fill.payload.shape(), dut.drain.payload.shape(), dut.i.payload.shape()
    fills = [[flay.const({"addr": case["in_addr"] + r * row_bytes, "row": r, "rows": n, "zero": z})
              for r, n, z in cmds] for cmds in case["fills"]]
    drains = [[dlay.const({"addr": case["out_addr"] + r * row_bytes, "row": r, "rows": n}) for r, n in cmds]
              for cmds in case["drains"]]
    updates = [[ulay.const({"row": r, "x": [int(a) for a in case["x"][r]], "th": [int(a) for a in case["th"][r]]})
                for r in range(b * bank, (b + 1) * bank)] for b in range(2)]
    spikes, state = {}, {}
    slave_r = atb.axi_read_slave(dut.m_axi_r, lambda a: mem.get(a, 0), latency=latency, ar_idle=ar_idle,
                                 r_idle=r_idle, seed=seed + 1)
    slave_w = atb.axi_write_slave(dut.m_axi_w, mem, aw_idle=aw_idle, w_idle=w_idle, b_delay=b_delay,
                                  seed=seed + 2)

    async def idle_wait(ctx, *signals):
        while any(ctx.get(s) for s in signals):
            await ctx.tick()

    async def tb(ctx):
        ctx.set(dut.staged, 1)
        phases = [(fills[0], [], None), (fills[1], [], 0), ([], drains[0], 1), ([], drains[1], None)]
        for n, (fill, drain, b) in enumerate(phases):
            streams = [(dut.fill, fill, idle), (dut.drain, drain, idle)]
            if b is not None:
                streams.append((dut.i, updates[b], idle))
            got = await lockstep(ctx, streams, (dut.o, bank) if b is not None else None, seed=seed + n)
            for p in got:
                spikes[int(p.row)] = [(int(p.spike) >> k) & 1 for k in range(lanes)]
            await idle_wait(ctx, dut.fill_busy, dut.drain_busy, dut.o.valid)
        await idle_wait(ctx, dut.busy)
        state["error"] = ctx.get(dut.error)

    atb.run(dut, tb, background=[slave_r, slave_w], deadline_cycles=20_000)
    got = {r: (spikes.get(r), read_row(mem, case["out_addr"] + r * row_bytes, lanes, dut.mover.RB))
           for r in range(2 * bank)}
    return got, case, state


@pytest.mark.parametrize("lanes,rows", [(8, 16), (16, 12)])
def test_rows_from_ddr_updated_and_written_back_are_the_reference(lanes, rows):
    got, case, state = run_banks(lanes, rows)
    assert got == case["want"]
    assert state["error"] == 0
    assert any(z for cmds in case["fills"] for _, _, z in cmds) and not all(z for cmds in case["fills"]
                                                                             for _, _, z in cmds)


def test_rows_survive_idles_and_backpressure_everywhere():
    # (but on the layer's output, which a staging layer never stalls)
    got, case, _ = run_banks(8, 16, SEED + 1, latency=7, b_delay=5, ar_idle=0.4, r_idle=0.3, aw_idle=0.4,
                             w_idle=0.4, idle=0.3)
    assert got == case["want"]


def random_moves(seed, count, max_rows, half, zero=True):
    """``count`` commands ``(addr, row, rows[, zero])``: 0 to ``max_rows`` rows at random 8-byte aligned
    addresses (bursts cross their blocks), staging rows wrapping round the ``half`` rows."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(0, max_rows)
        cmd = (IN + 8 * rng.randrange(0, 4096), rng.randrange(0, half - n + 1), n)
        out.append(cmd + ((rng.random() < 0.35,) if zero else ()))
    return out


def watch(signals, log):
    """A background testbench appending ``(cycle, values)`` for each cycle in which the first signal is set."""
    async def tb(ctx):
        cycle = 0
        async for _, _, *vals in ctx.tick().sample(*signals):
            if vals[0]:
                log.append((cycle, *vals[1:]))
            cycle += 1
    return tb


@pytest.mark.parametrize("latency", [1, 5, 40])
def test_fill_timing_is_fill_schedule(latency):
    lanes, rows, max_rows = 8, 40, 6
    dut = StatePath(lanes, rows, max_rows)
    mv = dut.mover
    cmds = random_moves(SEED + latency, 30, max_rows, rows)
    lay = dut.fill.payload.shape()
    drv = atb.StreamDriver(dut.fill, [lay.const({"addr": a, "row": r, "rows": n, "zero": z}) for a, r, n, z in cmds])
    writes = []
    slave = atb.axi_read_slave(dut.m_axi_r, lambda a: a, latency=latency)

    async def end(ctx):
        await drv(ctx)
        while ctx.get(dut.busy):
            await ctx.tick()

    atb.run(dut, end, background=[slave, watch([mv.stage.fill_en, mv.stage.fill_row, mv.stage.fill_zero], writes)])
    sched = ddr.fill_schedule([(a, n, z) for a, _, n, z in cmds], mv.RB, latency)
    assert drv.cycles == [t for t, _ in sched]
    want = sorted((c, r + i, z) for (a, r, n, z), (_, cs) in zip(cmds, sched) for i, c in enumerate(cs))
    assert writes == want


@pytest.mark.parametrize("b_delay,updates", [(1, False), (6, False), (40, False), (3, True)])
def test_drain_timing_is_drain_schedule(b_delay, updates):
    """With ``updates``, the layer updates rows of its own at random meanwhile: the drain's reads wait for
    its port (the cycles it is not free are the schedule's ``busy``)."""
    lanes, rows, max_rows = 16, 40, 6
    dut = StatePath(lanes, rows, max_rows)
    mv = dut.mover
    cmds = random_moves(SEED + b_delay, 30, max_rows, rows // 2, zero=False)
    lay, ulay = dut.drain.payload.shape(), dut.i.payload.shape()
    drv = atb.StreamDriver(dut.drain, [lay.const({"addr": a, "row": r, "rows": n}) for a, r, n in cmds])
    ups = atb.StreamDriver(dut.i, [ulay.const({"row": rows // 2 + k % (rows // 2), "x": [k] * lanes, "th": [1] * lanes})
                                   for k in range(300 if updates else 0)], idle=0.5, seed=SEED)
    reads, beats, taken_by_layer, mem, state = [], [], [], {}, {}
    ax = dut.m_axi_w
    slave = atb.axi_write_slave(ax, mem, b_delay=b_delay, state=state)

    async def end(ctx):
        ctx.set(dut.staged, 1)
        await drv(ctx)
        while ctx.get(dut.busy):
            await ctx.tick()

    atb.run(dut, end, ups, background=[slave, watch([mv.stage.drain_en, mv.stage.drain_row], reads),
                                       watch([ax.wvalid & ax.wready], beats),
                                       watch([~mv.stage.drain_free], taken_by_layer)])
    busy = {c for c, in taken_by_layer}
    assert bool(busy) == updates
    sched = ddr.drain_schedule([(a, n) for a, _, n in cmds], mv.RB, b_delay, busy=busy)
    assert drv.cycles == [s["taken"] for s in sched]
    assert reads == [(c, r + i) for (_, r, _), s in zip(cmds, sched) for i, c in enumerate(s["reads"])]
    assert [c for c, in beats] == [c for s in sched for c in s["beats"]]
    ends = [len(ddr.bursts(a, n * mv.RB)) for a, _, n in cmds]
    last = [sum(ends[:k + 1]) - 1 for k in range(len(cmds))]
    assert [state["responses"][e] for e, (_, _, n) in zip(last, cmds) if n] == [s["done"] for s, (_, _, n) in
                                                                                zip(sched, cmds) if n]


@pytest.mark.sim
def test_state_mover_verilator():
    from sim.runner import run_cocotb

    run_cocotb("state_mover", StatePath, {"lanes": 32, "rows": 40, "max_rows": 3}, "tb_state_mover",
               {"seed": SEED})
