"""The whole core under cocotb + Verilator against the golden model and the cycle model (``make sim``)."""

import json

import numpy as np
import pytest

from dynaspike import packing, regmap
from dynaspike.artifact import IntModel
from dynaspike.config import ModelConfig
from sim.runner import build_dir_for, run_cocotb
from tests.model_factory import random_model
from train import cycle_model
from train.golden import GoldenModel

pytestmark = pytest.mark.sim

TINY = ModelConfig(img_size=4, patch_size=2, embed_kernel=2, dim=8, heads=2, blocks=1, mlp_ratio=2, t_max=2,
                   num_classes=3)


def make_core(lanes, cfg):
    from hw.core import Core
    return Core(lanes, ModelConfig.from_dict(cfg))


def run_core(model: IntModel, images, lanes: int, name: str, **opts):
    """Run ``images`` through the simulated core; return the bench's record (see sim/tb_core.py)."""
    rtl = {"lanes": lanes, "cfg": model.config.to_dict()}
    bdir = build_dir_for("core", rtl)
    bdir.mkdir(parents=True, exist_ok=True)
    packets = [packing.pack_image(img, model.config, tag=k) for k, img in enumerate(images)]
    width = max(len(pk) for pk in packets)
    case = bdir / f"case-{name}.npz"
    np.savez(case, model=packing.pack_model(model, lanes),
             images=np.stack([np.pad(pk, (0, width - len(pk))) for pk in packets]),
             image_beats=np.array([len(pk) for pk in packets]))
    out = bdir / f"out-{name}.json"
    run_cocotb("core", make_core, rtl, "tb_core", {"case": str(case), "out": str(out), **opts})
    return json.loads(out.read_text())


def check_against_golden(model, images, lanes, rec, dense=False):
    cfg = model.config
    gm = GoldenModel(model)
    pred = cycle_model.predict(model, images, lanes, dense=dense, gm=gm)
    g = gm.run(images, dense=dense)
    for k, got in enumerate(rec["images"]):
        assert "error" not in got, f"image {k}: {got['error']}"
        tag, logits, cyc = packing.unpack_result(np.array(got["result"], dtype=np.uint64), cfg.num_classes)
        assert tag == k
        np.testing.assert_array_equal(logits, g.logits[k].numpy(), err_msg=f"image {k}: logits")
        c = got["counters"]
        want = {"AC_QKV": sum(g.acs[f"b{l}.qkv"][k].sum() for l in range(cfg.blocks)),
                "AC_KV": sum(g.acs[f"b{l}.kv"][k].sum() for l in range(cfg.blocks)),
                "AC_Y": sum(g.acs[f"b{l}.y"][k].sum() for l in range(cfg.blocks)),
                "AC_PROJ": sum(g.acs[f"b{l}.proj"][k].sum() for l in range(cfg.blocks)),
                "AC_FC1": sum(g.acs[f"b{l}.fc1"][k].sum() for l in range(cfg.blocks)),
                "AC_FC2": sum(g.acs[f"b{l}.fc2"][k].sum() for l in range(cfg.blocks)),
                "AC_READOUT": g.acs["readout"][k].sum(),
                "PROCESSED_UNITS": g.units[k].sum(),
                "MERGED_TOKENS": int((g.size[k] == 0).sum()),
                "SKIPPED_MODULE_STEPS": int((g.mask[:2 * cfg.blocks, :cfg.t_max] == 0).sum())}
        for name, v in want.items():
            assert c[name] == int(v), f"image {k}: {name} = {c[name]}, golden {int(v)}"
        assert cyc == c["CYCLES"], f"image {k}: result packet says {cyc} cycles, register {c['CYCLES']}"
        assert cyc == pred.cycles[k], (f"image {k}: {cyc} cycles, cycle model {pred.cycles[k]} "
                                       f"({ {n: int(v[k]) for n, v in pred.by_pass.items()} })")
    return pred


def tiny_images(n, seed=0, cfg=TINY):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, cfg.in_channels, cfg.img_size, cfg.img_size), dtype=np.uint8)


def test_core_tiny_model_matches_golden():
    model = random_model(TINY, 1)
    images = tiny_images(3)
    rec = run_core(model, images, 8, "tiny", log_states=True, taps=True)
    check_against_golden(model, images, 8, rec)
    check_taps(model, images, rec)


def digits_test_images(n, start=0):
    from train.data import load_digits_split
    _, _, xte, yte = load_digits_split()
    return xte[start:start + n].numpy(), yte[start:start + n].numpy()


def shipped():
    from hw.build import SHIPPED_MODEL
    return IntModel.load(SHIPPED_MODEL)


def test_core_shipped_model_on_digits():
    model = shipped()
    images, _ = digits_test_images(4)
    rec = run_core(model, images, 64, "digits")
    check_against_golden(model, images, 64, rec)


def check_taps(model, images, rec, dense=False):
    """Every tapped intermediate equals the golden model's (names the image, field, token and value)."""
    cfg = model.config
    g = GoldenModel(model).run(images, dense=dense, trace=True)
    for k, got in enumerate(rec["images"]):
        tag, taps = packing.unpack_taps(np.array(got["tap"], dtype=np.uint64), cfg)
        want = {"counts": g.counts[k], "rep": g.rep[k], "size": g.size[k], "halt_t": g.halt_t[k],
                "halt_l": g.halt_l[k], "hacc": g.trace["hacc"][k], "x": g.trace["x_final"][k]}
        for name, w in want.items():
            w = np.asarray(w)
            bad = np.argwhere(taps[name] != w)
            assert not len(bad), (f"image {k}: tap {name} differs at {bad[:5].tolist()}: "
                                  f"core {taps[name][tuple(bad[0])]}, golden {w[tuple(bad[0])]}")
