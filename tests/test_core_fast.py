"""The whole core in Amaranth's own simulator (fast tier, ``make test``): a tiny model end to end.

The full regressions (digits, idle/backpressure, soft reset, errors, a second configuration) run under
Verilator in tests/test_core_sim.py (``make sim``); this one keeps the core in every test run.
"""

import numpy as np
import pytest

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from hw.core import Core
from sim.amaranth_tb import axil_read, axil_write, run
from tests.model_factory import random_model, saturating_model, saturation_seen, spike_rates, spiky_model
from sw.transports.golden import counters
from train import cycle_model
from train.golden import GoldenModel

TINY = ModelConfig(img_size=4, patch_size=2, embed_kernel=2, dim=8, heads=2, blocks=1, mlp_ratio=2, t_max=2,
                   num_classes=3)
# D > P: D = 12 on P = 8 is two rows per token, the second a third full; D = 24 is three rows
WIDE = ModelConfig(**{**TINY.to_dict(), "dim": 12, "heads": 3, "blocks": 2})
WIDER = ModelConfig(**{**TINY.to_dict(), "dim": 24, "heads": 3, "t_max": 3})
REG = regmap.REG


async def send(ctx, port, beats, last=True):
    """Beats on an AXI4-Stream sink port; TLAST on the final one if ``last`` (the packet ends here)."""
    for k, beat in enumerate(beats):
        ctx.set(port.tdata, int(beat))
        ctx.set(port.tlast, last and k == len(beats) - 1)
        ctx.set(port.tvalid, 1)
        await ctx.tick().until(port.tready)
    ctx.set(port.tvalid, 0)


async def recv(ctx, port):
    beats = []
    ctx.set(port.tready, 1)
    while True:
        _, _, data, last, valid = await ctx.tick().sample(port.tdata, port.tlast, port.tvalid)
        if valid:
            beats.append(data)
            if last:
                return np.array(beats, dtype=np.uint64)


async def load_model(ctx, dut, beats):
    """Send a model packet and wait until STATUS.MODEL_LOADED."""
    await send(ctx, dut.s_axis, beats)
    while not REG["STATUS"].field("MODEL_LOADED").get(await axil_read(ctx, dut.s_axil, REG["STATUS"].offset)):
        pass


@pytest.mark.parametrize("cfg,core_cfg,make", [(TINY, TINY, random_model), (WIDE, WIDE, random_model),
                                               (WIDER, WIDER, random_model), (TINY, WIDE, random_model),
                                               (WIDE, WIDE, saturating_model), (WIDER, WIDER, spiky_model)],
                         ids=["D8", "D12", "D24", "D8-on-D12-core", "D12-saturating", "D24-spiky"])
def test_core_runs_a_tiny_model_in_the_amaranth_simulator(cfg, core_cfg, make):
    """Logits and CYCLES of two images equal the golden model's and the cycle model's, on P = 8 lanes; the
    fourth case runs a model of one row per token (D 8, one block, 3 classes) on a core built for two rows and
    two blocks: every size comes from the loaded model; the fifth saturates the embedding and the residual
    stream, the last fires every spiking layer often, so a dropped or repeated spike event changes the logits
    (both checked on the golden trace)."""
    model = make(cfg, 1)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 1, 4, 4), dtype=np.uint8)
    dut = Core(8, core_cfg)
    got = []

    async def host(ctx):
        await load_model(ctx, dut, packing.pack_model(model, 8))
        for k, img in enumerate(images):
            await send(ctx, dut.s_axis, packing.pack_image(img, cfg, tag=k)[:2], last=False)  # header
            await axil_write(ctx, dut.s_axil, REG["CTRL"].offset, REG["CTRL"].field("START").put(1))
            await send(ctx, dut.s_axis, packing.pack_image(img, cfg, tag=k)[2:])
            got.append(packing.unpack_result(await recv(ctx, dut.m_axis), cfg.num_classes))

    run(dut, host, deadline_cycles=20_000)
    g = GoldenModel(model).run(images, trace=make in (saturating_model, spiky_model))
    if make is saturating_model:
        assert saturation_seen(g.trace) == {"embedding": True, "residual": True}, saturation_seen(g.trace)
    if make is spiky_model:
        rates = spike_rates(g.trace)
        assert set(rates) == {"ain", "q", "k", "v", "attn", "min", "hid"} and min(rates.values()) > 0.2, rates
    want_cycles = cycle_model.predict_cycles(model, images, 8)
    for k, (tag, logits, cycles, _) in enumerate(got):
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}")
        assert cycles == want_cycles[k], f"image {k}: {cycles} cycles, cycle model {want_cycles[k]}"


# 16 tokens of 4 x 4 windows: a front longer than the blocks once the time-step mask switches every module off
FRONT_HEAVY = ModelConfig(**{**TINY.to_dict(), "img_size": 8, "embed_kernel": 4})


@pytest.mark.parametrize("cfg,masked", [(TINY, False), (WIDE, False), (FRONT_HEAVY, True)],
                         ids=["D8", "D12", "front-bound"])
