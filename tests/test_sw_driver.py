"""sw/driver.py over the golden transport: results equal the golden model's; every refusal and failure is
an exception that names what went wrong, raised before any transfer where the issue says so."""

import dataclasses

import numpy as np
import pytest
import torch

from dynaspike import packing, regmap
from dynaspike.artifact import IntModel
from dynaspike.regmap import REG, ErrorCode
from sw.driver import RUN_CONFIG, Driver
from sw.errors import CoreError, DriverTimeout, ImageError, ManifestError
from sw.transports import golden as gt
from sw.transports.golden import GoldenTransport
from train import evaluate
from train.golden import GoldenModel


RUN_CONFIG_STREAM = RUN_CONFIG["STREAM"]


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    model = IntModel.load(evaluate.SHIPPED_MODEL)
    x, y = evaluate.test_split(model)
    return model, x, y


class Spy(GoldenTransport):
    """The golden transport, counting packets sent (and optionally corrupting them)."""

    def __init__(self, *a, corrupt=None, **kw):
        super().__init__(*a, **kw)
        self.sent, self.corrupt = [], corrupt

    def send(self, beats, stage):
        self.sent.append(stage)
        if self.corrupt:
            beats = self.corrupt(np.array(beats))
        return super().send(beats, stage)


def loaded(model, **kw):
    t = Spy(model.config, 64, **kw)
    d = Driver(t, timeout=0.2)
    d.load_model(model)
    return d, t


def test_accuracy_and_results_equal_the_golden_model(shipped):
    model, x, y = shipped
    d, _ = loaded(model)
    r = d.run(x)
    assert r.batched
    g = GoldenModel(model).run(x)
    np.testing.assert_array_equal(r.logits, g.logits.numpy())
    acc = (r.pred == y.numpy()).mean()
    assert acc == evaluate.report(model, x, y)["accuracy_int"]
    np.testing.assert_array_equal(r.tags, np.arange(len(x)))
    # the counters are the golden model's per-layer operation counts summed over blocks and steps
    L = model.config.blocks
    for kind in ("qkv", "kv", "y", "proj", "fc1", "fc2"):
        want = sum(g.acs[f"b{l}.{kind}"].sum(1) for l in range(L)).numpy()
        np.testing.assert_array_equal(r.counters[f"AC_{kind.upper()}"], want)
    np.testing.assert_array_equal(r.counters["AC_READOUT"], g.acs["readout"].sum(1).numpy())
    assert sum(r.counters[f"AC_{k}"] for k in ("QKV", "KV", "Y", "PROJ", "FC1", "FC2", "READOUT")).tolist() \
        == g.acs_total.tolist()
    assert (r.counters["SKIPPED_MODULE_STEPS"] == (model["mask"] == 0).sum()).all()
    np.testing.assert_array_equal(r.counters["PROCESSED_UNITS"], g.units.sum((1, 2)).numpy())
    np.testing.assert_array_equal(r.counters["MERGED_TOKENS"], (g.halt_t < 0).sum(1).numpy())
    np.testing.assert_array_equal(r.cycles, r.result_cycles)


def test_per_image_protocol_equals_the_batched_path(shipped):
    model, x, _ = shipped
    d, t = loaded(model)
    fast = d.run(x[:12], tags=np.arange(100, 112))
    t.run_images = None                      # the per-image transactions, as on the board and in simulation
    slow = d.run(x[:12], tags=np.arange(100, 112))
    assert fast.batched and not slow.batched
    for f in ("tags", "logits", "cycles", "result_cycles"):
        np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f), err_msg=f)
    for k in fast.counters:
        np.testing.assert_array_equal(fast.counters[k], slow.counters[k], err_msg=k)
    assert d._read("IMAGES_DONE") == 24 and len(t.sent) == 1 + 12
    assert regmap.REG["STATUS"].field("DONE").get(t.read(REG["STATUS"].offset))


