"""cocotb testbench of hw/stream_in.py (StreamParser) with cocotbext-axi's AXI4-Stream source."""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSource

from dynaspike import packing
from dynaspike.config import ModelConfig
from dynaspike.regmap import ErrorCode
from hw.reference import stream_in_beats as expected_beats
from hw.stream_in import beat_layout
from sim import cocotb_tb as tb
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


def packets_for(seed):
    """Packets built by the shared packing code: models from the test factory, images of the config."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from model_factory import random_model

    p = tb_params()
    cfg = ModelConfig.from_dict(p["model_config"])
    lanes = p["rtl"]["lanes"]
    rng = np.random.default_rng(seed)
    img = lambda: rng.integers(0, 256, size=(cfg.in_channels, cfg.img_size, cfg.img_size), dtype=np.uint8)  # noqa: E731
    return cfg, lanes, [packing.pack_model(random_model(cfg, seed), lanes), packing.pack_image(img(), cfg, 11),
                        packing.pack_image(img(), cfg, 12), packing.pack_model(random_model(cfg, seed + 1), lanes)]


async def watch_ok(dut, oks):
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.ok.value):
            oks.append((int(dut.kind.value), int(dut.tag.value)))


async def setup(dut, idle, stall, seed):
    await tb.start(dut)
    src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis", bus_separator="__"), dut.clk, dut.rst)
    if idle:
        src.set_pause_generator(tb._pauses(idle, seed))
    snk = tb.sink(dut, "o", stall, seed + 1)
    oks = []
    cocotb.start_soon(watch_ok(dut, oks))
    return src, snk, oks


async def collect(snk, n):
    lay = beat_layout()
    out = []
    for _ in range(n):
        b = tb.unpack(lay, (await snk.recv()).payload)
        out.append((int(b.kind), int(b.section), int(b.index), int(b.data)))
    return out


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def stream_in_good_packets(dut):
    """Models and images back to back, with idle beats and backpressure: every data beat, every ok."""
    seed = tb_params()["seed"]
    cfg, lanes, packets = packets_for(seed)
    src, snk, oks = await setup(dut, 0.3, 0.4, seed)
    for p in packets:
        await src.send(AxiStreamFrame(p.tobytes()))
    want = [b for p in packets for b in expected_beats(p)]
    got = await collect(snk, len(want))
    for n, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"data beat {n}: got (kind, section, index, data) {g}, expected {w}"
    for _ in range(4):
        await RisingEdge(dut.clk)
    assert oks == [(packing.Kind.MODEL, lanes), (packing.Kind.IMAGE, 11), (packing.Kind.IMAGE, 12),
                   (packing.Kind.MODEL, lanes)], f"ok pulses {oks}"
    assert int(dut.error.value) == 0


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def stream_in_error_then_soft_reset(dut):
    """A corrupted model is refused with BAD_CHECKSUM at its trailer; after SOFT_RESET an image passes."""
    seed = tb_params()["seed"] + 1
    cfg, lanes, packets = packets_for(seed)
    bad = packets[0].copy()
    bad[7] ^= np.uint64(1 << 3)
    src, snk, oks = await setup(dut, 0.1, 0.2, seed)
    await src.send(AxiStreamFrame(bad.tobytes()))
    await src.wait()
    n_data = len(expected_beats(packets[0]))
    await collect(snk, n_data)  # the beats pass (the consumer commits nothing before `ok`)
    for _ in range(4):
        await RisingEdge(dut.clk)
    assert (int(dut.error.value), int(dut.error_code.value), int(dut.error_beat.value)) == (
        1, ErrorCode.BAD_CHECKSUM, len(bad) - 1)
    assert oks == []
    dut.soft_reset.value = 1
    await RisingEdge(dut.clk)
    dut.soft_reset.value = 0
    await src.send(AxiStreamFrame(packets[1].tobytes()))
    got = await collect(snk, len(expected_beats(packets[1])))
    assert got == expected_beats(packets[1])
    for _ in range(4):
        await RisingEdge(dut.clk)
    assert oks == [(packing.Kind.IMAGE, 11)] and int(dut.error.value) == 0
