"""hw/arith.py against Python integers, exhaustively on small widths (Amaranth simulator)."""

from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from hw.arith import at_most_one, at_most_two, highest_set, lowest_set, mul, prefix_or, saturate


def test_mul_and_saturate_are_exact():
    m = Module()
    a, b, v = Signal(5), Signal(4), Signal(signed(9))
    prod, cprod, sat = Signal(9), Signal(10), Signal(signed(6))
    m.d.comb += [prod.eq(mul(a, b)), cprod.eq(mul(a, 21)), sat.eq(saturate(v, 6))]
    sim = Simulator(m)

    async def bench(ctx):
        for x in range(32):
            for y in range(16):
                ctx.set(a, x)
                ctx.set(b, y)
                assert (ctx.get(prod), ctx.get(cprod)) == (x * y, x * 21)
        for x in range(-256, 256):
            ctx.set(v, x)
            assert ctx.get(sat) == min(max(x, -32), 31), x

    sim.add_testbench(bench)
    sim.run()


def test_bit_trees_are_exact():
    """lowest_set / highest_set, prefix_or, at_most_one and at_most_two on every 7-bit value (uneven trees)."""
    m = Module()
    v = Signal(7)
    lo, lo_any = lowest_set(m, v, "lo")
    hi, _ = highest_set(m, v, "hi")
    pre, one, two = Signal(7), Signal(), Signal()
    m.d.comb += [pre.eq(prefix_or(v)), one.eq(at_most_one(v)), two.eq(at_most_two(v))]
    sim = Simulator(m)

    async def bench(ctx):
        for x in range(128):
            ctx.set(v, x)
            bits = [k for k in range(7) if x >> k & 1]
            if bits:
                assert (ctx.get(lo), ctx.get(hi)) == (bits[0], bits[-1]), x
            assert ctx.get(lo_any) == bool(bits)
            assert ctx.get(pre) == sum(1 << k for k in range(7) if x & ((1 << k) - 1)), x
            assert ctx.get(one) == (len(bits) <= 1), x
            assert ctx.get(two) == (len(bits) <= 2), x

    sim.add_testbench(bench)
    sim.run()
