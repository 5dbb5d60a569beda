# amaranth: UnusedElaboratable=no
"""hw/tile_pass.py with the tile loader and the accumulate engine, as DDR mode's event passes will use them:
each pass's tiles come from a model's DDR weight buffer (``ddr.pack_weights``) into two banks while the
engine reads the other; every token's row of every tile equals the reference sum, and every tile is
offered, accepted, loaded, ready and done in the cycle ``ddr.tile_pass_schedule`` gives."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from conftest import random_intmodel
from dynaspike import ddr
from dynaspike.config import ModelConfig
from dynaspike.cycles import ACC_ROWS, acc_beats
from dynaspike.packing import memory_images
from hw import reference as ref
from hw.accumulate import AccumulateEngine
from hw.tile_loader import TileLoader
from hw.tile_pass import TilePass
from sim import amaranth_tb as atb
from sim.cases import acc_events

LANES = 8
CFG = ModelConfig(img_size=8, in_channels=1, patch_size=2, embed_kernel=4, dim=32, heads=2, blocks=1, mlp_ratio=4,
                  t_max=2, num_classes=10)
BASE = 0x20_0040     # not burst-aligned
W0, B0, TH0 = 8, 3, 2   # bank 0's rows: not at 0, so a mix-up of bank and row shows


class Harness(wiring.Component):
    """TilePass -> TileLoader -> the engine's memories; the consumer's ``tile_last`` marks a tile's last event,
    so ``next`` is that event's acceptance."""

    def __init__(self, max_fan_in: int, max_tiles: int):
        self.tp = TilePass(LANES, max_fan_in, max_tiles, W0 + 2 * max_fan_in, B0 + 2, TH0 + 4, w0=W0, b0=B0, th0=TH0)
        self.ld = TileLoader(LANES, max_fan_in, W0 + 2 * max_fan_in, B0 + 2, TH0 + 4)
        self.acc = AccumulateEngine(ACC_ROWS * LANES, W0 + 2 * max_fan_in, B0 + 2, w_granules=ACC_ROWS * LANES // 8,
                                    b_granules=LANES)
        self.tile_last = Signal()
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tp, m.submodules.ld, m.submodules.acc = self.tp, self.ld, self.acc
        wiring.connect(m, self.tp.cmd, self.ld.cmd)
        wiring.connect(m, self.ld.w_wr, self.acc.w_wr)
        wiring.connect(m, self.ld.b_wr, self.acc.b_wr)
        m.d.comb += [self.tp.loaded.eq(self.ld.done), self.acc.o.ready.eq(1),
                     self.tp.next.eq(self.tile_last & self.acc.i.valid & self.acc.i.ready)]
        return m


