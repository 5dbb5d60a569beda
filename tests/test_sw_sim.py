"""sw/transports/sim.py: the driver's blocking calls as AXI4-Lite / AXI4-Stream transactions on a
Verilator-built design (cocotb bridge threads).

- On a stand-in (the real register block and a stream loopback; runs today): registers read and write,
  a packet comes back beat for beat with no idle cycles, a receive with nothing coming and a driver wait
  that never ends raise ``DriverTimeout`` in simulated time.
- On the core (``hw/core.py``, skipped until it exists): the driver gives results identical to the golden
  transport's, and CYCLES equal the cycle model.
"""

import importlib.util
from dataclasses import asdict

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.regmap import REG

pytestmark = pytest.mark.sim


class Loopback(wiring.Component):
    """The core's ports: ``hw.axil.RegisterBlock`` on ``s_axil``, ``s_axis`` wired straight to ``m_axis``."""

    def __init__(self, lanes: int, cfg: dict):
        self.cap = packing.capacity_for(ModelConfig.from_dict(cfg), lanes)
        from hw.axil import axi_lite_signature
        from hw.stream_in import axis_signature
        super().__init__({"s_axil": In(axi_lite_signature()), "s_axis": In(axis_signature()),
                          "m_axis": Out(axis_signature())})

    def elaborate(self, platform):
        from hw.axil import RegisterBlock
        m = Module()
        m.submodules.regs = regs = RegisterBlock(self.cap)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.axil)
        i, o = self.s_axis, self.m_axis
        m.d.comb += [o.tdata.eq(i.tdata), o.tlast.eq(i.tlast), o.tvalid.eq(i.tvalid), i.tready.eq(o.tready)]
        return m


def loopback_session(t) -> dict:
    """Inside the simulation (tb_driver): exercise every transport call on the loopback."""
    from sw.driver import Driver
    from sw.errors import DriverTimeout
    from dynaspike.artifact import IntModel
    from train.evaluate import SHIPPED_MODEL

    out = {"id": t.read(REG["ID"].offset), "capacity": asdict(Driver(t).capacity())}
    t.write(REG["RUN_CONFIG"].offset, 3)
    out["run_config"] = t.read(REG["RUN_CONFIG"].offset)
    cfg = ModelConfig()
    pkt = packing.pack_image(np.arange(64, dtype=np.uint8).reshape(8, 8), cfg, tag=77)
    t0 = t.now()
    t.send(pkt, "echo: send")
    back = t.recv(len(pkt), 1e-3, "echo: receive")
    t.wait_sent(1e-3, "echo: send")
    out["echo_equal"] = bool(np.array_equal(back, pkt))
    out["echo_cycles"] = round((t.now() - t0) * 1e8)
    out["beats"] = len(pkt)
    d = Driver(t, timeout=1.0)
    for what, call in (("recv", lambda: t.recv(10, 2e-6, "nothing: receive")),
                       ("poll", lambda: d._wait_status("DONE", "poll: wait DONE", timeout=2e-6)),
                       ("load", lambda: d.load_model(IntModel.load(SHIPPED_MODEL)))):
        t0 = t.now()
        try:
            call()
            out[what] = "no time-out"
        except DriverTimeout as e:
            out[what] = str(e)
        out[what + "_waited_cycles"] = round((t.now() - t0) * 1e8)
    return out


def test_sim_transport_on_a_loopback_stand_in():
    from sw.transports.sim import run_in_simulation
    cfg = ModelConfig()
    got = run_in_simulation("test_sw_sim:loopback_session", 64, cfg, make_component=Loopback,
                            name="sw_loopback", sim_ms=20, max_wait_cycles=3000)
    v = got["value"]
    assert v["id"] == regmap.CORE_MAGIC
    assert v["capacity"] == asdict(packing.capacity_for(cfg, 64))
    assert v["run_config"] == 3
    assert v["echo_equal"]
    # the AXI-Lite write and read of one beat's round trip aside, one beat per cycle: no idle cycles
    assert v["beats"] <= v["echo_cycles"] <= v["beats"] + 4, v
    assert "stage 'nothing: receive'" in v["recv"] and v["recv_waited_cycles"] == 200
    assert "stage 'poll: wait DONE'" in v["poll"] and 200 <= v["poll_waited_cycles"] < 220, v
    # the model packet (13k beats) cannot pass in max_wait_cycles = 3000: the send stage times out
    assert "stage 'model load: send'" in v["load"] and "did not take every input beat" in v["load"], v
    assert 3000 <= v["load_waited_cycles"] < 3100, v


core_missing = importlib.util.find_spec("hw.core") is None


@pytest.mark.skipif(core_missing, reason="hw/core.py (the core's top level) does not exist yet")
@pytest.mark.parametrize("dense,taps,stream", [(False, False, False), (True, False, False), (False, True, False),
                                               (False, True, True)])
