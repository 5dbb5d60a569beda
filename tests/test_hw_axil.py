# amaranth: UnusedElaboratable=no
"""hw/axil.py against dynaspike.regmap: every register reads what the map says; writes act as documented."""

import random

import pytest

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from hw.axil import RegisterBlock
from hw.reference import register_inputs, register_reads
from sim import amaranth_tb as atb

CAP = packing.capacity_for(ModelConfig(), 64)


def drive_inputs(ctx, dut, inputs):
    ctx.set(dut.status.as_value(), inputs["status"])
    for name in ("error_code", "error_beat", "images_done", "cycles"):
        ctx.set(getattr(dut, name), inputs[name])
    ctx.set(dut.perf, inputs["perf"])
    ctx.set(dut.model, inputs["model"])


def test_every_register_reads_as_the_map_says():
    dut = RegisterBlock(CAP)
    rng = random.Random(5)
    inputs = register_inputs(rng)
    got = {}

    async def tb(ctx):
        drive_inputs(ctx, dut, inputs)
        for off in range(0, 0x200, 4):
            got[off] = await atb.axil_read(ctx, dut.axil, off, rready_delay=rng.randrange(3))

    atb.run(dut, tb)
    want = register_reads(inputs, 0, CAP)
    want[regmap.REG["CYCLES"].offset + 4] = inputs["cycles"] >> 32  # LO was read just before HI
    for off in range(0, 0x200, 4):
        assert got[off] == want.get(off, 0), f"offset {off:#x}: read {got[off]:#x}, expected {want.get(off, 0):#x}"


def test_cycles_hi_is_the_snapshot_taken_with_lo():
    dut = RegisterBlock(CAP)
    lo_off = regmap.REG["CYCLES"].offset
    out = []

    async def tb(ctx):
        ctx.set(dut.cycles, (7 << 32) | 0xFFFFFFFF)
        out.append(await atb.axil_read(ctx, dut.axil, lo_off))
        ctx.set(dut.cycles, 8 << 32)  # the counter carried between the two reads
        out.append(await atb.axil_read(ctx, dut.axil, lo_off + 4))

    atb.run(dut, tb)
    assert out == [0xFFFFFFFF, 7]


def test_ctrl_pulses_once_and_run_config_holds():
    dut = RegisterBlock(CAP)
    seen, reads = [], []
    ctrl = regmap.REG["CTRL"]
    rc = regmap.REG["RUN_CONFIG"]

    async def tb(ctx):
        assert await atb.axil_write(ctx, dut.axil, ctrl.offset, ctrl.field("START").put(1)) == 0
        await atb.axil_write(ctx, dut.axil, ctrl.offset, ctrl.field("SOFT_RESET").put(1) | ctrl.field("UNLOAD").put(1))
        await atb.axil_write(ctx, dut.axil, rc.offset, rc.field("FORCE_DENSE").put(1))
        reads.append(await atb.axil_read(ctx, dut.axil, rc.offset))
        await atb.axil_write(ctx, dut.axil, rc.offset, 0x3, strb=0b1110)   # byte 0 not strobed: ignored
        reads.append(await atb.axil_read(ctx, dut.axil, rc.offset))
        await atb.axil_write(ctx, dut.axil, regmap.REG["ID"].offset, 0, bready_delay=2)  # read-only
        reads.append(await atb.axil_read(ctx, dut.axil, regmap.REG["ID"].offset))
        await atb.axil_write(ctx, dut.axil, 0xFFC, 0xFFFFFFFF)  # unlisted
        reads.append(await atb.axil_read(ctx, dut.axil, 0xFFC))

    async def watch(ctx):
        cycle = 0
        async for _, _, c in ctx.tick().sample(dut.ctrl.as_value()):
            if c:
                seen.append((cycle, c))
            cycle += 1

    atb.run(dut, tb, background=[watch])
    assert [c for _, c in seen] == [0b001, 0b110], f"CTRL pulses {seen}"
    assert reads == [0b10, 0b10, regmap.CORE_MAGIC, 0]


def test_weights_addr_holds_a_beat_address_written_by_byte():
    dut = RegisterBlock(CAP)
    off, reads = regmap.REG["WEIGHTS_ADDR"].offset, []

    async def tb(ctx):
        await atb.axil_write(ctx, dut.axil, off, 0x1234_567F)
        reads.append(await atb.axil_read(ctx, dut.axil, off))
        await atb.axil_write(ctx, dut.axil, off, 0xAABB_CCDD, strb=0b0100)   # byte 2 only
        reads.append(await atb.axil_read(ctx, dut.axil, off))
        reads.append(ctx.get(dut.weights_addr))

    atb.run(dut, tb)
    assert reads == [0x1234_5678, 0x12BB_5678, 0x12BB_5678]


def test_rejects_a_non_capacity():
    with pytest.raises(TypeError, match="Capacity"):
        RegisterBlock({"lanes": 64})


@pytest.mark.sim
def test_axil_verilator():
    from sim.runner import run_cocotb

    run_cocotb("axil", make_axil, {"preset": "digits", "lanes": 64}, "tb_axil", {"seed": 11})


def make_axil(preset, lanes):
    assert preset == "digits", preset
    return RegisterBlock(packing.capacity_for(ModelConfig(), lanes))
