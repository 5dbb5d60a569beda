"""bench/core.py's figures of images sent back to back (RUN_CONFIG.STREAM), from a stream record."""

from types import SimpleNamespace

import numpy as np
import pytest

from dynaspike import packing
from dynaspike.config import ModelConfig
from train import cycle_model


def test_stream_figures_compare_the_trailers_with_the_cycle_model_and_the_single_runs():
    pytest.importorskip("torch")
    from bench.core import CLOCK_HZ, fpga_energy, stream_figures

    cfg = ModelConfig()
    model = SimpleNamespace(config=cfg)
    pred = SimpleNamespace(cycles=np.array([1000, 1100, 900]), front=np.array([200, 150, 300]))
    logits = [np.arange(cfg.num_classes) * k for k in range(3)]
    counts = {name: 100 for name in packing.COUNTER_NAMES}
    rtl = [(logits[k], int(pred.cycles[k]), {**counts, "CYCLES": int(pred.cycles[k])}) for k in range(3)]
    ends = cycle_model.stream_ends(pred.cycles, pred.front, cfg.num_classes)
    results = [packing.pack_result(logits[k], int(pred.cycles[k]), counts, tag=k).tolist() for k in range(3)]
    f = stream_figures(model, {"results": results, "first": 7, "ends": (ends + 7).tolist()}, pred, rtl, 32)
    assert f["stream_ends_equal_cycle_model"] and f["stream_results_equal_single_runs"]
    assert f["stream_cycles_per_image"] == (ends[-1] + 1) / 3
    assert f["stream_images_per_s_100mhz"] == pytest.approx(CLOCK_HZ * 3 / (ends[-1] + 1))
    assert f["stream_speedup_over_one_at_a_time"] == pytest.approx(1000 / ((ends[-1] + 1) / 3))
    # the stream's energy per image: each image charged the stream's cycles per image, not its latency
    alone = fpga_energy(rtl, model, 32)["total"]
    per = [(lg, f["stream_cycles_per_image"], {**c, "CYCLES": f["stream_cycles_per_image"]}) for lg, _, c in rtl]
    assert f["stream_energy_uj_fpga"] == pytest.approx(fpga_energy(per, model, 32)["total"])
    assert f["stream_energy_uj_fpga"] < alone
    # a trailer a cycle late, an answer that differs: both seen
    late = stream_figures(model, {"results": results[::-1], "first": 7, "ends": (ends + 8).tolist()}, pred, rtl, 32)
    assert not late["stream_ends_equal_cycle_model"] and not late["stream_results_equal_single_runs"]
