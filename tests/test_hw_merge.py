# amaranth: UnusedElaboratable=no
"""hw/merge.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import random

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.merge import TokenMerge
from sim import amaranth_tb as atb
from sim.cases import merge_images

SEED = 77


def run_merge(N, D, images, idle, stall, seed):
    """Send the images back to back (threshold set with each token); collect outputs and sizes."""
    dut = TokenMerge(N, D)
    rng = random.Random(seed)
    lay = dut.i.payload.shape()
    total = sum(len(v) for _, v in images)
    in_cycles, sizes = [], []

    async def driver(ctx):
        cycle = 0
        for th, vecs in images:
            for n, b in enumerate(vecs):
                while rng.random() < idle:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, lay.const({"bits": b, "last": int(n == len(vecs) - 1)}))
                ctx.set(dut.threshold, th)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i.ready)
                    cycle += 1
                    if ready:
                        break
                in_cycles.append(cycle - 1)
        ctx.set(dut.i.valid, 0)

    mon = atb.StreamMonitor(dut.o, total, stall=stall, seed=seed + 1)

    async def sizes_probe(ctx):  # sizes as the consumer sees them when it takes an image's last token
        seen = 0
        while seen < len(images):
            _, _, valid, ready, last, sz = await ctx.tick().sample(dut.o.valid, dut.o.ready,
                                                                  dut.o.payload.last, dut.sizes)
            if valid and ready and last:
                sizes.append([int(s) for s in sz])
                seen += 1

    atb.run(dut, driver, mon, sizes_probe)
    return in_cycles, mon, sizes


def check(N, images, mon, sizes):
    pos = 0
    for m, (th, vecs) in enumerate(images):
        rep, size = ref.merge(vecs, th)
        for j in range(len(vecs)):
            out = mon.payloads[pos]
            got = (int(out.token), int(out.rep), int(out.last))
            assert got == (j, rep[j], int(j == len(vecs) - 1)), (
                f"image {m} (threshold {th}) token {j}: got (token, rep, last) {got}, expected "
                f"{(j, rep[j], int(j == len(vecs) - 1))}")
            pos += 1
        assert sizes[m] == size + [0] * (N - len(vecs)), f"image {m} (threshold {th}): sizes {sizes[m]}"


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)])
def test_merge_matches_reference(idle, stall):
    images = merge_images(16, 64, 12, SEED)
    _, mon, sizes = run_merge(16, 64, images, idle, stall, SEED)
    check(16, images, mon, sizes)


def test_merge_odd_sizes():
    images = merge_images(5, 7, 20, SEED + 1)
    _, mon, sizes = run_merge(5, 7, images, 0.2, 0.2, SEED)
    check(5, images, mon, sizes)


def test_merge_cycles_match_model():
    images = [(3, vecs) for _, vecs in merge_images(16, 64, 6, SEED)]
    in_cycles, mon, sizes = run_merge(16, 64, images, 0.0, 0.0, SEED)
    check(16, images, mon, sizes)
    assert in_cycles == list(range(len(in_cycles))), "the merge unit stalled its input"
    assert [o - i for i, o in zip(in_cycles, mon.cycles)] == [cycles.MERGE_LATENCY] * len(in_cycles)
    assert mon.cycles[len(images[0][1]) - 1] - in_cycles[0] == cycles.merge_cycles(len(images[0][1]))


def test_reference_merge_rule():
    # token 2 is close to both 0 and 1 but 1 was merged into 0: the first *representative* takes it
    assert ref.merge([0b000, 0b001, 0b011], 1) == ([0, 0, 2], [2, 0, 1])
    assert ref.merge([0b000, 0b100, 0b001], 1) == ([0, 0, 0], [3, 0, 0])
    assert ref.merge([7, 7], -1) == ([0, 1], [1, 1])


@pytest.mark.parametrize("kwargs,shown", [({"max_tokens": 0, "dim": 4}, "max_tokens .* got 0"),
                                          ({"max_tokens": 4, "dim": 0}, "dim .* got 0")])
def test_merge_rejects_bad_parameters(kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        TokenMerge(**kwargs)


@pytest.mark.sim
def test_merge_verilator():
    from sim.runner import run_cocotb

    run_cocotb("merge", TokenMerge, {"max_tokens": 16, "dim": 64}, "tb_merge", {"seed": SEED, "count": 40})
