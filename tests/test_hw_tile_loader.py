# amaranth: UnusedElaboratable=no
"""hw/tile_loader.py: every weight tile of a model's DDR weight buffer (``dynaspike.ddr.pack_weights``) read
through AXI and written into the engine's memories, which must then equal the on-chip memory images
(``packing.memory_images``); the time each tile takes equals ``ddr.read_cycles`` against a memory of a
fixed latency (fast tier: Amaranth's simulator, a slave written here; cocotb + Verilator: cocotbext-axi's
AxiRamRead, sim/tb_tile_loader.py)."""

import os

import numpy as np
import pytest

from conftest import ROOT, TINY_CFG, random_intmodel
from dynaspike.artifact import IntModel
from dynaspike import ddr
from dynaspike.cycles import ACC_ROWS
from dynaspike.packing import memory_images, weight_layout
from hw.tile_loader import TileLoader
from sim import amaranth_tb as atb
from sim.cases import tile_commands, write_granules

SLVERR = 2
BASE = 0x10_0040    # the buffer's byte address: not burst-aligned, so bursts split inside tiles


def make_loader(cfg, lanes: int, **kw) -> TileLoader:
    rows = weight_layout(cfg, lanes)["_rows"]
    max_fan_in = max(v["fan_in"] for k, v in weight_layout(cfg, lanes).items() if not k.startswith("_"))
    # one threshold row more: a layer's last tile of one chunk writes a padding row after its own
    return TileLoader(lanes, max_fan_in, rows["weights"], rows["biases"], rows["thresholds"] + 1, **kw)


def run_tiles(dut: TileLoader, image: bytes, cmds, *, latency=4, ar_idle=0.0, r_idle=0.0, error_at=(),
              seed=0):
    """Load ``cmds`` from a memory holding ``image`` at ``BASE``; return (memories written, as row -> lanes
    dicts; the cycles from each command's acceptance to its last write; the error flags at the end)."""
    ax, lay = dut.m_axi, dut.cmd.payload.shape()
    written = {"w": {}, "b": {}, "th": {}}
    state = {"accepted": [], "last_write": [], "error": None, "writes": {"w": 0, "b": 0, "th": 0},
             "weight_writes": [], "done": []}

    def word(addr: int) -> int:
        off = addr - BASE
        return int.from_bytes(image[off:off + 8], "little")

    async def writes(ctx):
        """Apply every write port's enabled granules to the rows written so far (as a memory would)."""
        now = 0
        ports = {"w": (dut.w_wr, dut.A, 8), "b": (dut.b_wr, dut.A, 24), "th": (dut.th_wr, dut.P, 24)}
        while True:
            vals = (await ctx.tick().sample(dut.done, *(s for p, _, _ in ports.values()
                                                        for s in (p.en, p.addr, p.data.as_value()))))[2:]
            if vals[0]:
                state["done"].append(now)
            vals = vals[1:]
            for k, (name, (port, n, bits)) in enumerate(ports.items()):
                en, addr, row = vals[3 * k], vals[3 * k + 1], vals[3 * k + 2]
                if en:
                    write_granules(written[name], addr, en, row, n, bits, len(port.en))
                    state["last_write"].append(now)
                    state["writes"][name] += 1
                    if name == "w":
                        state["weight_writes"].append(now)
            now += 1

    async def driver(ctx):
        now = 0
        for c in cmds:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, lay.const(c))
            while True:
                _, _, ready = await ctx.tick().sample(dut.cmd.ready)
                now += 1
                if ready:
                    break
            state["accepted"].append(now - 1)
        ctx.set(dut.cmd.valid, 0)
        while True:
            _, _, busy = await ctx.tick().sample(dut.busy)
            if not busy:
                break
        state["error"], state["resp"] = ctx.get(dut.error), ctx.get(dut.resp)

    slave = atb.axi_read_slave(ax, word, latency=latency, ar_idle=ar_idle, r_idle=r_idle, error_at=error_at,
                               seed=seed + 2)
    atb.run(dut, driver, background=[slave, writes], deadline_cycles=200_000)
    return written, state


