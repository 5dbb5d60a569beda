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
        "latency_us_measured_mean", "latency_us_estimated_mean", "energy_uj_estimated_mean")


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
    assert r["golden_agreement"] == 1.0 and r["power_source"] == "measured: --power-w"
    labels_ok = [p["pred"] == p["label"] for p in r["per_image"]]
    assert r["accuracy"] == sum(labels_ok) / 30
    assert 0.3 < r["energy_uj_estimated_mean"] < 0.6          # the shipped model: 0.42 uJ per image (README)
    assert 0 < r["token_fraction_mean"] < 1 and r["timesteps_per_module_mean"] == 2.0
    if r["cycles_estimated_mean"] is not None:               # once train/cycle_model.py exists
        assert r["cycles_measured_mean"] == r["cycles_estimated_mean"]
        assert r["energy_uj_measured_mean"] == pytest.approx(r["latency_us_measured_mean"] * 2.5)


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
                                                               "throughput_images_per_s_wall")}
    assert strip(ra) == strip(rb)
