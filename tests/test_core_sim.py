"""The whole core under cocotb + Verilator against the golden model and the cycle model (``make sim``)."""

import json

import numpy as np
import pytest

from dynaspike import ddr, packing, regmap
from dynaspike.artifact import IntModel
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from sim.core_run import run_core
from sw.transports.golden import counters, taps_of
from tests.model_factory import random_model, saturating_model, saturation_seen
from train import cycle_model
from train.golden import GoldenModel

pytestmark = pytest.mark.sim

TINY = ModelConfig(img_size=4, patch_size=2, embed_kernel=2, dim=8, heads=2, blocks=1, mlp_ratio=2, t_max=2,
                   num_classes=3)
# D = 12 on P = 8: two rows per token, the second one a third full (heads of 4 channels)
WIDE = ModelConfig(**{**TINY.to_dict(), "dim": 12, "heads": 3})


def run_small(models, images, name, **kw):
    """``run_core`` on the one small core of these tests: P = 8, sized for WIDE, so the TINY models run on a
    core larger than they need (every size comes from the loaded model); a quick (-O0) build."""
    return run_core(models, images, 8, name, core_cfg=WIDE, optimize=False, **kw)


def check_against_golden(model, images, lanes, rec, dense=False, only=None, memory=None, weights_at=0,
                         slower=False):
    """Logits, AC and token counters and the cycle count of every recorded image (or those in ``only``); with
    ``memory``, of the model's weights in DDR at ``weights_at`` (``slower``: a RAM with random pauses, so the
    cycles are at least the cycle model's, no fewer)."""
    cfg = model.config
    gm = GoldenModel(model)
    pred = cycle_model.predict(model, images, lanes, dense=dense, gm=gm, memory=memory, weights_at=weights_at)
    g = gm.run(images, dense=dense)
    for k, got in enumerate(rec["images"]):
        if only is not None and k not in only:
            continue
        assert "error" not in got, f"image {k}: {got['error']}"
        tag, logits, cyc, in_packet = packing.unpack_result(np.array(got["result"], dtype=np.uint64), cfg.num_classes)
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}: logits")
        c = got["counters"]
        want = {name: v[k] for name, v in counters(g, cfg).items() if not name.endswith("WAIT_CYCLES")}
        if memory is not None:   # the tiles' beats, however the RAM paused
            want["DDR_READ_BEATS"] = pred.ddr_read_bytes[k] // ddr.BEAT_BYTES
        for name, v in want.items():
            assert c[name] == int(v), f"image {k}: {name} = {c[name]}, golden {int(v)}"
        for name in packing.COUNTER_NAMES:   # the RESULT packet's (OUT_WAIT: the waits before its end)
            if name != "OUT_WAIT_CYCLES":
                assert in_packet[name] == c[name], f"image {k}: {name} in the RESULT packet {in_packet[name]}, register {c[name]}"
        assert cyc == c["CYCLES"], f"image {k}: result packet says {cyc} cycles, register {c['CYCLES']}"
        if slower:
            assert cyc - c["IN_WAIT_CYCLES"] >= pred.cycles[k], f"image {k}: {cyc} cycles, cycle model {pred.cycles[k]}"
            continue
        assert cyc - c["IN_WAIT_CYCLES"] == pred.cycles[k], (
            f"image {k}: {cyc} cycles ({c['IN_WAIT_CYCLES']} waiting for input), cycle model {pred.cycles[k]} "
            f"({ {n: int(v[k]) for n, v in pred.by_pass.items()} })")
    return pred


def tiny_images(n, seed=0, cfg=TINY):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, cfg.in_channels, cfg.img_size, cfg.img_size), dtype=np.uint8)


def test_core_tiny_model_matches_golden():
    model = random_model(TINY, 1)
    images = tiny_images(3)
    rec = run_small(model, images, "tiny", plan=[{"taps": True}] * 3, log_states=True)
    check_against_golden(model, images, 8, rec)
    check_taps(model, images, rec)


