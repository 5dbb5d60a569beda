"""bench/seed_models.py and bench/ddr.py on a tiny shape: the calibration reaches its target rates, the
DDR figures and the plot (`make bench` runs them on the seeds' shapes)."""

import json

import numpy as np
import pytest

from conftest import TINY_CFG, random_images

TARGET = {"ain": 0.25, "q": 0.35, "k": 0.3, "v": 0.15, "attn": 0.2, "hid": 0.1}


@pytest.fixture(scope="module")
def calibrated():
    pytest.importorskip("torch")
    from bench import seed_models

    images = random_images(TINY_CFG, 16, 0).numpy()
    return seed_models.build(TINY_CFG, images[:8], TARGET, bn_images=images), images


def test_calibration_reaches_the_target_rates(calibrated):
    from train.golden import GoldenModel

    model, images = calibrated
    assert model.info["calibrated_to"] == TARGET
    tr = GoldenModel(model).run(images[:8], trace=True).trace
    for kind in ("ain", "q", "k", "v", "attn", "hid"):   # block 0: what each knob was set on
        rate = np.mean([float(tr[f"t{t}.b0.{kind}"].float().mean()) for t in range(TINY_CFG.t_max)])
        assert abs(rate - TARGET[kind]) < 0.08, (kind, rate)
    assert not (model["mask"] == 0).any() and model.params.merge_threshold == -1   # untrained: dense


def test_cifar_like_pads_and_repeats():
    from bench.seed_models import SHAPES, cifar_like

    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    y = cifar_like(x, SHAPES["seed_cifar10"])
    assert y.shape == (2, 3, 32, 32) and (y[:, 2, 2:30, 2:30] == x[:, 0]).all() and y[:, :, :2].sum() == 0


def test_figures_with_mask_and_plot(calibrated, tmp_path):
    from bench import ddr

    model, images = calibrated
    half = model["mask"].copy()
    half[:, 1:] = 0
    masker = type(model)(model.config, model.params, dict(model.tensors, mask=half), {})
    masked = ddr.with_mask(model, masker)
    assert (masked["mask"] == np.tile(half[:2], (TINY_CFG.blocks, 1))).all()
    rows = {"full": ddr.figures(model, images, 8), "masked": ddr.figures(masked, images, 8)}
    full, m = rows["full"], rows["masked"]
    assert full["dynamic_traffic_ratio"] == pytest.approx(1.0)            # nothing to save: no mask, no halting
    assert m["dense"] == full["dense"]                                   # dense ignores the mask
    assert m["dynamic_traffic_ratio"] < 0.5 and m["op_ratio"] < 0.5       # one step of three
    assert m["dynamic"]["latency_over_max"] >= 1
    ddr.plot(rows, tmp_path / "ddr.png")
    assert (tmp_path / "ddr.png").stat().st_size > 0
    json.dumps(rows)


def test_the_cores_ddr_mode_costs_the_memory_and_a_longer_latency_costs_more(calibrated):
    from bench import ddr

    model, images = calibrated
    c = ddr.core_weights_in_ddr(model, images[:4], 8)["cycles_per_image"]
    assert c["on_chip"] < c["sim_ram"] < c["assumed_latency"]
