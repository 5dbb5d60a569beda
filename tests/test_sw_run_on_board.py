"""sw/run_on_board.py: the golden target end to end (table, JSON keys, exit status), the default target,
and the board path's data file (the golden reference computed on a host, read without torch)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "sw" / "run_on_board.py"
KEYS = ("target", "images", "accuracy", "golden_agreement", "cycles_measured_mean", "cycles_estimated_mean",
        "latency_us_measured_mean", "latency_us_estimated_mean", "energy_uj_estimated_mean",
        "energy_uj_fpga_estimated_mean", "energy_uj_fpga_measured_mean")


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--threads", "1"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_golden_target_prints_the_table_and_writes_the_json(tmp_path):
    out = tmp_path / "r.json"
    p = run("--target", "golden", "--images", "30", "--power-w", "2.5", "--json", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "target: golden"
    assert "golden agreement 100.00 % (bit-exact logits 100.00 %)" in p.stdout
    r = json.loads(out.read_text())
    assert all(k in r for k in KEYS)
    assert r["target"] == "golden" and r["images"] == 30 and len(r["per_image"]) == 30
    assert r["golden_agreement"] == 1.0 and r["power_w"] == 2.5 and r["idle_power_w"] is None
    labels_ok = [p["pred"] == p["label"] for p in r["per_image"]]
    assert r["accuracy"] == sum(labels_ok) / 30
    assert 0.3 < r["energy_uj_estimated_mean"] < 0.6          # the shipped model: 0.42 uJ per image (README)
    assert 0 < r["token_fraction_mean"] < 1 and r["timesteps_per_module_mean"] == 2.0
    if r["cycles_estimated_mean"] is not None:               # once train/cycle_model.py exists
        assert r["cycles_measured_mean"] == r["cycles_estimated_mean"]
    # the FPGA activity model from each image's counters (about 27 uJ per digits image, docs/hardware.md)
    assert 5 < r["energy_uj_fpga_estimated_mean"] < 60
    assert 0 < r["energy_uj_fpga_estimated_above_idle_mean"] < r["energy_uj_fpga_estimated_mean"]
    assert sum(r["energy_uj_fpga_estimated_parts_mean"].values()) == pytest.approx(r["energy_uj_fpga_estimated_mean"])
    assert "documented defaults" in r["energy_coefficients_source"]
    # without --repeat-seconds the meter reading spans this run's wall clock; without --idle-power-w only the
    # whole board's energy per image is measured
    assert not r["meter_repeat"] and r["meter_images"] == 30
    assert r["energy_uj_board_measured_mean"] == pytest.approx(2.5 * r["meter_seconds"] / 30 * 1e6)
    assert r["energy_uj_fpga_measured_mean"] is None and r["energy_fpga_measured_over_estimated"] is None
    assert "energy per image, estimated: 45 nm op model" in p.stdout and "FPGA activity model" in p.stdout


def test_repeat_seconds_and_idle_power_give_the_measured_energy_per_image(tmp_path):
    out = tmp_path / "r.json"
    p = run("--target", "golden", "--images", "20", "--power-w", "2.5", "--idle-power-w", "2.0",
            "--repeat-seconds", "1", "--json", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["meter_repeat"] and r["meter_images"] % 20 == 0 and r["meter_images"] >= 20 and r["meter_seconds"] >= 1
    per_image_s = r["meter_seconds"] / r["meter_images"]
    assert r["meter_images_per_s"] == pytest.approx(1 / per_image_s)
    assert r["energy_uj_fpga_measured_mean"] == pytest.approx(0.5 * per_image_s * 1e6)
    assert r["energy_uj_board_measured_mean"] == pytest.approx(2.5 * per_image_s * 1e6)
    assert r["energy_fpga_measured_over_estimated"] == pytest.approx(
        r["energy_uj_fpga_measured_mean"] / r["energy_uj_fpga_estimated_above_idle_mean"])
    assert "read the meter now" in p.stdout and "(--repeat-seconds)" in p.stdout


def test_meter_options_are_checked(tmp_path):
    p = run("--target", "sim", "--repeat-seconds", "5", cwd=tmp_path)
    assert p.returncode != 0 and "--repeat-seconds needs" in p.stderr
    p = run("--target", "golden", "--idle-power-w", "2", cwd=tmp_path)
    assert p.returncode != 0 and "--idle-power-w needs --power-w" in p.stderr


def test_default_target_is_the_board_only_where_pynq_imports(monkeypatch):
    sys.path.insert(0, str(ROOT / "sw"))
    try:
        import run_on_board
    finally:
        sys.path.pop(0)
    real = run_on_board.importlib.util.find_spec
    monkeypatch.setattr(run_on_board.importlib.util, "find_spec", lambda n: None if n == "pynq" else real(n))
    target, line = run_on_board.default_target()
    assert target == "sim" and line.startswith("target: simulated board") and "pynq" in line
    monkeypatch.setattr(run_on_board.importlib.util, "find_spec", lambda n: object())
    assert run_on_board.default_target()[0] == "board"


def test_saved_data_gives_the_same_figures(tmp_path):
    data, a, b = tmp_path / "d.npz", tmp_path / "a.json", tmp_path / "b.json"
    assert run("--images", "12", "--save-data", str(data)).returncode == 0
    z = np.load(data)
    assert z["images"].shape == (12, 1, 8, 8) and z["labels"].shape == (12,) and z["logits"].shape == (12, 10)
    assert run("--target", "golden", "--images", "12", "--json", str(a)).returncode == 0
    assert run("--target", "golden", "--data", str(data), "--json", str(b)).returncode == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    strip = lambda r: {k: v for k, v in r.items() if k not in ("session_s", "wall_ms_mean", "per_image",  # noqa: E731
                                                               "throughput_images_per_s_wall", "meter_seconds",
                                                               "meter_images_per_s")}
    assert strip(ra) == strip(rb)


def test_a_data_file_says_which_memory_its_estimates_assume(tmp_path):
    """--save-data records the memory of its cycle estimates (on chip, or the weights in DDR at the target's
    read latency); a run that needs other estimates stops with a clear error instead of comparing unlike."""
    data, out = tmp_path / "d.npz", tmp_path / "r.json"
    assert run("--target", "golden", "--images", "3", "--weights-in-ddr", "--save-data", str(data)).returncode == 0
    from dynaspike import ddr
    assert int(np.load(data)["estimate_read_latency"]) == ddr.SIM_RAM_LATENCY
    p = run("--target", "golden", "--data", str(data))
    assert p.returncode != 0 and "weights in DDR at 2 cycles" in p.stderr and "weights on chip" in p.stderr, p.stderr
    p = run("--target", "golden", "--data", str(data), "--weights-in-ddr", "--json", str(out))
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["golden_agreement"] == 1.0 and r["cycles_measured_mean"] == r["cycles_estimated_mean"], r
