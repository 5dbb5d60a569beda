"""dynaspike/packing.py: the stream format round-trips, refuses malformed packets, matches the layout."""

import dataclasses

import numpy as np
import pytest

from dynaspike import cycles, packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS
from model_factory import random_model

DIGITS = ModelConfig()
ODD = ModelConfig(img_size=6, in_channels=3, patch_size=3, embed_kernel=5, dim=24, heads=3, blocks=1,
                  mlp_ratio=3, t_max=2, num_classes=5)


@pytest.mark.parametrize("cfg,lanes", [(DIGITS, 64), (DIGITS, 8), (ODD, 16), (ODD, 64)])
def test_model_round_trip(cfg, lanes):
    model = random_model(cfg, 3)
    beats = packing.pack_model(model, lanes)
    assert beats.dtype == np.uint64
    cfg2, params2, lanes2, sec = packing.unpack_model(beats)
    assert (cfg2, params2, lanes2) == (cfg, model.params, lanes)
    for name in ("emb_w", "emb_b", "head_w", "head_b", "mask", "halt_lut"):
        np.testing.assert_array_equal(sec[name], model[name].astype(np.int64), err_msg=name)
    mem = packing.memory_images(model, lanes)
    for name in ("weights", "biases", "thresholds"):
        np.testing.assert_array_equal(sec[name], mem[name], err_msg=name)


def test_a_model_with_its_weights_in_ddr_leaves_their_sections_empty():
    model = random_model(DIGITS, 3)
    full, ddr_packet = packing.pack_model(model, 16), packing.pack_model(model, 16, weights_in_ddr=True)
    beats = packing.section_beats(DIGITS, 16)
    assert len(full) - len(ddr_packet) == sum(beats[name] for name in packing.DDR_SECTIONS)
    cfg, params, lanes, sec = packing.unpack_model(ddr_packet)
    assert (cfg, params, lanes) == (DIGITS, model.params, 16)
    assert [sec[name].shape[0] for name in packing.DDR_SECTIONS] == [0, 0, 0]
    np.testing.assert_array_equal(sec["head_w"], model["head_w"])
    with pytest.raises(packing.PackingError, match="in DDR"):
        packing.model_from_packet(ddr_packet)


@pytest.mark.parametrize("lanes", [8, 64])
def test_memory_images_follow_the_layout(lanes):
    """Every weight, bias and threshold is where weight_layout says, and padding is inert."""
    model = random_model(DIGITS, 5)
    layout = packing.weight_layout(DIGITS, lanes)
    mem = packing.memory_images(model, lanes)
    for l in range(DIGITS.blocks):
        for name in packing.SPIKE_LAYERS:
            lay = layout[f"b{l}.{name}"]
            w = model[f"b{l}.{name}_w"]
            out, fan_in = w.shape
            for o in range(0, out, 7):
                c, p = divmod(o, lanes)
                grp, half = divmod(c, cycles.ACC_ROWS)    # engine rows hold ACC_ROWS chunks side by side
                for i in range(0, fan_in, 5):
                    assert mem["weights"][lay["w_base"] + grp * fan_in + i, half * lanes + p] == w[o, i], (name, o, i)
                assert mem["biases"][lay["b_row"] + grp, half * lanes + p] == model[f"b{l}.{name}_b"][o]
                if lay["th_row"] is not None:
                    assert mem["thresholds"][lay["th_row"] + c, p] == model[f"b{l}.{name}_th"][o]


def test_default_layout_sizes():
    rows = packing.weight_layout(DIGITS, 64)["_rows"]
    # per block: q, k, v, proj one engine row (1 chunk) x 64 inputs each, fc1 2 engine rows (4 chunks) x 64
    # inputs, fc2 1 x 256 inputs; thresholds per chunk of P
    assert rows == {"weights": 2 * (4 * 64 + 128 + 256), "biases": 2 * (4 + 2 + 1), "thresholds": 2 * (3 + 4)}


def test_padding_lanes_are_inert():
    mem = packing.memory_images(random_model(ODD, 1), 16)   # D = 24: the second chunk uses 8 of 16 lanes
    lay = packing.weight_layout(ODD, 16)["b0.q"]
    assert (lay["chunks"], lay["groups"]) == (2, 1)
    assert not mem["weights"][lay["w_base"]:lay["w_base"] + lay["fan_in"], 16 + 8:].any()
    assert not mem["biases"][lay["b_row"], 16 + 8:].any()
    assert (mem["thresholds"][lay["th_row"] + 1, 8:] == FORMATS.acc_max).all()


def test_layout_refuses_lanes_not_a_multiple_of_8():
    with pytest.raises(ValueError, match="got 12"):
        packing.weight_layout(DIGITS, 12)


@pytest.mark.parametrize("mutate,msg", [
    (lambda b: b.__setitem__(0, b[0] ^ np.uint64(1)), "magic"),
    (lambda b: b.__setitem__(0, b[0] + np.uint64(1 << 32)), "stream version"),
    (lambda b: b.__setitem__(0, b[0] + np.uint64(1 << 40)), "packet kind"),
    (lambda b: b.__setitem__(1, b[1] + np.uint64(1)), "payload of"),
    (lambda b: b.__setitem__(5, b[5] ^ np.uint64(1 << 17)), "checksum"),
    (lambda b: b.__setitem__(-1, b[-1] ^ np.uint64(1 << 40)), "trailer: magic"),
])
def test_malformed_packets_are_refused(mutate, msg):
    beats = packing.pack_model(random_model(ODD, 2), 16).copy()
    mutate(beats)
    with pytest.raises(packing.PackingError, match=msg):
        packing.unpack_model(beats)


