# amaranth: UnusedElaboratable=no
"""hw/lif_layer.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import random

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.lif_layer import VALID_WORD, LIFLayer
from sim import amaranth_tb as atb
from sim.cases import lif_layer_jobs

SEED = 555


def run_layer(lanes, rows, images, idle, stall, seed, transparent=True, staging=False):
    """Clear, then stream one image's updates; repeat. Returns outputs per image and transfer cycles.
    ``staging``: the layer of two memories, not staged (as the core without DDR mode uses it)."""
    dut = LIFLayer(lanes, rows, transparent=transparent, staging=staging)
    lay = dut.i.payload.shape()
    outs, stamps = [], []

    async def tb(ctx):
        for n, ups in enumerate(images):
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            drv = atb.StreamDriver(dut.i, [lay.const({"row": r, "x": x, "th": th}) for r, x, th in ups],
                                   idle=idle, seed=seed + n)
            mon = atb.StreamMonitor(dut.o, len(ups), stall=stall, seed=seed + 100 + n)
            await _drive_and_watch(ctx, dut, drv, mon)
            outs.append(mon.payloads)
            stamps.append((drv.cycles, mon.cycles))

    atb.run(dut, tb)
    return outs, stamps


async def _drive_and_watch(ctx, dut, drv, mon):
    """Cycle-by-cycle driver and monitor in one testbench (so each image starts after a clear); the
    StreamDriver/StreamMonitor objects only carry the payloads, probabilities and results."""
    irng, orng = random.Random(drv.rng.random()), random.Random(mon.rng.random())
    pending = list(drv.payloads)
    cycle = 0
    while len(mon.payloads) < mon.count:
        offer = bool(pending) and irng.random() >= drv.idle
        ready = int(orng.random() >= mon.stall)
        ctx.set(dut.i.valid, int(offer))
        if offer:
            ctx.set(dut.i.payload, pending[0])
        if not dut.staging:
            ctx.set(dut.o.ready, ready)
        _, _, iready, ovalid, opayload = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
        if offer and iready:
            pending.pop(0)
            drv.cycles.append(cycle)
        if ovalid and ready:
            mon.payloads.append(opayload)
            mon.cycles.append(cycle)
        cycle += 1
    ctx.set(dut.i.valid, 0)
    if not dut.staging:
        ctx.set(dut.o.ready, 0)


def check(lanes, rows, images, outs):
    for n, (ups, got) in enumerate(zip(images, outs)):
        want = ref.lif_layer(ups, rows, lanes)
        for u, ((row, spikes, v), out) in enumerate(zip(want, got)):
            g = (int(out.row), [(int(out.spike) >> p) & 1 for p in range(lanes)], [int(a) for a in out.v])
            assert g == (row, spikes, v), f"image {n} update {u} (row {row}): got {g}, expected {(row, spikes, v)}"


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)])
def test_lif_layer_matches_reference(idle, stall):
    images = lif_layer_jobs(4, 6, 60, SEED)
    outs, _ = run_layer(4, 6, images, idle, stall, SEED)
    check(4, 6, images, outs)


@pytest.mark.parametrize("idle,stall,staging", [(0.0, 0.0, False), (0.3, 0.4, False), (0.0, 0.0, True),
                                                (0.3, 0.0, True)])
def test_lif_layer_without_bypass(idle, stall, staging):
    # the core's layer: no read-after-write bypass, so no row is updated twice in a row (a row repeats
    # with one update between, the nearest the bypass-free read still sees); with staging, not staged and
    # the mover idle (its output is never stalled)
    images = lif_layer_jobs(4, 7, 60, SEED + 2, back_to_back=False)
    assert any(a[0] == b[0] for ups in images for a, b in zip(ups, ups[2:]))
    outs, _ = run_layer(4, 7, images, idle, stall, SEED, transparent=False, staging=staging)
    check(4, 7, images, outs)


@pytest.mark.parametrize("transparent,staging", [(True, False), (False, False), (False, True)])
def test_lif_layer_valid_bits_across_words(transparent, staging):
    """Rows in three valid words (VALID_WORD = 32): a row not written since the clear reads zero whether its
    word was written this image or not, and a word written before the clear counts for nothing after it."""
    rows = 2 * VALID_WORD + 6
    images = lif_layer_jobs(2, rows, 150, SEED + 3, back_to_back=transparent)
    rows_seen = [{r for r, _, _ in ups} for ups in images]
    assert all(len({r // VALID_WORD for r in seen}) == 3 for seen in rows_seen)
    assert all(len(seen) < rows for seen in rows_seen), "some rows must stay unwritten in each image"
    outs, _ = run_layer(2, rows, images, 0.2, 0.0 if staging else 0.2, SEED, transparent=transparent,
                        staging=staging)
    check(2, rows, images, outs)


@pytest.mark.parametrize("staging", [False, True], ids=["one-memory", "staging"])
def test_lif_layer_cycles_match_model(staging):
    images = lif_layer_jobs(4, 6, 40, SEED + 1, back_to_back=not staging)
    outs, stamps = run_layer(4, 6, images, 0.0, 0.0, SEED, transparent=not staging, staging=staging)
    check(4, 6, images, outs)
    for ins, outs_c in stamps:
        assert ins == list(range(ins[0], ins[0] + len(ins))), "the layer stalled its input"
        assert outs_c[-1] - ins[0] == cycles.lif_layer_cycles(len(ins))


def test_lif_layer_rejects_bad_parameters():
    with pytest.raises(ValueError, match="rows .* got 1"):
        LIFLayer(4, 1)
    with pytest.raises(ValueError, match="staging must be built with transparent=False"):
        LIFLayer(4, 6, staging=True)


@pytest.mark.sim
def test_lif_layer_verilator():
    from sim.runner import run_cocotb

    run_cocotb("lif_layer", LIFLayer, {"lanes": 64, "rows": 336}, "tb_lif_layer", {"seed": SEED, "count": 150})
