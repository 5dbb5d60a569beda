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


def run_merge(N, D, images, idle, stall, seed, group=cycles.MERGE_GROUP):
    """Send the images back to back (threshold set with each token); collect outputs and sizes."""
    dut = TokenMerge(N, D, group)
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


@pytest.mark.parametrize("idle,group,N", [(0.0, 2, 16), (0.5, 2, 16), (0.0, 1, 16), (0.3, 4, 13)])
def test_merge_decides_each_token_when_the_cycle_model_says(idle, group, N):
    """Every decision is offered in the cycle ``cycles.merge_decisions`` gives for its image's arrivals; an
    image's tokens are taken as they come, and the next image's first one waits for the last decision."""
    images = [(th, vecs) for th, vecs in merge_images(N, 64, 8, SEED)]
    in_cycles, mon, sizes = run_merge(N, 64, images, idle, 0.0, SEED, group)
    check(N, images, mon, sizes)
    pos = 0
    for k, (th, vecs) in enumerate(images):
        n = len(vecs)
        arrivals, offered = in_cycles[pos:pos + n], mon.cycles[pos:pos + n]
        compares = cycles.merge_compares(ref.merge(vecs, th)[0], th >= 0, group)
        assert offered == cycles.merge_decisions(arrivals, compares), f"image {k}"
        if idle == 0.0:
            assert arrivals == list(range(arrivals[0], arrivals[0] + n)), f"image {k}: a token waited"
            if pos:   # the image's first token came the cycle after the last one's decision was made
                assert arrivals[0] == mon.cycles[pos - 1], f"image {k}"
        pos += n


def test_merge_timing_by_hand():
    # token 0: read the cycle after it came (1), decided at 2, offered at 3; token 1 (came at 1) is read
    # when token 0 is decided (2) and compared with token 0: decided at 2 + 2 + 1, offered at 6
    assert cycles.merge_decisions([0, 1], cycles.merge_compares([0, 0], True)) == [3, 6]
    # token 2 is close to neither representative: one a cycle, two cycles; a group of two, one cycle
    rep = ref.merge([0b0011, 0b1100, 0b0101, 0b0011], 1)[0]
    assert rep == [0, 1, 2, 0]
    assert cycles.merge_compares(rep, True, group=1) == [0, 1, 2, 1]
    assert cycles.merge_compares(rep, True, group=2) == [0, 1, 1, 1]
    # representatives 0, 2 and 4 (1 and 3 merged): groups {0, 1}, {2, 3}, {4, 5}: three cycles for token 5
    assert cycles.merge_compares([0, 0, 2, 2, 4, 5], True, group=2) == [0, 1, 1, 2, 2, 3]
    assert cycles.merge_compares([0, 1, 2], False) == [0, 0, 0]


def test_merge_compares_follow_the_reference():
    """One a cycle, a merged token is compared with the representatives up to its own, a representative
    with all the earlier ones."""
    for th, vecs in merge_images(16, 64, 30, SEED + 2):
        rep, _ = ref.merge(vecs, th)
        comps = cycles.merge_compares(rep, th >= 0, group=1)
        for j, c in enumerate(comps):
            if th < 0:
                assert c == 0
            elif rep[j] != j:
                assert c == sum(1 for i in range(rep[j] + 1) if rep[i] == i)
            else:
                assert c == sum(1 for i in range(j) if rep[i] == i)


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