@pytest.mark.parametrize("taps", [False, True])
def test_a_stream_equals_the_per_image_protocol(shipped, taps):
    """RUN_CONFIG.STREAM: every image packet starts itself (no START written), the next is sent before this
    one's answers are awaited; the results, cycles and counters (from the RESULT packets) are the same."""
    model, x, _ = shipped
    d, t = loaded(model)
    t.run_images = None
    one = d.run(x[:6], taps=taps)
    writes = []
    write = t.write
    t.write = lambda off, v: (writes.append(off), write(off, v))[1]
    streamed = d.run(x[:6], taps=taps, stream=True)
    assert REG["CTRL"].offset not in writes and REG["RUN_CONFIG"].offset in writes
    assert RUN_CONFIG_STREAM.get(t.read(REG["RUN_CONFIG"].offset))
    for f in ("tags", "logits", "cycles", "result_cycles"):
        np.testing.assert_array_equal(getattr(one, f), getattr(streamed, f), err_msg=f)
    for k in one.counters:
        np.testing.assert_array_equal(one.counters[k], streamed.counters[k], err_msg=k)
    for k in one.taps:
        np.testing.assert_array_equal(one.taps[k], streamed.taps[k], err_msg=k)


def test_dense_run_is_the_golden_dense_run(shipped):
    model, x, _ = shipped
    d, _ = loaded(model)
    r = d.run(x[:40], dense=True)
    np.testing.assert_array_equal(r.logits, GoldenModel(model).run(x[:40], dense=True).logits.numpy())
    assert (r.counters["SKIPPED_MODULE_STEPS"] == 0).all() and (r.counters["MERGED_TOKENS"] == 0).all()
    assert (r.counters["HALTED_TOKENS"] == 0).all()


def test_cycles_are_the_cycle_model(shipped):
    cm = pytest.importorskip("train.cycle_model", reason="train/cycle_model.py arrives with the core")
    model, x, _ = shipped
    d, _ = loaded(model)
    r = d.run(x[:20])
    np.testing.assert_array_equal(r.cycles, cm.predict_cycles(model, x[:20].numpy(), 64))


def test_taps_are_the_golden_state(shipped):
    model, x, _ = shipped
    g = GoldenModel(model).run(x[:3], trace=True)
    if not {"hacc", "x_final"} <= set(g.trace):
        pytest.skip("train/golden.py does not trace hacc and x_final yet")
    d, _ = loaded(model)
    r = d.run(x[:3], taps=True)
    for name, want in (("counts", g.counts), ("rep", g.rep), ("size", g.size), ("halt_t", g.halt_t),
                       ("halt_l", g.halt_l), ("hacc", g.trace["hacc"]), ("x", g.trace["x_final"])):
        np.testing.assert_array_equal(r.taps[name], want.numpy(), err_msg=name)


def test_oversized_model_is_refused_before_any_transfer(shipped):
    model = shipped[0]
    small = dataclasses.replace(packing.capacity_for(model.config, 64), max_dim=32, weight_rows=100)
    t = Spy(model.config, 64, capacity=small)
    with pytest.raises(packing.CapacityError, match=r"dim 64 > 32.*weight rows 1280 > 100"):
        Driver(t).load_model(model)
    assert t.sent == []


def test_manifest_mismatch_is_refused_before_any_transfer(shipped):
    model = shipped[0]
    t = Spy(model.config, 64)
    t._manifest = {**t._manifest, "capacity": {**t._manifest["capacity"], "max_classes": 8}}
    with pytest.raises(ManifestError, match=r"not the one this manifest describes.*num_classes 10 > 8"):
        Driver(t).load_model(model)
    t._manifest = {**t._manifest, "capacity": dataclasses.asdict(t.cap), "formats_id": 1}
    with pytest.raises(ManifestError, match="formats_id 1"):
        Driver(t).load_model(model)
    assert t.sent == []