def digits_test_images(n, start=0):
    from train.data import load_digits_split
    _, _, xte, yte = load_digits_split()
    return xte[start:start + n].numpy(), yte[start:start + n].numpy()


def shipped(name="digits"):
    from hw.build import SHIPPED_DIR
    return IntModel.load(SHIPPED_DIR / f"{name}.npz")


def shipped_core():
    """The configuration of the shipped core (the one `make bitstream` builds): it holds both shipped models."""
    from hw.build import core_config
    return core_config(lanes=DEFAULT_LANES)


def test_core_shipped_model_on_digits():
    model = shipped()
    images, _ = digits_test_images(4)
    rec = run_core(model, images, DEFAULT_LANES, "digits", plan=[{"taps": True}] * 4, core_cfg=shipped_core())
    check_against_golden(model, images, DEFAULT_LANES, rec)
    check_taps(model, images, rec)
    assert sum(r["counters"]["HALTED_TOKENS"] for r in rec["images"]) > 0, "no token halted: halting untested"


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["full-rate", "paused"])
def test_core_shipped_model_with_its_weights_in_ddr(pause):
    """The digits model's packet without its weights, biases and thresholds: the core reads them tile by tile
    from cocotbext-axi's RAM (docs/hardware.md, "DDR mode"). Logits and every counter equal the golden model's;
    CYCLES the cycle model's at the RAM's latency, or (channels paused at random) at least that."""
    from sim.core_run import WEIGHTS_AT

    model = shipped()
    images, _ = digits_test_images(3)
    rec = run_core(model, images, DEFAULT_LANES, f"digits-ddr-{pause}", core_cfg=shipped_core(), weights_in_ddr=True,
                   ram_pause=pause, seed=7)
    assert rec["ram_latency"] == ddr.SIM_RAM_LATENCY or pause
    pred = check_against_golden(model, images, DEFAULT_LANES, rec, memory=ddr.Memory(read_latency=rec["ram_latency"]),
                                weights_at=WEIGHTS_AT, slower=pause > 0)
    on_chip = cycle_model.predict(model, images, DEFAULT_LANES).cycles
    assert (pred.cycles > on_chip).all()   # memory bound: DDR mode is for models that do not fit


def check_stream(model, images, lanes, rec, paused=False):
    """The images of ``rec["stream"]`` (sent back to back, RUN_CONFIG.STREAM): logits, the counters and CYCLES
    in each RESULT packet equal the golden model's and the single-image cycle model's, and every RESULT
    trailer leaves in the cycle ``cycle_model.stream_ends`` predicts. With ``paused`` streams (idle input,
    output backpressure) the waits are the core's own, CYCLES - IN_WAIT_CYCLES is the cycle model's, and
    the trailers come later than predicted, never earlier."""
    cfg = model.config
    g = GoldenModel(model).run(images)
    pred = cycle_model.predict(model, images, lanes)
    want = counters(g, cfg)
    st = rec["stream"]
    for k, beats in enumerate(st["results"]):
        tag, logits, cyc, cnt = packing.unpack_result(np.array(beats, dtype=np.uint64), cfg.num_classes)
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"stream image {k}: logits")
        waits = ("IN_WAIT_CYCLES", "OUT_WAIT_CYCLES") if paused else ()
        assert cyc - (cnt["IN_WAIT_CYCLES"] if paused else 0) == pred.cycles[k], (
            f"stream image {k}: {cyc} cycles ({cnt['IN_WAIT_CYCLES']} waiting), cycle model {pred.cycles[k]}")
        assert ({n: v for n, v in cnt.items() if n not in waits}
                == {name: int(v[k]) for name, v in want.items() if name not in waits}), f"stream image {k}"
    ends = np.array(st["ends"]) - st["first"]
    model_ends = cycle_model.stream_ends(pred.cycles, pred.front, cfg.num_classes)
    if paused:
        assert (ends >= model_ends).all(), (ends, model_ends)
    else:
        np.testing.assert_array_equal(ends, model_ends)
    return pred