def passes_of(cfg, seed):
    """Three passes as the sequencer runs them: q, k, v (one range of the buffer), fc1, fc2; each tile walked
    by a few tokens of random spike vectors (the empty one too)."""
    rng = random.Random(seed)
    tiles = ddr.tiles(cfg, LANES)
    out = []
    for keys in (("b0.q", "b0.k", "b0.v"), ("b0.fc1",), ("b0.fc2",)):
        ts = [t for t in tiles if t["key"] in keys]
        fan_in = ts[0]["fan_in"]
        tokens = [sorted(rng.sample(range(fan_in), rng.choice([0, 1, 3, fan_in // 2, fan_in]))) for _ in range(4)]
        out.append((ts, tokens))
    return out


@pytest.mark.parametrize("latency,seed", [(1, 1), (12, 2), (40, 3)])
def test_every_tile_is_summed_from_its_bank_in_the_cycles_tile_pass_schedule_gives(latency, seed):
    model = random_intmodel(CFG, seed=seed)
    image, mem = ddr.pack_weights(model, LANES), memory_images(model, LANES)
    passes = passes_of(CFG, seed)
    dut = Harness(max(t["fan_in"] for ts, _ in passes for t in ts), max(len(ts) for ts, _ in passes))
    tp, ld, acc = dut.tp, dut.ld, dut.acc
    got = {"rows": [], "ready": [], "done": [], "accepted": [], "loaded": [], "start": []}

    def word(addr):
        return int.from_bytes(image[addr - BASE:addr - BASE + 8], "little")

    async def consumer(ctx):
        ev, now = acc.i.payload.shape(), 0
        for ts, tokens in passes:
            ctx.set(tp.start.payload, {"addr": BASE + ts[0]["offset"], "tiles": len(ts), "fan_in": ts[0]["fan_in"],
                                       "thresholds": ts[0]["thresholds"]})
            ctx.set(tp.start.valid, 1)
            await ctx.tick()
            got["start"].append(now)
            now += 1
            ctx.set(tp.start.valid, 0)
            for i in range(len(ts)):
                while not ctx.get(tp.ready):
                    await ctx.tick()
                    now += 1
                assert (ctx.get(tp.index), ctx.get(tp.last)) == (i, i == len(ts) - 1)
                got["ready"].append(now)
                w_base, b_row = ctx.get(tp.w_base), ctx.get(tp.b_row)
                assert (w_base, b_row) == (W0 + (i % 2) * tp.max_fan_in, B0 + i % 2)
                events = acc_events([(spikes, w_base, b_row) for spikes in tokens])
                for k, e in enumerate(events):
                    ctx.set(acc.i.payload, ev.const(e))
                    ctx.set(acc.i.valid, 1)
                    ctx.set(dut.tile_last, k == len(events) - 1)
                    while True:
                        _, _, ready = await ctx.tick().sample(acc.i.ready)
                        now += 1
                        if ready:
                            break
                ctx.set(acc.i.valid, 0)
                got["done"].append(now - 1)
            while ctx.get(tp.busy):
                await ctx.tick()
                now += 1
        for _ in range(8):
            await ctx.tick()

    async def monitor(ctx):
        now = 0
        while True:
            _, _, out_valid, out, cmd_valid, cmd_ready, done = await ctx.tick().sample(
                acc.o.valid, acc.o.payload, ld.cmd.valid, ld.cmd.ready, ld.done)
            if out_valid:
                got["rows"].append([int(v) for v in out])
            if cmd_valid and cmd_ready:
                got["accepted"].append(now)
            if done:
                got["loaded"].append(now)
            now += 1

    slave = atb.axi_read_slave(ld.m_axi, word, latency=latency, seed=seed)
    atb.run(dut, consumer, background=[slave, monitor], deadline_cycles=100_000)

    # every row: the tile's bias and its tokens' weight rows, as on chip
    want = [ref.accumulate(mem["biases"][t["b_row"]], mem["weights"][t["w_base"]:], spikes)
            for ts, tokens in passes for t in ts for spikes in tokens]
    assert got["rows"] == [[int(v) for v in row] for row in want]
    # the cycles
    sched = []
    for (ts, tokens), start in zip(passes, got["start"]):
        work = [sum(acc_beats(len(sp)) for sp in tokens)] * len(ts)
        sched += ddr.tile_pass_schedule(BASE + ts[0]["offset"], ts[0]["fan_in"], ts[0]["thresholds"], work, LANES,
                                        latency, start=start)
    assert got["accepted"] == [s["accepted"] for s in sched]
    assert got["loaded"] == [s["last_beat"] for s in sched]
    assert got["ready"] == [s["ready"] for s in sched]
    assert got["done"] == [s["done"] for s in sched]
    # the load of a tile overlaps the work on the one before, and each of its weight rows cost a cycle
    assert any(s["accepted"] < p["done"] for p, s in zip(sched, sched[1:]))


def test_tile_pass_rejects_banks_that_do_not_fit():
    with pytest.raises(ValueError, match="weight_rows >= 40"):
        TilePass(8, 16, 4, 39, 2, 4, w0=8)
    with pytest.raises(ValueError, match="bias_rows >= 2"):
        TilePass(8, 16, 4, 64, 1, 4)
    with pytest.raises(ValueError, match="max_tiles"):
        TilePass(8, 16, 0, 64, 2, 4)
