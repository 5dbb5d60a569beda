# amaranth: UnusedElaboratable=no
"""hw/head.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.head import Head
from sim import amaranth_tb as atb
from sim.cases import head_case

SEED = 808


def run_head(lanes, dim, classes, mults, case, stall, seed, images=2):
    dut = Head(lanes, dim, classes, mults, 64)
    lay = dut.i.payload.shape()
    got = {"counts": [], "go": []}

    async def tb(ctx):
        await atb.write_rows(ctx, (dut.w_wr, case["w_rows"]), (dut.b_wr, case["head_b"]))
        cycle = len(case["w_rows"]) + len(case["head_b"])
        for _ in range(images):  # back-to-back images: nothing may leak through the clear
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            cycle += 1
            for chunk, spikes, w in case["beats"]:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, lay.const({"chunk": chunk, "spike": spikes, "w": w}))
                await ctx.tick().until(dut.i.ready)
                cycle += 1
            ctx.set(dut.i.valid, 0)
            await ctx.tick()
            cycle += 1
            got["counts"].append([int(c) for c in ctx.get(dut.counts)])
            ctx.set(dut.go, 1)
            got["go"].append(cycle)
            await ctx.tick()
            ctx.set(dut.go, 0)
            cycle += 1
            while len(mon.payloads) < classes * len(got["go"]):
                await ctx.tick()
                cycle += 1

    mon = atb.StreamMonitor(dut.o, classes * images, stall=stall, seed=seed)
    atb.run(dut, tb, background=[mon.__call__])
    return got, mon


def check(lanes, dim, classes, case, got, mon, images=2):
    counts, logits = ref.head(case["beats"], case["head_w"], case["head_b"], dim, lanes)
    for n in range(images):
        assert got["counts"][n] == counts, f"image {n}: counts {got['counts'][n]}, expected {counts}"
        for c in range(classes):
            out = mon.payloads[n * classes + c]
            g = (int(out.cls), int(out.logit), int(out.last))
            assert g == (c, logits[c], int(c == classes - 1)), f"image {n} class {c}: got {g}, expected logit {logits[c]}"


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_head_matches_reference(stall):
    lanes, dim, classes, mults = 8, 20, 5, 4
    case = head_case(lanes, dim, classes, mults, 64, 40, SEED)
    got, mon = run_head(lanes, dim, classes, mults, case, stall, SEED)
    check(lanes, dim, classes, case, got, mon)


def test_head_cycles_match_model():
    lanes, dim, classes, mults = 8, 20, 5, 3  # groups of 3: the last one partly padding
    case = head_case(lanes, dim, classes, mults, 64, 30, SEED + 1)
    got, mon = run_head(lanes, dim, classes, mults, case, 0.0, SEED, images=1)
    check(lanes, dim, classes, case, got, mon, images=1)
    assert mon.cycles[-1] - got["go"][0] == cycles.head_cycles(classes, dim, mults)


def test_head_rejects_bad_parameters():
    with pytest.raises(ValueError, match="mults .* got 0"):
        Head(8, 16, 10, 0, 64)


@pytest.mark.sim
def test_head_verilator():
    from sim.runner import run_cocotb

    run_cocotb("head", Head, {"lanes": 64, "dim": 64, "classes": 10, "mults": 16, "max_weight": 64},
               "tb_head", {"seed": SEED})
