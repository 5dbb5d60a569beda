"""Helpers for the fast tier: Amaranth's own simulator driving stream ports with idle and backpressure.

A driver and a monitor run as separate testbenches; each one records the cycle of every transfer so a
test can check cycle counts exactly against the cycle model (``dynaspike.cycles``).
"""

import random

from amaranth.sim import Simulator


class StreamDriver:
    """Send payloads on a stream ``In`` port of the DUT, idling with probability ``idle`` before each.

    It starts after ``delay`` cycles (e.g. while another testbench loads memories); cycle numbers count
    clock edges from the start of the simulation, the same as :class:`StreamMonitor`'s.
    """

    def __init__(self, port, payloads, *, idle=0.0, seed=0, delay=0):
        self.port, self.payloads, self.idle, self.delay = port, list(payloads), idle, delay
        self.rng = random.Random(seed)
        self.cycles = []  # cycle of each transfer

    async def __call__(self, ctx):
        cycle = 0
        for _ in range(self.delay):
            await ctx.tick()
            cycle += 1
        for payload in self.payloads:
            while self.rng.random() < self.idle:
                ctx.set(self.port.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(self.port.valid, 1)
            ctx.set(self.port.payload, payload)
            while True:
                _, _, ready = await ctx.tick().sample(self.port.ready)
                cycle += 1
                if ready:
                    break
            self.cycles.append(cycle - 1)
        ctx.set(self.port.valid, 0)


class StreamMonitor:
    """Accept ``count`` payloads from a stream ``Out`` port, dropping ready with probability ``stall``."""

    def __init__(self, port, count, *, stall=0.0, seed=1):
        self.port, self.count, self.stall = port, count, stall
        self.rng = random.Random(seed)
        self.payloads, self.cycles = [], []

    async def __call__(self, ctx):
        cycle = 0
        while len(self.payloads) < self.count:
            ready = int(self.rng.random() >= self.stall)
            ctx.set(self.port.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(self.port.valid, self.port.payload)
            if valid and ready:
                self.payloads.append(payload)
                self.cycles.append(cycle)
            cycle += 1
        ctx.set(self.port.ready, 0)


def run(dut, *testbenches, background=(), vcd=None, deadline_cycles=50_000):
    """Simulate ``dut`` with a 100 MHz clock until every testbench returns (``background`` ones may not).

    A design that deadlocks must fail, not hang: past ``deadline_cycles`` clock cycles the run stops with
    an AssertionError.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb.__call__ if hasattr(tb, "port") else tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    def go():
        deadline_fs = deadline_cycles * 10_000_000  # 10 ns per cycle, in femtoseconds
        while sim.advance():
            if sim._engine.now > deadline_fs:
                raise AssertionError(f"simulation still running after {deadline_cycles} cycles: deadlock?")

    if vcd:
        with sim.write_vcd(vcd):
            go()
    else:
        go()


async def write_rows(ctx, *ports_rows):
    """Write ``(port, rows)`` pairs through memory write ports (en/addr/data), one row per cycle, in order,
    as the stream loader does; takes ``sum(len(rows))`` cycles."""
    for port, rows in ports_rows:
        for addr, row in enumerate(rows):
            ctx.set(port.en, 1)
            ctx.set(port.addr, addr)
            ctx.set(port.data, row)
            await ctx.tick()
        ctx.set(port.en, 0)


async def axil_write(ctx, bus, addr: int, value: int, strb: int = 0xF, bready_delay: int = 0):
    """One AXI4-Lite write from the master side; returns the BRESP code."""
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, value)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    await ctx.tick().until(bus.awready & bus.wready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    for _ in range(bready_delay):
        await ctx.tick()
    ctx.set(bus.bready, 1)
    resp, = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return resp


async def axil_read(ctx, bus, addr: int, rready_delay: int = 0) -> int:
    """One AXI4-Lite read from the master side; returns RDATA (RRESP must be OKAY)."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    for _ in range(rready_delay):
        await ctx.tick()
    ctx.set(bus.rready, 1)
    data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    assert resp == 0, f"read of {addr:#x} answered RRESP {resp}"
    return data


def axi_read_slave(ax, word, *, latency: int = 1, ar_idle: float = 0.0, r_idle: float = 0.0, error_at=(),
                   seed: int = 0):
    """A background process serving an AXI read master's port ``ax`` (``hw.axi_reader.axi_read_signature``)
    from ``word(byte address) -> 64-bit int``: each burst's first beat ``latency`` cycles after its address
    handshake at the earliest, then one beat a cycle in order, with an idle cycle at random with
    probability ``r_idle``; addresses taken at once unless ``ar_idle``; SLVERR (2) on the beats at the
    addresses in ``error_at``. With no idles, ``dynaspike.ddr.read_schedule`` gives its timing exactly."""
    async def slave(ctx):
        rng = random.Random(seed)
        bursts, now = [], 0
        while True:
            ar_ready = int(rng.random() >= ar_idle)
            ctx.set(ax.arready, ar_ready)
            r_valid = bool(bursts) and now >= bursts[0][0] and rng.random() >= r_idle
            if r_valid:
                addr, last = bursts[0][1][0]
                ctx.set(ax.rdata, word(addr))
                ctx.set(ax.rlast, last)
                ctx.set(ax.rresp, 2 if addr in error_at else 0)
            ctx.set(ax.rvalid, r_valid)
            _, _, arvalid, araddr, arlen, rready = await ctx.tick().sample(ax.arvalid, ax.araddr, ax.arlen, ax.rready)
            if arvalid and ar_ready:
                bursts.append((now + latency, [(araddr + 8 * k, k == arlen) for k in range(arlen + 1)]))
            if r_valid and rready:
                bursts[0][1].pop(0)
                if not bursts[0][1]:
                    bursts.pop(0)
            now += 1
    return slave


def axi_write_slave(ax, mem: dict, *, aw_idle: float = 0.0, w_idle: float = 0.0, b_delay: int = 0, error_bursts=(),
                    seed: int = 0, aws=None, state=None):
    """A background process serving an AXI write master's port ``ax`` (``hw.axi_writer.axi_write_signature``)
    into ``mem`` ({byte address: 64-bit beat}): AW and W ready at random (not ready with probability
    ``aw_idle``, ``w_idle``), a burst's data where its address says (every byte strobed, WLAST on its last
    beat), its response ``b_delay`` cycles after its last beat at the earliest, SLVERR (2) for the bursts in
    ``error_bursts`` (by their order). It appends each burst's ``(awaddr, awlen, awsize, awburst)`` to
    ``aws`` and keeps in ``state``: ``bursts`` (with data), ``responses`` (the cycle of each B handshake),
    ``waiting`` (bursts addressed without a response) and its maximum ``max_waiting``. With no idles,
    ``dynaspike.ddr.write_schedule`` gives its timing exactly (``response_latency = b_delay``, at least 1)."""
    aws = [] if aws is None else aws
    state = {} if state is None else state
    state.update({"max_waiting": 0, "bursts": 0, "responses": [], "waiting": 0})

    async def slave(ctx):
        rng = random.Random(seed)
        addrs, cur, b_due, cycle, waiting = [], None, [], 0, 0
        while True:
            aw_ready, w_ready = int(rng.random() >= aw_idle), int(rng.random() >= w_idle)
            ctx.set(ax.awready, aw_ready)
            ctx.set(ax.wready, w_ready)
            b_valid = bool(b_due) and b_due[0][0] <= cycle
            if b_valid:
                ctx.set(ax.bresp, 2 if b_due[0][1] in error_bursts else 0)
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
    return slave
