"""The whole core in Amaranth's simulator with a model whose weights are in DDR (docs/hardware.md, "DDR mode"):
the model packet leaves the weights, biases and thresholds out, the core reads them tile by tile from the
buffer ``ddr.pack_weights`` gives (served at a fixed latency by ``sim.amaranth_tb.axi_read_slave``), and the
logits, the counters and CYCLES equal the golden model's and the cycle model's with that memory."""

import numpy as np
import pytest

from dynaspike import ddr, packing, regmap
from dynaspike.config import ModelConfig
from hw.core import Core
from sim.amaranth_tb import axi_read_slave, axil_read, axil_write, run
from sw.transports.golden import counters
from tests.model_factory import random_model, spiky_model
from tests.test_core_fast import TINY, WIDER, load_model, recv, send
from train import cycle_model
from train.golden import GoldenModel

REG = regmap.REG
BASE = 0x3000_0040           # the weight buffer's byte address: a beat, not a burst, boundary
# D = 24 on P = 8: three chunks, so q, k, v and fc2 have two tiles (one of one chunk), fc1 (hidden 48) three
WIDE3 = ModelConfig(**{**WIDER.to_dict(), "blocks": 2})


def run_ddr(model, images, latency, *, lanes=8, base=BASE, error_at=()):
    cfg = model.config
    buf = ddr.pack_weights(model, lanes)
    dut = Core(lanes, cfg)
    got, seen = [], {}

    def word(addr):
        off = addr - base
        assert 0 <= off and off + 8 <= len(buf), f"read at {addr:#x}, outside the weight buffer"
        return int.from_bytes(buf[off:off + 8], "little")

    async def host(ctx):
        await axil_write(ctx, dut.s_axil, REG["WEIGHTS_ADDR"].offset, base)
        await load_model(ctx, dut, packing.pack_model(model, lanes, weights_in_ddr=True))
        seen["status"] = await axil_read(ctx, dut.s_axil, REG["STATUS"].offset)
        for k, img in enumerate(images):
            await send(ctx, dut.s_axis, packing.pack_image(img, cfg, tag=k)[:2], last=False)
            await axil_write(ctx, dut.s_axil, REG["CTRL"].offset, REG["CTRL"].field("START").put(1))
            await send(ctx, dut.s_axis, packing.pack_image(img, cfg, tag=k)[2:])
            if error_at:
                break
            got.append(packing.unpack_result(await recv(ctx, dut.m_axis), cfg.num_classes))
        if error_at:
            for _ in range(2000):
                await ctx.tick()
            seen["status_after"] = await axil_read(ctx, dut.s_axil, REG["STATUS"].offset)
            seen["error_code"] = await axil_read(ctx, dut.s_axil, REG["ERROR_CODE"].offset)

    run(dut, host, background=[axi_read_slave(dut.m_axi, word, latency=latency, error_at=error_at)],
        deadline_cycles=200_000)
    return got, seen


@pytest.mark.parametrize("cfg,make,latency", [(TINY, random_model, 1), (WIDE3, spiky_model, 9),
                                              (WIDE3, random_model, 40)], ids=["D8-lat1", "D24-spiky-lat9",
                                                                               "D24-lat40"])
def test_a_model_in_ddr_runs_exactly(cfg, make, latency):
    model = make(cfg, 3)
    images = np.random.default_rng(2).integers(0, 256, size=(2, 1, cfg.img_size, cfg.img_size), dtype=np.uint8)
    got, seen = run_ddr(model, images, latency)
    status = REG["STATUS"]
    assert (status.field("MODEL_LOADED").get(seen["status"]), status.field("WEIGHTS_IN_DDR").get(seen["status"])) \
        == (1, 1)
    g = GoldenModel(model).run(images)
    pred = cycle_model.predict(model, images, 8, memory=ddr.Memory(read_latency=latency), weights_at=BASE)
    want = dict(counters(g, cfg), DDR_READ_BEATS=pred.ddr_read_bytes // ddr.BEAT_BYTES)   # the tiles' beats
    for k, (tag, logits, cycles, cnt) in enumerate(got):
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}")
        assert cnt == {name: int(v[k]) for name, v in want.items()}, f"image {k}"
        assert cycles == pred.cycles[k], f"image {k}: {cycles} cycles, cycle model {pred.cycles[k]}"


def test_an_axi_error_stops_the_core_and_a_soft_reset_mid_inference_recovers():
    """A tile read answered SLVERR: STATUS.ERROR with AXI_ERROR; SOFT_RESET, then an image with a good
    memory runs exactly. A second SOFT_RESET while tiles are in flight (the tile loader finishes the reads
    it addressed) leaves the next image exact too."""
    model, cfg, latency = random_model(WIDE3, 5), WIDE3, 20
    images = np.random.default_rng(4).integers(0, 256, size=(2, 1, cfg.img_size, cfg.img_size), dtype=np.uint8)
    buf = ddr.pack_weights(model, 8)
    dut = Core(8, cfg)
    bad = {BASE + ddr.weight_buffer(cfg, 8)["b0.fc1"]["offset"] + 64}
    errors, got, seen = set(bad), [], {}
    status, ctrl = REG["STATUS"], REG["CTRL"]

    def word(addr):
        return int.from_bytes(buf[addr - BASE:addr - BASE + 8], "little")

    async def image(ctx, k):
        await send(ctx, dut.s_axis, packing.pack_image(images[k], cfg, tag=k)[:2], last=False)
        await axil_write(ctx, dut.s_axil, REG["CTRL"].offset, ctrl.field("START").put(1))
        await send(ctx, dut.s_axis, packing.pack_image(images[k], cfg, tag=k)[2:])

    async def host(ctx):
        await axil_write(ctx, dut.s_axil, REG["WEIGHTS_ADDR"].offset, BASE)
        await load_model(ctx, dut, packing.pack_model(model, 8, weights_in_ddr=True))
        await image(ctx, 0)
        while not status.field("ERROR").get(await axil_read(ctx, dut.s_axil, status.offset)):
            pass
        seen["code"] = await axil_read(ctx, dut.s_axil, REG["ERROR_CODE"].offset)
        errors.clear()
        await axil_write(ctx, dut.s_axil, ctrl.offset, ctrl.field("SOFT_RESET").put(1))
        await image(ctx, 1)
        got.append(packing.unpack_result(await recv(ctx, dut.m_axis), cfg.num_classes))
        await image(ctx, 0)
        for _ in range(300):   # into its first passes, tiles in flight
            await ctx.tick()
        await axil_write(ctx, dut.s_axil, ctrl.offset, ctrl.field("SOFT_RESET").put(1))
        seen["status"] = await axil_read(ctx, dut.s_axil, status.offset)
        await image(ctx, 0)
        got.append(packing.unpack_result(await recv(ctx, dut.m_axis), cfg.num_classes))

    slave = axi_read_slave(dut.m_axi, word, latency=latency, error_at=errors)
    run(dut, host, background=[slave], deadline_cycles=200_000)
    assert seen["code"] == regmap.ErrorCode.AXI_ERROR
    st = {f.name: f.get(seen["status"]) for f in status.fields}
    assert (st["ERROR"], st["MODEL_LOADED"], st["WEIGHTS_IN_DDR"]) == (0, 1, 1), st
    g = GoldenModel(model).run(images)
    pred = cycle_model.predict(model, images, 8, memory=ddr.Memory(read_latency=latency), weights_at=BASE)
    for (tag, logits, cycles, _), k in zip(got, (1, 0)):
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}")
        assert cycles == pred.cycles[k]