def test_driver_on_the_simulated_core_equals_the_golden_transport(dense, taps, stream):
    """The driver on the simulated core answers what it answers on the golden transport: per image, and in a
    stream (RUN_CONFIG.STREAM: counters and cycles from the RESULT packets, taps included)."""
    import torch

    from dynaspike.artifact import IntModel
    from sw.driver import Driver
    from sw.transports.golden import GoldenTransport
    from sw.transports.sim import simulate_run
    from train.evaluate import SHIPPED_MODEL, test_split

    torch.set_num_threads(1)
    model = IntModel.load(SHIPPED_MODEL)
    x = test_split(model)[0][:2 if dense or taps else 4].numpy()
    tags = [5, 6, 7, 8][:len(x)]
    cap, sim, _ = simulate_run(SHIPPED_MODEL, x, DEFAULT_LANES, tags=tags, dense=dense, taps=taps, stream=stream)
    ref = Driver(GoldenTransport(model.config, DEFAULT_LANES))
    ref.load_model(model)
    want = ref.run(x, tags=tags, dense=dense, taps=taps)
    assert set(sim.taps) == set(want.taps) == (set(name for name, _, _ in packing.TAP_FIELDS) if taps else set())
    for k, v in want.taps.items():
        np.testing.assert_array_equal(sim.taps[k], v, err_msg=f"tap {k}")
    from hw.build import core_config
    assert cap == asdict(packing.capacity_for(core_config(), DEFAULT_LANES)), "not the shipped core's capacity"
    for f in ("tags", "logits", "result_cycles", "cycles"):
        if f in ("cycles", "result_cycles") and not ref.transport.cycle_model_available:
            continue
        np.testing.assert_array_equal(getattr(sim, f), getattr(want, f), err_msg=f)
    np.testing.assert_array_equal(sim.cycles, sim.result_cycles)
    for k, v in want.counters.items():
        if k not in ("IN_WAIT_CYCLES", "OUT_WAIT_CYCLES"):
            np.testing.assert_array_equal(sim.counters[k], v, err_msg=k)
    assert (sim.counters["IN_WAIT_CYCLES"] == 0).all(), "the image packet was sent before START"


class Corrupting:
    """A transport wrapper that changes the first packet of ``kind`` it sends with ``mutate``."""

    def __init__(self, inner, kind, mutate):
        self.inner, self.kind, self.mutate = inner, kind, mutate
        self.run_images = None

    def send(self, beats, stage):
        if self.mutate and (int(beats[0]) >> 40) & 0xFF == self.kind:
            beats, self.mutate = self.mutate(np.array(beats, dtype=np.uint64)), None
        return self.inner.send(beats, stage)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def flip(beat, mask):
    def f(b):
        b[beat] ^= np.uint64(mask)
        return b
    return f


def longer_emb_b(b):
    """A well-formed model packet whose emb_b section has one beat too many: BAD_LENGTH after the trailer."""
    payload, pos, out = b[2:-1], 0, []
    for _, name, _ in packing.SECTIONS:
        n = int(payload[pos]) >> 32
        head, body = payload[pos], payload[pos + 1:pos + 1 + n]
        if name == "emb_b":
            head, body = head + np.uint64(1 << 32), np.concatenate([body, np.zeros(1, np.uint64)])
        out += [np.array([head], np.uint64), body]
        pos += 1 + n
    return packing._packet(packing.Kind.MODEL, int(b[1]) >> 32, np.concatenate(out))


def short_image(b):
    """A well-formed image packet one payload beat short: the sequencer's BAD_LENGTH."""
    return packing._packet(packing.Kind.IMAGE, int(b[1]) >> 32, b[2:-2])


# (what is corrupted, how): BAD_CHECKSUM, BAD_SECTION, LANES_MISMATCH, BAD_LENGTH on the model; BAD_LENGTH
# on an image
CORRUPTIONS = [(packing.Kind.MODEL, flip(5, 1 << 9)), (packing.Kind.MODEL, flip(2, 1)),
               (packing.Kind.MODEL, flip(1, 1 << 32)), (packing.Kind.MODEL, longer_emb_b),
               (packing.Kind.IMAGE, short_image)]


def error_session(t, model: str, image: list) -> list:
    """Inside the simulation: each corruption -> the CoreError's fields; after each, load_model (which
    starts with SOFT_RESET) recovers and one image runs."""
    from dynaspike.artifact import IntModel
    from sw.driver import Driver

    return [corrupted_run(Driver, t, IntModel.load(model), np.array([image], dtype=np.uint8), *c)
            for c in CORRUPTIONS]


def corrupted_run(Driver, t, m, images, kind, mutate) -> dict:
    """The CoreError of a model load and image run with one packet corrupted, then the logits of a clean
    run after ``load_model`` (which starts with SOFT_RESET)."""
    from sw.errors import CoreError

    try:
        d = Driver(Corrupting(t, kind, mutate), timeout=1.0)
        d.load_model(m)
        d.run(images)
        return {"error": None}
    except CoreError as e:
        d = Driver(t, timeout=1.0)
        d.load_model(m)
        return {"error": [e.code_name, e.beat, e.stage], "logits_after": d.run(images).logits[0].tolist()}


