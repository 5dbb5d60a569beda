"""hw/arith.py against Python integers, exhaustively on small widths (Amaranth simulator)."""

from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from hw.arith import mul, saturate


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
