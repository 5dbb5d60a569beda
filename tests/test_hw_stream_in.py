# amaranth: UnusedElaboratable=no
"""hw/stream_in.py against dynaspike.packing: good packets pass with every data beat, bad ones stop it."""

import random

import numpy as np
import pytest

from dynaspike import packing
from dynaspike.config import ModelConfig
from dynaspike.regmap import ErrorCode
from hw.reference import stream_in_beats as expected_beats
from hw.stream_in import StreamParser
from model_factory import random_model
from sim import amaranth_tb as atb

SMALL = ModelConfig(img_size=4, patch_size=2, dim=8, heads=2, blocks=1, mlp_ratio=2, t_max=2, num_classes=3)
LANES = 8


def run_parser(packets, idle=0.0, stall=0.0, seed=0, soft_reset_after=None, tlast=None):
    """Feed the packets' beats (TLAST on each packet's last beat, or as ``tlast`` {beat: value} says);
    return (data beats seen, ok pulses with kind/tag, final error state, cycle of each beat taken)."""
    dut = StreamParser(LANES)
    rng = random.Random(seed)
    beats = [(int(b), int(i == len(p) - 1)) for p in packets for i, b in enumerate(p)]
    for n, v in (tlast or {}).items():
        beats[n] = (beats[n][0], v)
    seen, oks, err, taken = [], [], {}, []

    async def source(ctx):
        cycle = 0
        for n, (b, last) in enumerate(beats):
            if soft_reset_after is not None and n == soft_reset_after:
                ctx.set(dut.soft_reset, 1)
                await ctx.tick()
                ctx.set(dut.soft_reset, 0)
            while rng.random() < idle:
                ctx.set(dut.s_axis.tvalid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.s_axis.tvalid, 1)
            ctx.set(dut.s_axis.tdata, b)
            ctx.set(dut.s_axis.tlast, last)
            while True:
                _, _, ready = await ctx.tick().sample(dut.s_axis.tready)
                cycle += 1
                if ready:
                    break
            taken.append(cycle - 1)
        ctx.set(dut.s_axis.tvalid, 0)
        for _ in range(4):
            await ctx.tick()
        err.update(error=ctx.get(dut.error), code=ctx.get(dut.error_code), beat=ctx.get(dut.error_beat))

    async def sink(ctx):
        while True:
            ready = int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, p, ok, kind, tag = await ctx.tick().sample(dut.o.valid, dut.o.payload, dut.ok,
                                                                   dut.kind, dut.tag)
            if valid and ready:
                seen.append((int(p.kind), int(p.section), int(p.index), int(p.data)))
            if ok:
                oks.append((kind, tag))

    atb.run(dut, source, background=[sink])
    return seen, oks, err, taken


def model_packet(seed=1):
    return packing.pack_model(random_model(SMALL, seed), LANES)


def image_packet(tag=5):
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    return packing.pack_image(img, SMALL, tag=tag)


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)])
def test_good_packets_pass_every_data_beat(idle, stall):
    packets = [model_packet(), image_packet(7), image_packet(8), model_packet(2)]
    seen, oks, err, n_out = run_parser(packets, idle, stall, seed=3)
    assert seen == [b for p in packets for b in expected_beats(p)]
    assert oks == [(packing.Kind.MODEL, LANES), (packing.Kind.IMAGE, 7), (packing.Kind.IMAGE, 8),
                   (packing.Kind.MODEL, LANES)]
    assert err["error"] == 0


def test_one_beat_per_cycle():
    packets = [model_packet(), image_packet()]
    seen, oks, err, taken = run_parser(packets)
    assert len(seen) == sum(len(expected_beats(p)) for p in packets) and err["error"] == 0
    assert taken == list(range(sum(len(p) for p in packets))), "the parser stalled a beat"


def corrupt(beats, index, xor):
    b = np.array(beats, dtype=np.uint64)
    b[index] ^= np.uint64(xor)
    return b


@pytest.mark.parametrize("make,code,at", [
    (lambda m: corrupt(m, 0, 1), ErrorCode.BAD_MAGIC, 0),
    (lambda m: corrupt(m, 0, 1 << 33), ErrorCode.BAD_VERSION, 0),
    (lambda m: corrupt(m, 0, 7 << 40), ErrorCode.BAD_KIND, 0),
    (lambda m: corrupt(m, 1, 1 << 32), ErrorCode.LANES_MISMATCH, 1),
    (lambda m: corrupt(m, 2, 1), ErrorCode.BAD_SECTION, 2),                # config section id 1 -> 0
    (lambda m: corrupt(m, 2, 1 << 50), ErrorCode.BAD_LENGTH, 2),           # config longer than the payload
    (lambda m: corrupt(m, 5, 1 << 9), ErrorCode.BAD_CHECKSUM, None),       # a flipped data bit
    (lambda m: corrupt(m, -1, 1 << 40), ErrorCode.BAD_CHECKSUM, None),     # trailer magic
])
def test_malformed_model_is_refused(make, code, at):
    packet = make(model_packet())
    _, oks, err, _ = run_parser([packet])
    assert oks == []
    assert (err["error"], err["code"]) == (1, code), f"error {err}, expected code {ErrorCode.name(code)}"
    assert err["beat"] == (len(packet) - 1 if at is None else at)


def test_tlast_misplaced():
    packet = model_packet()
    # A packet cut short: the DMA ends it with TLAST early.
    short = np.concatenate([packet[:6], packet[-1:]])
    _, oks, err, _ = run_parser([short])
    assert (err["error"], err["code"], err["beat"]) == (1, ErrorCode.EARLY_TLAST, 6) and oks == []
    # TLAST in the middle of the payload, exactly:
    seen, oks, err, _ = run_parser([packet[:6]])
    assert (err["error"], err["code"], err["beat"]) == (1, ErrorCode.EARLY_TLAST, 5)
    # No TLAST on the trailer:
    _, oks, err, _ = run_parser([packet, image_packet()], tlast={len(packet) - 1: 0})
    assert (err["error"], err["code"], err["beat"], oks) == (1, ErrorCode.MISSING_TLAST, len(packet) - 1, [])


def test_soft_reset_recovers():
    bad = corrupt(model_packet(), 0, 1)
    good = image_packet(9)
    seen, oks, err, _ = run_parser([bad, good], soft_reset_after=len(bad))
    assert oks == [(packing.Kind.IMAGE, 9)] and err["error"] == 0
    assert seen == expected_beats(good)


@pytest.mark.sim
def test_stream_in_verilator():
    from sim.runner import run_cocotb

    run_cocotb("stream_in", StreamParser, {"lanes": 64}, "tb_stream_in",
               {"seed": 8, "model_config": ModelConfig().to_dict()})