def test_core_shipped_model_on_fashion_mnist():
    """The Fashion-MNIST model on the same core build as digits: logits, every counter, taps and cycles; then
    the same images back to back (RUN_CONFIG.STREAM), each embedded while the one before runs its blocks."""
    from train.data import load_dataset
    model = shipped("fmnist")
    try:
        split = load_dataset("fmnist")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    images = split.test_x[:3].numpy()
    rec = run_core(model, images, DEFAULT_LANES, "fmnist", plan=[{"taps": True}] * 3, core_cfg=shipped_core(),
                   stream=True)
    check_against_golden(model, images, DEFAULT_LANES, rec)
    check_taps(model, images, rec)
    pred = check_stream(model, images, DEFAULT_LANES, rec)
    ends = np.array(rec["stream"]["ends"]) - rec["stream"]["first"]
    assert (np.diff(ends) < pred.cycles[1:]).all(), "the fronts did not overlap the blocks"


def test_core_shipped_model_forced_dense():
    model = shipped()
    images, _ = digits_test_images(2, start=10)
    rec = run_core(model, images, DEFAULT_LANES, "digits-dense", plan=[{"dense": True, "taps": True}] * 2,
                   core_cfg=shipped_core())
    check_against_golden(model, images, DEFAULT_LANES, rec, dense=True)
    check_taps(model, images, rec, dense=True)


def test_core_streams_with_idle_gaps_and_backpressure():
    """Random idle cycles on the input and random backpressure on the output change nothing but time
    (on a model with two rows per token), one image at a time and back to back (RUN_CONFIG.STREAM). The embedding overlaps the image's intake, so most idle cycles
    cost nothing; the input idles often enough here that some hold the inference up (IN_WAIT_CYCLES), and
    CYCLES - IN_WAIT_CYCLES is still the cycle model's count."""
    model = random_model(WIDE, 2)
    images = tiny_images(4, seed=3, cfg=WIDE)
    rec = run_small(model, images, "wide-idle", plan=[{"taps": k % 2 == 0} for k in range(4)],
                    idle=0.9, stall=0.4, seed=7, stream=True)
    check_against_golden(model, images, 8, rec)
    c = [r["counters"] for r in rec["images"]]
    assert sum(x["IN_WAIT_CYCLES"] for x in c) > 0 and sum(x["OUT_WAIT_CYCLES"] for x in c) > 0
    check_stream(model, images, 8, rec, paused=True)   # then the images back to back, with the same pauses


def test_core_saturating_model():
    """A model that saturates the embedding and the residual stream (seen on the golden trace): logits, every
    counter, the taps (the final residual included) and cycles equal on the RTL."""
    model = saturating_model(WIDE, 3)
    images = tiny_images(3, seed=5, cfg=WIDE)
    seen = saturation_seen(GoldenModel(model).run(images, trace=True).trace)
    assert seen == {"embedding": True, "residual": True}, seen
    rec = run_small(model, images, "wide-saturating", plan=[{"taps": True}] * 3)
    check_against_golden(model, images, 8, rec)
    check_taps(model, images, rec)


def test_core_soft_reset_mid_inference_and_model_reload():
    """A soft reset in the middle of an inference, then a correct run; a model reload between images."""
    a, b = random_model(TINY, 4), random_model(TINY, 5)
    images = tiny_images(4, seed=4)
    halfway = int(cycle_model.predict_cycles(a, images[1:2], 8)[0]) // 2   # mid-inference, whatever its length
    plan = [{"model": 0}, {"model": 0, "soft_reset_after": halfway}, {"model": 1, "taps": True}, {"model": 0}]
    rec = run_small([a, b], images, "tiny-reset", plan=plan)
    assert rec["images"][1]["busy_before_reset"] == 1, "the soft reset did not hit a running inference"
    st = rec["images"][1]["status_after_reset"]
    assert (st["BUSY"], st["ERROR"], st["MODEL_LOADED"]) == (0, 0, 1), st
    check_against_golden(a, images, 8, rec, only=(0, 1, 3))
    check_against_golden(b, images, 8, rec, only=(2,))
    check_taps(b, images[2:3], {"images": rec["images"][2:3]})