def test_images_back_to_back_in_stream_mode(cfg, masked):
    """RUN_CONFIG.STREAM, four image packets sent with no gap (each starts itself): the next image's front runs
    during this one's blocks, and nothing changes: every image's logits, counters (in its RESULT packet) and
    CYCLES equal the golden model's and the single-image cycle model's; every RESULT trailer leaves in the cycle
    ``cycle_model.stream_ends`` says, counted from the first image's first payload beat. The last case has
    the blocks wait for the front (every module masked off)."""
    model = random_model(cfg, 2)
    if masked:
        model.tensors["mask"][:] = 0
    images = np.random.default_rng(1).integers(0, 256, size=(4, 1, cfg.img_size, cfg.img_size), dtype=np.uint8)
    dut = Core(8, cfg)
    got, clock = [], {"first": None, "ends": []}
    beats_in = {"n": 0, "armed": False}   # image beats taken, once the model is in
    header = 2

    async def host(ctx):
        await load_model(ctx, dut, packing.pack_model(model, 8))
        await axil_write(ctx, dut.s_axil, REG["RUN_CONFIG"].offset, REG["RUN_CONFIG"].field("STREAM").put(1))
        beats_in["armed"] = True
        for k, img in enumerate(images):   # no idle cycle between the packets
            await send(ctx, dut.s_axis, packing.pack_image(img, cfg, tag=k))

    async def sink(ctx):
        """The output port, always ready; one testbench samples both ports, so their cycles compare."""
        ctx.set(dut.m_axis.tready, 1)
        beats, cycle = [], 0
        ports = (dut.s_axis.tvalid, dut.s_axis.tready, dut.m_axis.tdata, dut.m_axis.tlast, dut.m_axis.tvalid)
        async for _, _, in_valid, in_ready, data, last, valid in ctx.tick().sample(*ports):
            if in_valid and in_ready and beats_in["armed"]:
                if beats_in["n"] == header:
                    clock["first"] = cycle    # the first image's first payload beat
                beats_in["n"] += 1
            if valid:
                beats.append(data)
                if last:
                    got.append(packing.unpack_result(np.array(beats, dtype=np.uint64), cfg.num_classes))
                    clock["ends"].append(cycle)
                    beats = []
                    if len(got) == len(images):
                        return
            cycle += 1

    run(dut, host, sink, deadline_cycles=40_000)
    g = GoldenModel(model).run(images)
    pred = cycle_model.predict(model, images, 8)
    want = counters(g, cfg)
    for k, (tag, logits, cycles, cnt) in enumerate(got):
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}")
        assert cycles == pred.cycles[k], f"image {k}: {cycles} cycles, cycle model {pred.cycles[k]}"
        assert cnt == {name: int(v[k]) for name, v in want.items()}, f"image {k}"
    ends = np.array(clock["ends"]) - clock["first"]
    np.testing.assert_array_equal(ends, cycle_model.stream_ends(pred.cycles, pred.front, cfg.num_classes))
    # the overlap is real: the stream takes less than the images one after another
    assert ends[-1] < sum(pred.cycles) + len(images) * (3 + packing.result_payload_beats(cfg.num_classes))
    back = pred.cycles - pred.front
    assert (pred.front[1:] > back[:-1] + 3 + packing.result_payload_beats(cfg.num_classes)).all() == masked


def test_a_soft_reset_in_a_stream_drops_both_images_and_the_next_ones_run():
    """STREAM: image 0 in its blocks, image 1 embedded and waiting in the front; SOFT_RESET drops both (no
    RESULT comes out, the core is idle with its model), and images sent afterwards run exactly (the E banks
    and the front's registers start over)."""
    model = random_model(WIDE, 4)
    images = np.random.default_rng(5).integers(0, 256, size=(3, 1, 4, 4), dtype=np.uint8)
    dut = Core(8, WIDE)
    got, seen = [], {}
    status = REG["STATUS"]

    async def host(ctx):
        await load_model(ctx, dut, packing.pack_model(model, 8))
        await axil_write(ctx, dut.s_axil, REG["RUN_CONFIG"].offset, REG["RUN_CONFIG"].field("STREAM").put(1))
        for k in range(2):   # the front takes image 1 while image 0 runs its blocks
            await send(ctx, dut.s_axis, packing.pack_image(images[k], WIDE, tag=k))
        for _ in range(40):
            await ctx.tick()
        seen["busy"] = status.field("BUSY").get(await axil_read(ctx, dut.s_axil, status.offset))
        await axil_write(ctx, dut.s_axil, REG["CTRL"].offset, REG["CTRL"].field("SOFT_RESET").put(1))
        ctx.set(dut.m_axis.tready, 1)
        for _ in range(400):   # long enough for both images: nothing may come out
            _, _, valid = await ctx.tick().sample(dut.m_axis.tvalid)
            seen["out"] = seen.get("out", 0) + int(valid)
        seen["status"] = await axil_read(ctx, dut.s_axil, status.offset)
        for k in (2, 0):
            await send(ctx, dut.s_axis, packing.pack_image(images[k], WIDE, tag=k))
        for _ in range(2):
            got.append(packing.unpack_result(await recv(ctx, dut.m_axis), WIDE.num_classes))

    run(dut, host, deadline_cycles=20_000)
    assert seen["busy"] == 1 and seen["out"] == 0, seen
    st = {f.name: f.get(seen["status"]) for f in status.fields}
    assert (st["BUSY"], st["ERROR"], st["MODEL_LOADED"]) == (0, 0, 1), st
    g = GoldenModel(model).run(images)
    pred = cycle_model.predict(model, images, 8)
    for (tag, logits, cycles, _), k in zip(got, (2, 0)):
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}")
        assert cycles == pred.cycles[k]


