"""hw/walker.py in Amaranth's simulator: the tokens of loaded masks in order, loads from several contexts."""

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.walker import Walker


def test_walker_walks_masks_loaded_in_different_contexts():
    """A mask first loaded under one condition and later under another walks the same tokens under both
    (the walker's priority trees are driven whatever the context of their first use), and ``last`` marks
    the final token."""
    m = Module()
    mask, ld_a, ld_b, step = Signal(6), Signal(), Signal(), Signal()
    wk = Walker(m, 6, "wk")
    with m.If(ld_a):
        m.d.sync += wk.load(mask)
    with m.Elif(ld_b):
        m.d.sync += wk.load(mask)    # the same mask object: the tree built under ld_a
    with m.Elif(step):
        m.d.sync += wk.next()
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for k, value in enumerate((0b101101, 0b110100, 0b000001, 0b011000, 0)):
            ctx.set(mask, value)
            ctx.set(ld_a if k % 2 == 0 else ld_b, 1)
            await ctx.tick()
            ctx.set(ld_a, 0)
            ctx.set(ld_b, 0)
            want = [t for t in range(6) if value >> t & 1]
            walked = []
            ctx.set(step, 1)
            while ctx.get(wk.any):
                walked.append((ctx.get(wk.cur), ctx.get(wk.last)))
                await ctx.tick()
            ctx.set(step, 0)
            assert walked == [(t, int(i == len(want) - 1)) for i, t in enumerate(want)], (bin(value), walked)

    sim.add_testbench(bench)
    sim.run()