def test_core_refuses_bad_input_and_recovers():
    model = random_model(TINY, 6)
    images = tiny_images(1, seed=6)
    big = random_model(ModelConfig(**{**TINY.to_dict(), "blocks": 2}), 7)   # one block too many
    img = packing.pack_image(images[0], TINY)
    short = packing._packet(packing.Kind.IMAGE, 0, img[2:-2])             # one window beat short
    # a well-formed packet whose config (2 classes) disagrees with its head sections (3 classes)
    payload = packing.pack_model(model, 8)[2:-1].copy()
    field = 9  # num_classes: config beat 9 // 4, bits 16 * (9 % 4)
    payload[1 + field // 4] = (int(payload[1 + field // 4]) & ~(0xFFFF << 16 * (field % 4))) | (2 << 16 * (field % 4))
    inconsistent = packing._packet(packing.Kind.MODEL, 8, payload)
    rec = run_small(model, images, "tiny-errors", testcase="core_refuses_bad_input",
                   extra={"model_big": packing.pack_model(big, 8), "image_short": short,
                          "model_inconsistent": inconsistent})
    want = {"start_without_model": "NO_MODEL", "bad_magic": "BAD_MAGIC", "bad_checksum": "BAD_CHECKSUM",
            "oversized_model": "EXCEEDS_CAPACITY", "inconsistent_model": "BAD_LENGTH", "short_image": "BAD_LENGTH"}
    for what, code in want.items():
        got = rec[what]
        assert got["status"]["ERROR"] == 1 and got["code"] == code, f"{what}: {got}"
        assert got["after_reset"]["ERROR"] == 0, f"{what}: SOFT_RESET did not clear the error"
    assert rec["model_loaded_after_errors"] == 1
    g = GoldenModel(model).run(images)
    _, logits, _, _ = packing.unpack_result(np.array(rec["result"], dtype=np.uint64), TINY.num_classes)
    np.testing.assert_array_equal(logits, g.logits[0].numpy())


def check_taps(model, images, rec, dense=False):
    """Every tapped intermediate equals the golden model's (names the image, field, token and value)."""
    cfg = model.config
    want = taps_of(GoldenModel(model).run(images, dense=dense, trace=True))
    for k, got in enumerate(rec["images"]):
        _, taps = packing.unpack_taps(np.array(got["tap"], dtype=np.uint64), cfg)
        for name, all_images in want.items():
            w = all_images[k]
            bad = np.argwhere(taps[name] != w)
            assert not len(bad), (f"image {k}: tap {name} differs at {bad[:5].tolist()}: "
                                  f"core {taps[name][tuple(bad[0])]}, golden {w[tuple(bad[0])]}")


SECOND = ModelConfig(img_size=8, patch_size=2, embed_kernel=2, dim=32, heads=2, blocks=3, mlp_ratio=3, t_max=3,
                     num_classes=10)


def test_core_second_configuration_and_model_shape():
    """P = 64 lanes and a differently shaped model: D 32 (half a row), 3 blocks, 3 steps, MLP 3x (2 hidden
    chunks, the last one half full)."""
    model = random_model(SECOND, 11)
    images = digits_test_images(3, start=20)[0]
    rec = run_core(model, images, 64, "second", plan=[{"taps": True}, {}, {"dense": True}], optimize=False)
    check_against_golden(model, images, 64, rec, only=(0, 1))
    check_against_golden(model, images, 64, rec, dense=True, only=(2,))
    check_taps(model, images[:1], {"images": rec["images"][:1]})
