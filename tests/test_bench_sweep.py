"""bench/sweep.py: the lane sweep's table (yosys and RTL stand-ins here; `make bench LANES=...` runs them)."""

import json

import pytest

from dynaspike.cycles import ACC_ROWS, ACC_SPIKES


def test_sweep_rows_budget_and_plot(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from bench import sweep
    from hw.build import SHIPPED_MODELS

    digits = [str(p) for p in SHIPPED_MODELS if "digits" in str(p)]
    # a LUT count that grows with P: P = 64 goes over the 60 % budget
    fake = lambda out, lanes, cfg: {"lut": 1000 * lanes, "ff": 100 * lanes, "bram36": 50, "dsp": 80}  # noqa: E731
    monkeypatch.setattr(sweep, "synth_estimate", fake)
    rows = sweep.sweep([16, 64], digits, images=4, rtl_images=0, synth_root=tmp_path)
    assert [r["lanes"] for r in rows] == [16, 64]
    assert rows[0]["fits"] and not rows[1]["fits"] and rows[1]["over_budget"] == ["lut"]
    assert rows[1]["adds_per_cycle"] == ACC_ROWS * 64 * ACC_SPIKES
    f16, f64 = rows[0]["models"]["digits"], rows[1]["models"]["digits"]
    # four times the lanes: fewer cycles, each still above the engine's ideal
    assert f64["cycles_mean"] < f16["cycles_mean"] and f64["cycles_over_ideal"] > f16["cycles_over_ideal"] > 1
    assert f16["rtl_checked"] == "none"
    sweep.plot(rows, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    json.dumps(rows)  # the table goes into bench.json as it is


def test_sweep_refuses_lane_counts_that_are_not_powers_of_two():
    pytest.importorskip("torch")
    from bench import sweep

    with pytest.raises(SystemExit, match="powers of two"):
        sweep.main(["--lanes", "24", "32"])
