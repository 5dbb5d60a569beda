"""bench/core.py's FPGA energy per model: the activity model of the RTL record's per-image counters."""

import numpy as np
import pytest

from dynaspike import energy
from dynaspike.config import ModelConfig


def test_fpga_energy_of_the_rtl_counters_is_the_activity_models_mean():
    pytest.importorskip("torch")
    from bench.core import CLOCK_HZ, fpga_energy

    class Model:
        config = ModelConfig()

    base = {"CYCLES": 13000, "AC_QKV": 3 * 64 * 100, "AC_KV": 5000, "AC_Y": 4000, "AC_PROJ": 64 * 50,
            "AC_FC1": 256 * 100, "AC_FC2": 64 * 300, "AC_READOUT": 1000, "SKIPPED_MODULE_STEPS": 8,
            "PROCESSED_UNITS": 60, "MERGED_TOKENS": 2, "HALTED_TOKENS": 5, "IN_WAIT_CYCLES": 0, "OUT_WAIT_CYCLES": 0, "EMB_PIXELS": 120, "DDR_READ_BEATS": 0}
    recs = [dict(base), {**base, "CYCLES": 20000, "AC_FC1": 256 * 300}]
    rtl = [(np.zeros(10), c["CYCLES"], c) for c in recs]
    f = fpga_energy(rtl, Model, 32)
    facts = energy.CoreFacts(32, int(CLOCK_HZ))
    want = np.mean([energy.energy(c, ModelConfig(), facts)["total_uj"] for c in recs])
    assert f["total"] == pytest.approx(want) and f["total"] > f["above_idle"] > 0
    assert sum(f["parts"].values()) == pytest.approx(f["total"])