def check_memories(written, state, model, lanes, cmds):
    """The memories equal the on-chip images, and each tile wrote its own rows once (a write a beat: 8
    weight lanes, or 2 bias or threshold lanes)."""
    assert state["writes"] == {
        "w": sum(c["fan_in"] for c in cmds) * ACC_ROWS * lanes // 8,
        "b": len(cmds) * ACC_ROWS * lanes // 2,
        "th": sum(c["thresholds"] for c in cmds) * ACC_ROWS * lanes // 2}
    mem = memory_images(model, lanes)
    for name, key in (("w", "weights"), ("b", "biases"), ("th", "thresholds")):
        rows = mem[key]
        got = written[name]
        assert set(range(len(rows))) <= set(got), f"{key}: rows never written"
        for r in range(len(rows)):
            assert None not in got[r], f"{key} row {r}: lanes never written"
            assert got[r] == [int(v) for v in rows[r]], f"{key} row {r}"


@pytest.mark.parametrize("lanes", [8, 16])
def test_every_tile_lands_where_the_on_chip_layout_keeps_it_in_the_predicted_cycles(lanes):
    model = random_intmodel(TINY_CFG, seed=3)
    image, cmds = ddr.pack_weights(model, lanes), tile_commands(TINY_CFG, lanes, BASE)
    dut = make_loader(TINY_CFG, lanes)
    for latency in (1, 9):
        written, state = run_tiles(dut, image, cmds, latency=latency)
        check_memories(written, state, model, lanes, cmds)
        assert (state["error"], state["resp"]) == (0, 0)
        # accepted as soon as the previous tile is addressed, each last beat when ddr.read_schedule says
        sched = ddr.read_schedule([(c["addr"], ddr.tile_bytes(c["fan_in"], lanes, c["thresholds"]) // ddr.BEAT_BYTES)
                                   for c in cmds], latency)
        assert state["accepted"] == [acc for acc, _ in sched]
        ends = np.cumsum([c["fan_in"] * ACC_ROWS * lanes // 8 for c in cmds]) - 1   # a tile ends on a weight beat
        assert [state["weight_writes"][e] for e in ends] == [last for _, last in sched] == state["done"]
        alone = sum(ddr.read_cycles(c["addr"], ddr.tile_bytes(c["fan_in"], lanes, c["thresholds"]) // ddr.BEAT_BYTES,
                                    latency) for c in cmds)
        assert sched[-1][1] + 1 - sched[0][0] <= alone - (len(cmds) - 1) * latency   # the latency hidden


def test_random_gaps_and_address_stalls_change_nothing_but_time():
    lanes = 8
    model = random_intmodel(TINY_CFG, seed=4)
    image, cmds = ddr.pack_weights(model, lanes), tile_commands(TINY_CFG, lanes, BASE)
    written, state = run_tiles(make_loader(TINY_CFG, lanes), image, cmds, latency=3, ar_idle=0.5, r_idle=0.4, seed=5)
    check_memories(written, state, model, lanes, cmds)
    assert state["error"] == 0


def test_an_error_response_is_kept_and_the_tile_still_ends():
    lanes = 8
    model = random_intmodel(TINY_CFG, seed=4)
    image, cmds = ddr.pack_weights(model, lanes), tile_commands(TINY_CFG, lanes, BASE)
    written, state = run_tiles(make_loader(TINY_CFG, lanes), image, cmds[:2], error_at={cmds[1]["addr"] + 16})
    assert (state["error"], state["resp"]) == (1, SLVERR)


def test_read_cycles_by_hand():
    # one burst: accepted at 0, addressed at 1, its first beat at 1 + L, its last L + n cycles after
    assert ddr.read_cycles(0, 5, 3) == 1 + 3 + 5
    assert ddr.read_cycles(0, 0, 3) == 1
    # 40 beats at beat 8 of a block: bursts 8, 16, 16 addressed in cycles 1-3, the beats back to back
    assert ddr.bursts(64, 40) == [8, 16, 16]
    assert ddr.read_cycles(64, 40, 10) == 1 + 10 + 40
    # a latency longer than the outstanding bursts' beats: the fifth burst waits for the first's last beat
    assert ddr.read_cycles(0, 5 * 16, 100, outstanding=4) == (1 + 100 + 16) + 100 + 16
    with pytest.raises(ValueError, match="read_latency"):
        ddr.read_cycles(0, 4, 0)


def test_loader_refuses_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 8"):
        TileLoader(12, 16, 64, 8, 8)
    with pytest.raises(ValueError, match="th_rows"):
        TileLoader(8, 16, 64, 8, 1)
    with pytest.raises(ValueError, match="max_fan_in"):
        TileLoader(8, 0, 64, 8, 8)


@pytest.mark.sim
def test_tile_loader_verilator():
    from sim.runner import run_cocotb

    model = os.path.join(ROOT, "train", "shipped", "digits.npz")
    cfg = IntModel.load(model).config
    rtl = {"lanes": 32, "max_fan_in": cfg.hidden_dim, "weight_rows": weight_layout(cfg, 32)["_rows"]["weights"],
           "bias_rows": 64, "th_rows": 64}
    run_cocotb("tile_loader", TileLoader, rtl, "tb_tile_loader", {"seed": 11, "model": model})