def test_truncated_packet_is_refused():
    beats = packing.pack_model(random_model(ODD, 2), 16)
    with pytest.raises(packing.PackingError):
        packing.unpack_model(np.concatenate([beats[:-3], beats[-1:]]))


def test_image_round_trip_and_window_order():
    cfg = ODD  # 3 channels, 5x5 windows with stride 3 on a 6x6 image: overlapping, zero-padded by 1
    rng = np.random.default_rng(0)
    img = rng.integers(1, 256, size=(3, 6, 6), dtype=np.uint8)
    tag, patches = packing.unpack_image(packing.pack_image(img, cfg, tag=0xDEADBEEF), cfg)
    assert tag == 0xDEADBEEF and patches.shape == (cfg.num_tokens, cfg.patch_dim)
    # naive definition: token k = (row r, col c) of the patch grid; element i = (channel, wy, wx) of the
    # window whose top-left pixel is (r * patch - pad, c * patch - pad); outside the image: 0
    g, k, p, pad = 2, 5, 3, 1
    for tok in range(cfg.num_tokens):
        r, c = divmod(tok, g)
        i = 0
        for ch in range(3):
            for wy in range(k):
                for wx in range(k):
                    y, x = r * p - pad + wy, c * p - pad + wx
                    want = img[ch, y, x] if 0 <= y < 6 and 0 <= x < 6 else 0
                    assert patches[tok, i] == want, (tok, i)
                    i += 1


def test_windows_equal_the_golden_models():
    torch = pytest.importorskip("torch")
    from train.golden import patches

    from dynaspike.artifact import IntModel

    cfg = IntModel.load("train/shipped/digits.npz").config
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(5, cfg.in_channels, cfg.img_size, cfg.img_size), dtype=np.uint8)
    want = patches(torch.from_numpy(imgs), cfg).numpy()
    for n in range(len(imgs)):
        np.testing.assert_array_equal(packing.image_to_patches(imgs[n], cfg), want[n])


def test_image_refuses_wrong_shape_and_dtype():
    with pytest.raises(ValueError, match=r"image shape \(7, 8\)"):
        packing.pack_image(np.zeros((7, 8), np.uint8), DIGITS)
    with pytest.raises(ValueError, match="dtype float64"):
        packing.pack_image(np.zeros((8, 8)), DIGITS)


def test_result_round_trip():
    logits = np.array([-(1 << 31), (1 << 31) - 1, 0, -1, 5], np.int64)
    counts = {name: (k * 0x1234567) & 0xFFFFFFFF for k, name in enumerate(packing.COUNTER_NAMES)}
    counts["AC_QKV"] = (1 << 32) - 1
    beats = packing.pack_result(logits, (1 << 40) + 3, counts, tag=7)
    assert len(beats) == 3 + packing.result_payload_beats(5)
    tag, got, cycles, got_counts = packing.unpack_result(beats, 5)
    assert (tag, cycles, got_counts) == (7, (1 << 40) + 3, counts)
    np.testing.assert_array_equal(got, logits)
    with pytest.raises(packing.PackingError, match="result counters missing"):
        packing.pack_result(logits, 0, {}, tag=7)
    with pytest.raises(packing.PackingError, match="result payload of"):
        packing.unpack_result(beats, 7)


def test_beats_are_little_endian_bytes():
    beats = packing.to_beats([1, -2, 3], 16)
    assert beats.tobytes() == bytes([1, 0, 0xFE, 0xFF, 3, 0, 0, 0])
    assert packing.to_beats([], 8).size == 0


def capacity(**kw):
    """A core sized exactly for the digits model at P = 64, with ``kw`` overriding single limits."""
    base = dataclasses.asdict(packing.capacity_for(DIGITS, 64))
    assert (base["weight_rows"], base["max_patch_dim"]) == (1280, DIGITS.patch_dim)
    base.update(kw)
    return regmap.Capacity(**base)


def test_capacity_accepts_a_fitting_model():
    packing.check_capacity(DIGITS, capacity())


def test_capacity_refuses_naming_every_limit():
    with pytest.raises(packing.CapacityError, match=r"dim 64 > 32.*weight rows 1280 > 1000"):
        packing.check_capacity(DIGITS, capacity(max_dim=32, weight_rows=1000))
    with pytest.raises(packing.CapacityError, match="formats_id"):
        packing.check_capacity(DIGITS, capacity(formats_id=1))


def test_capacity_round_trips_through_registers():
    cap = capacity()
    regs = cap.register_values()
    assert regmap.Capacity.from_registers(regs.__getitem__) == cap
    assert dataclasses.astuple(cap)[0] == regs[regmap.REG["LANES"].offset]


def test_taps_round_trip():
    cfg = DIGITS
    rng = np.random.default_rng(3)
    taps = {name: rng.integers(-1 if signed else 0, 300, size=shape(cfg)) for name, shape, signed in packing.TAP_FIELDS}
    tag, back = packing.unpack_taps(packing.pack_taps(taps, cfg, tag=7), cfg)
    assert tag == 7 and set(back) == set(taps)
    for name in taps:
        np.testing.assert_array_equal(back[name], taps[name])
    with pytest.raises(packing.PackingError, match="tap x has shape"):
        packing.pack_taps({**taps, "x": taps["x"][:1]}, cfg)


def test_image_windows_start_on_beats():
    cfg = ODD  # patch_dim 75: 10 beats per token, the last one padded
    img = np.full((3, 6, 6), 9, np.uint8)
    beats = packing.pack_image(img, cfg)
    assert len(beats) == 3 + cfg.num_tokens * packing.beats_per_token(cfg) and packing.beats_per_token(cfg) == 10
