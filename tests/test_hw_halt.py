# amaranth: UnusedElaboratable=no
"""hw/halt.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.halt import HaltUnit
from sim import amaranth_tb as atb
from sim.cases import halt_case

SEED = 99


def run_halt(tokens, case, idle, stall, seed):
    dut = HaltUnit(tokens)
    lay = dut.i.payload.shape()

    async def setup(ctx):
        ctx.set(dut.shift, case["shift"])
        ctx.set(dut.lut_min, case["lut_min"])
        ctx.set(dut.threshold, case["threshold"])
        for a, v in enumerate(case["lut"]):
            ctx.set(dut.lut_wr.en, 1)
            ctx.set(dut.lut_wr.addr, a)
            ctx.set(dut.lut_wr.data, v)
            await ctx.tick()
        ctx.set(dut.lut_wr.en, 0)

    payloads = [lay.const({"token": k, "x": x, "final": f}) for k, x, f in case["checks"]]
    drv = atb.StreamDriver(dut.i, payloads, idle=idle, seed=seed, delay=len(case["lut"]))
    mon = atb.StreamMonitor(dut.o, len(payloads), stall=stall, seed=seed + 1)
    hacc = []

    async def final_state(ctx):
        await drv(ctx)
        while len(mon.payloads) < len(payloads):
            await ctx.tick()
        await ctx.tick()
        hacc.extend(int(h) for h in ctx.get(dut.hacc))

    atb.run(dut, setup, final_state, mon)
    return drv, mon, hacc


def check(tokens, case, mon, hacc):
    halted, hacc_exp = ref.halt_checks(case["checks"], case["lut"], case["shift"], case["lut_min"],
                                       case["threshold"], tokens)
    for n, ((k, x, f), out, h) in enumerate(zip(case["checks"], mon.payloads, halted)):
        assert (int(out.token), int(out.halted)) == (k, h), (
            f"check {n}: token {k} x={x} final={f}: got token {int(out.token)} halted {int(out.halted)}, "
            f"expected halted {h} (shift {case['shift']}, lut_min {case['lut_min']})")
    assert hacc == hacc_exp


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)])
def test_halt_matches_reference(seed, idle, stall):
    case = halt_case(16, 120, SEED + seed)
    _, mon, hacc = run_halt(16, case, idle, stall, seed)
    check(16, case, mon, hacc)


def test_halt_cycles_match_model():
    case = halt_case(16, 50, SEED)
    drv, mon, hacc = run_halt(16, case, 0.0, 0.0, 0)
    check(16, case, mon, hacc)
    assert [o - i for i, o in zip(drv.cycles, mon.cycles)] == [cycles.HALT_LATENCY] * len(drv.cycles)
    assert mon.cycles[-1] - drv.cycles[0] == cycles.halt_cycles(len(drv.cycles))


def test_halt_index_clamps():
    assert ref.halt_index(32767, 0, -32767) == 63 and ref.halt_index(-32768, 0, 32767) == 0
    assert ref.halt_index(-1, 4, -3) == 2  # -1 >> 4 = -1 (floor), -1 + 3 = 2


def test_halt_rejects_bad_parameters():
    with pytest.raises(ValueError, match="got 0"):
        HaltUnit(0)


@pytest.mark.sim
def test_halt_verilator():
    from sim.runner import run_cocotb

    run_cocotb("halt", HaltUnit, {"max_tokens": 16}, "tb_halt", {"seed": SEED, "count": 400})