def without_section(beats, section: str):
    """A well-formed model packet (header, sections, trailer) with ``section``'s data beats left out and its
    header's length 0."""
    payload, pos, out = beats[2:-1], 0, []
    for _, name, _ in packing.SECTIONS:
        n = int(payload[pos]) >> 32
        head, body = payload[pos], payload[pos + 1:pos + 1 + n]
        if name == section:
            head, body = head & np.uint64(0xFFFF_FFFF), body[:0]
        out += [np.array([head], np.uint64), body]
        pos += 1 + n
    return packing._packet(packing.Kind.MODEL, int(beats[1]) >> 32, np.concatenate(out))


def test_an_empty_section_is_refused_after_a_good_load():
    """A model packet that leaves a section empty is BAD_LENGTH even right after a packet whose section had
    exactly the beats its config implies: the loader counts every packet's beats from zero."""
    model = random_model(TINY, 1)
    dut = Core(8, TINY)
    status = {}

    async def host(ctx):
        good = packing.pack_model(model, 8)
        await load_model(ctx, dut, good)
        await send(ctx, dut.s_axis, without_section(good, "emb_b"))
        for _ in range(20):
            await ctx.tick()
        st = await axil_read(ctx, dut.s_axil, REG["STATUS"].offset)
        status.update(error=REG["STATUS"].field("ERROR").get(st),
                      loaded=REG["STATUS"].field("MODEL_LOADED").get(st),
                      code=await axil_read(ctx, dut.s_axil, REG["ERROR_CODE"].offset))

    run(dut, host, deadline_cycles=20_000)
    assert status == {"error": 1, "loaded": 0, "code": regmap.ErrorCode.BAD_LENGTH}, status


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "dynamic"])
def test_block_ram_reads_against_the_energy_model(dense):
    """The core's enabled block RAM reads, counted cycle by cycle over one image, against the accesses
    dynaspike/energy.py derives from the counters: weight and membrane rows exactly (the weights per spike
    and engine row, a membrane row per LIF update), the others as the model documents them."""
    from dynaspike import energy

    cfg = WIDE
    model = random_model(cfg, 3)
    image = np.random.default_rng(2).integers(0, 256, size=(1, 4, 4), dtype=np.uint8)
    dut = Core(8, cfg)
    reads = dict.fromkeys(("weights", "biases", "membranes", "thresholds", "x"), 0)
    state = {"on": False, "result": None}

    async def host(ctx):
        await load_model(ctx, dut, packing.pack_model(model, 8))
        if dense:
            await axil_write(ctx, dut.s_axil, REG["RUN_CONFIG"].offset, REG["RUN_CONFIG"].field("FORCE_DENSE").put(1))
        state["on"] = True
        await send(ctx, dut.s_axis, packing.pack_image(image, cfg, tag=0)[:2], last=False)
        await axil_write(ctx, dut.s_axil, REG["CTRL"].offset, REG["CTRL"].field("START").put(1))
        await send(ctx, dut.s_axis, packing.pack_image(image, cfg, tag=0)[2:])
        state["result"] = packing.unpack_result(await recv(ctx, dut.m_axis), cfg.num_classes)

    async def count(ctx):
        r = dut.reads
        async for _, _, acc, lif, th, x in ctx.tick().sample(r.acc.read_enables, r.lif.read_enables,
                                                             r.thresholds, r.x):
            if state["on"]:
                reads["weights"] += (acc & 1) + ((acc >> 1) & 1)
                reads["biases"] += acc >> 2
                reads["membranes"] += lif
                reads["thresholds"] += th
                reads["x"] += x

    run(dut, host, background=[count], deadline_cycles=20_000)
    _, _, cycles, counts = state["result"]
    ev = energy.events(dict(counts, CYCLES=cycles), cfg, 8)
    assert reads["weights"] == ev["weight_rows"]                 # per spike and engine row: always exact
    if dense:   # every derivation exact when nothing is skipped
        assert (reads["biases"], reads["membranes"], reads["thresholds"], reads["x"]) == (
            ev["bias_rows"], ev["membrane_rows"] / 2, ev["threshold_rows"], ev["x_reads"])
    else:       # the token-module runs are the units times the fraction of modules on: an estimate
        for name, key in (("biases", "bias_rows"), ("thresholds", "threshold_rows")):
            assert abs(reads[name] - ev[key]) <= 0.25 * reads[name], (name, reads[name], ev[key])