def test_a_model_in_ddr_on_the_simulated_core_equals_the_golden_transport():
    """--weights-in-ddr: the simulated board's RAM and the golden transport's memory hold the weight buffer;
    logits, counters and CYCLES agree (the golden's CYCLES: the cycle model at ddr.SIM_RAM_LATENCY)."""
    import torch

    from dynaspike.artifact import IntModel
    from sw.driver import Driver
    from sw.transports.golden import GoldenTransport
    from sw.transports.sim import simulate_run
    from train.evaluate import SHIPPED_MODEL, test_split

    torch.set_num_threads(1)
    model = IntModel.load(SHIPPED_MODEL)
    x = test_split(model)[0][:2].numpy()
    _, sim, _ = simulate_run(SHIPPED_MODEL, x, DEFAULT_LANES, weights_in_ddr=True)
    ref = Driver(GoldenTransport(model.config, DEFAULT_LANES))
    ref.load_model(model, weights_in_ddr=True)
    want = ref.run(x)
    for f in ("logits", "cycles"):
        np.testing.assert_array_equal(getattr(sim, f), getattr(want, f), err_msg=f)
    for k, v in want.counters.items():
        np.testing.assert_array_equal(sim.counters[k], v, err_msg=k)


@pytest.mark.skipif(core_missing, reason="hw/core.py (the core's top level) does not exist yet")
def test_core_errors_surface_as_the_golden_transport_reports_them(tmp_path):
    """On the small core of tests/test_core_sim.py (P = 8, a quick build): its model packets are a few
    hundred beats, where the shipped model's are 13 k, and every error path is the same. A malformed image
    ends no packet: the driver sees the error once its wait for the result times out (after 20 k cycles
    here, far above the tiny model's load or inference)."""
    from sw.driver import Driver
    from sw.transports.golden import GoldenTransport
    from sw.transports.sim import run_in_simulation
    from tests.model_factory import random_model
    from tests.test_core_sim import TINY, WIDE, tiny_images

    model = random_model(TINY, 8)
    path = tmp_path / "tiny.npz"
    model.save(path)
    img = tiny_images(1, seed=8)[0]
    got = run_in_simulation("test_sw_sim:error_session", 8, WIDE, {"model": str(path), "image": img.tolist()},
                            sim_ms=5, max_wait_cycles=20_000, optimize=False)["value"]
    g = GoldenTransport(model.config, 8, capacity=packing.capacity_for(WIDE, 8))
    codes = []
    for case, sim in zip(CORRUPTIONS, got):
        want = corrupted_run(Driver, g, model, img[None], *case)
        assert sim == want, case
        codes.append(sim["error"][0])
    assert codes == ["BAD_CHECKSUM", "BAD_SECTION", "LANES_MISMATCH", "BAD_LENGTH", "BAD_LENGTH"]


def stuck_read_session(t, model: str, image: list) -> dict:
    """Inside the simulation: a DDR-mode image runs; then the RAM's read data channel stops (its R channel
    paused: a read that never returns), the next run times out; the RAM answers again, and load_model
    (SOFT_RESET first) and a run give the first run's logits and CYCLES."""
    from dynaspike.artifact import IntModel
    from sw.driver import Driver
    from sw.errors import DriverTimeout

    async def pause(on: bool):
        t.ram.r_channel.pause = on

    m, img = IntModel.load(model), np.array([image], dtype=np.uint8)
    d = Driver(t, timeout=1.0)
    d.load_model(m, weights_in_ddr=True)
    first = d.run(img)
    t._block(pause, True)
    try:
        d.run(img)
        stuck = None
    except DriverTimeout as e:
        stuck = str(e)
    t._block(pause, False)
    d.load_model(m, weights_in_ddr=True)
    after = d.run(img)
    return {"stuck": stuck, "first": [first.logits[0].tolist(), int(first.cycles[0])],
            "after": [after.logits[0].tolist(), int(after.cycles[0])]}


@pytest.mark.skipif(core_missing, reason="hw/core.py (the core's top level) does not exist yet")
def test_a_weight_read_that_never_returns_times_out_and_a_soft_reset_recovers(tmp_path):
    """The RAM stops answering mid-inference: DriverTimeout naming the stage, in simulated time (never a
    hang); once it answers again, the reload's SOFT_RESET (tile reads still in flight drain into the tile
    loader, which the reset cleared) and the same image give the same logits and CYCLES as before."""
    from sw.transports.sim import run_in_simulation
    from tests.model_factory import random_model
    from tests.test_core_sim import TINY, WIDE, tiny_images

    model = random_model(TINY, 8)
    path = tmp_path / "tiny.npz"
    model.save(path)
    got = run_in_simulation("test_sw_sim:stuck_read_session", 8, WIDE,
                            {"model": str(path), "image": tiny_images(1, seed=3)[0].tolist()},
                            sim_ms=5, max_wait_cycles=20_000, optimize=False)["value"]
    assert got["stuck"] and "image 0: receive RESULT" in got["stuck"], got["stuck"]
    assert got["after"] == got["first"], got