@pytest.mark.parametrize("images,msg", [
    (np.zeros((2, 1, 8, 7), np.uint8), r"images shape \(2, 1, 8, 7\), expected \(B, 1, 8, 8\)"),
    (np.zeros((2, 8, 8), np.float32), "dtype float32, expected uint8"),
    (np.zeros((0, 1, 8, 8), np.uint8), "no images"),
])
def test_wrong_images_are_refused_before_any_transfer(shipped, images, msg):
    d, t = loaded(shipped[0])
    with pytest.raises(ImageError, match=msg):
        d.run(images)
    assert t.sent == ["model load: send"]


def test_a_corrupted_model_packet_surfaces_the_error_code(shipped):
    model = shipped[0]

    def flip(beats):
        beats[5] ^= np.uint64(1)
        return beats

    t = Spy(model.config, 64, corrupt=flip)
    d = Driver(t, timeout=0.2)
    with pytest.raises(CoreError, match=r"BAD_CHECKSUM \(7\) at input beat (\d+)") as e:
        d.load_model(model)
    assert e.value.code == ErrorCode.BAD_CHECKSUM and e.value.stage == "model load: wait MODEL_LOADED"
    t.corrupt = None
    d.load_model(model)                       # load_model starts with SOFT_RESET: it recovers
    assert d.run(shipped[1][:2]).logits.shape == (2, 10)


def test_an_image_without_a_model_is_a_core_error(shipped):
    model, x, _ = shipped
    d, t = loaded(model)
    t.write(REG["CTRL"].offset, REG["CTRL"].field("UNLOAD").put(1))  # the core forgets it behind our back
    with pytest.raises(CoreError, match="NO_MODEL"):
        d.run(x[:2])
    d.soft_reset()
    assert not REG["STATUS"].field("ERROR").get(t.read(REG["STATUS"].offset))


class Silent(GoldenTransport):
    """A core that takes everything and never answers (START is lost), or never finishes loading."""

    def __init__(self, *a, never_loads=False, **kw):
        super().__init__(*a, **kw)
        self.never_loads = never_loads
        self.run_images = None

    def _load(self, beats):
        if not self.never_loads:
            super()._load(beats)

    def _maybe_run(self):
        pass


@pytest.mark.parametrize("never_loads,stage", [(True, "model load: wait MODEL_LOADED"),
                                               (False, "image 0: receive RESULT")])
def test_time_outs_name_the_stage(shipped, never_loads, stage):
    model, x, _ = shipped
    d = Driver(Silent(model.config, 64, never_loads=never_loads), timeout=0.05)
    with pytest.raises(DriverTimeout, match=f"stage '{stage}'") as e:
        d.load_model(model)
        d.run(x[:1])
    assert e.value.stage == stage


@pytest.mark.parametrize("change,message", [
    (lambda counts: (counts, 99), "RESULT packet tag 99, sent 0"),
    (lambda counts: ({**counts, "AC_FC1": counts["AC_FC1"] + 1}, 0),
     "RESULT packet's counters disagree with the registers: AC_FC1"),
], ids=["tag", "counters"])
def test_a_result_packet_that_disagrees_is_refused(shipped, change, message):
    """A RESULT packet with another image's tag, or with counters other than the registers read after DONE."""
    model, x, _ = shipped
    d, t = loaded(model)
    t.run_images = None
    orig = t.recv

    def recv(*a):
        _, logits, cyc, counts = packing.unpack_result(orig(*a), 10)
        counts, tag = change(counts)
        return packing.pack_result(logits, cyc, counts, tag=tag)
    t.recv = recv
    with pytest.raises(Exception, match=message):
        d.run(x[:1])


def _model_packet(model):
    return packing.pack_model(model, 64)


def _flip(i, mask):
    def f(b):
        b = b.copy()
        b[i] ^= np.uint64(mask)
        return b
    return f


@pytest.mark.parametrize("mutate,code,beat", [
    (_flip(0, 1), ErrorCode.BAD_MAGIC, 0),
    (_flip(0, 1 << 33), ErrorCode.BAD_VERSION, 0),
    (_flip(0, 7 << 40), ErrorCode.BAD_KIND, 0),
    (_flip(1, 1 << 32), ErrorCode.LANES_MISMATCH, 1),
    (_flip(2, 1), ErrorCode.BAD_SECTION, 2),
    (_flip(2, 1 << 50), ErrorCode.BAD_LENGTH, 2),
    (_flip(5, 1 << 9), ErrorCode.BAD_CHECKSUM, -1),
    (_flip(-1, 1 << 40), ErrorCode.BAD_CHECKSUM, -1),
    (lambda b: b[:-2], ErrorCode.EARLY_TLAST, -1),
])
def test_packet_errors_match_the_rtl_parser(shipped, mutate, code, beat):
    """The same corruptions and answers as tests/test_hw_stream_in.py's."""
    beats = mutate(_model_packet(shipped[0]))
    assert gt.packet_error(beats, 64) == (code, beat % len(beats))
    assert gt.packet_error(_model_packet(shipped[0]), 64) is None



def test_a_model_beyond_the_capacity_sent_anyway_is_refused_by_the_core(shipped):
    """What the host check prevents, the core (and so the golden transport) refuses too: EXCEEDS_CAPACITY
    after the model's trailer, beat 0 (a sequencer error, hw/core.py)."""
    model = shipped[0]
    small = dataclasses.replace(packing.capacity_for(model.config, 64), max_hidden=128)
    t = GoldenTransport(model.config, 64, capacity=small)
    t.send(packing.pack_model(model, 64), "raw send")
    assert (t.read(REG["ERROR_CODE"].offset), t.read(REG["ERROR_BEAT"].offset)) == (ErrorCode.EXCEEDS_CAPACITY, 0)
    assert not REG["STATUS"].field("MODEL_LOADED").get(t.read(REG["STATUS"].offset))


def test_a_model_with_its_weights_in_ddr_runs_as_on_chip(shipped):
    """load_model(weights_in_ddr=True): the weight buffer placed by the transport, its address in WEIGHTS_ADDR,
    the packet without weights; logits and counters as on chip, CYCLES the cycle model's of DDR mode."""
    from dynaspike import ddr
    from train import cycle_model

    model, x, _ = shipped
    t = Spy(model.config, 64)
    d = Driver(t, timeout=0.2)
    d.load_model(model, weights_in_ddr=True)
    addr = t.read(REG["WEIGHTS_ADDR"].offset)
    assert addr % ddr.BUFFER_ALIGN == 0 and t.memory[addr] == ddr.pack_weights(model, 64)
    status = t.read(REG["STATUS"].offset)
    assert REG["STATUS"].field("WEIGHTS_IN_DDR").get(status) == 1
    r, on_chip = d.run(x[:6]), loaded(model)[0].run(x[:6])
    np.testing.assert_array_equal(r.logits, on_chip.logits)
    pred = cycle_model.predict(model, x[:6].numpy(), 64, memory=ddr.Memory(read_latency=ddr.SIM_RAM_LATENCY),
                               weights_at=addr)
    for k, v in on_chip.counters.items():    # as on chip, but for the tiles' beats read from DDR
        want = pred.ddr_read_bytes // ddr.BEAT_BYTES if k == "DDR_READ_BEATS" else v
        np.testing.assert_array_equal(r.counters[k], want, err_msg=k)
    assert (on_chip.counters["DDR_READ_BEATS"] == 0).all() and (r.counters["DDR_READ_BEATS"] > 0).all()
    np.testing.assert_array_equal(r.cycles, pred.cycles)
    assert (r.cycles > on_chip.cycles).all()


def test_a_weight_buffer_that_is_not_in_memory_is_an_axi_error(shipped):
    model, x, _ = shipped
    t = Spy(model.config, 64)
    t.place = lambda data, stage: 0x2000_0000        # nothing there: the core's reads fail
    d = Driver(t, timeout=0.2)
    d.load_model(model, weights_in_ddr=True)
    with pytest.raises(CoreError, match="AXI_ERROR"):
        d.run(x[:1])
