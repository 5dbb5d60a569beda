"""bitstreams/manifest.py's power: report_power text (a sample in Vivado 2022.1's layout) parsed into the
summary, the on-chip components and the hierarchy; manifest["power"] records the make power run it used."""

import json

import pytest

from bitstreams import manifest

REPORT = """Copyright 1986-2022 Xilinx, Inc. All Rights Reserved.
----------------------------------------------------------------------------------------------------------
| Tool Version     : Vivado v.2022.1 (lin64) Build 3526262 Mon Apr 18 15:47:01 MDT 2022
| Design           : system_wrapper
| Device           : xc7z020clg400-1
| Design State     : routed
----------------------------------------------------------------------------------------------------------

Power Report

1. Summary
----------

+--------------------------+----------------------------------+
| Total On-Chip Power (W)  | 1.768                            |
| Design Power Budget (W)  | Unspecified*                     |
| Dynamic (W)              | 1.628                            |
| Device Static (W)        | 0.140                            |
| Junction Temperature (C) | 45.4                             |
| Confidence Level         | Medium                           |
| Setting File             | ---                              |
| Simulation Activity File | /w/build/power/digits.vivado.saif |
| Design Nets Matched      | 71%   (35012/49311)              |
+--------------------------+----------------------------------+


1.1 On-Chip Components
----------------------

+--------------------------+-----------+----------+-----------+-----------------+
| On-Chip                  | Power (W) | Used     | Available | Utilization (%) |
+--------------------------+-----------+----------+-----------+-----------------+
| Clocks                   |     0.021 |        3 |       --- |             --- |
| Slice Logic              |     0.012 |    47510 |       --- |             --- |
|   LUT as Logic           |     0.010 |    30210 |     53200 |           56.79 |
|   CARRY4                 |    <0.001 |      900 |     13300 |            6.77 |
| Signals                  |     0.025 |    45000 |       --- |             --- |
| Block RAM                |     0.018 |      95.5 |       140 |           68.21 |
| DSPs                     |    <0.001 |       40 |       220 |           18.18 |
| PS7                      |     1.530 |        1 |       --- |             --- |
| Static Power             |     0.140 |          |           |                 |
| Total                    |     1.768 |          |           |                 |
+--------------------------+-----------+----------+-----------+-----------------+


3.3 By Hierarchy
----------------

+----------------------------------+-----------+
| Name                             | Power (W) |
+----------------------------------+-----------+
| system_wrapper                   |     1.628 |
|   system_i                       |     1.628 |
|     axi_dma_0                    |     0.012 |
|     dynaspike_core_0             |     0.070 |
|       inst                       |     0.070 |
|         core                     |     0.069 |
|           acc                    |     0.020 |
|     ps7                          |     1.531 |
+----------------------------------+-----------+
"""


def test_parse_power_sample():
    p = manifest.parse_power(REPORT)
    assert (p["total_w"], p["dynamic_w"], p["static_w"]) == (1.768, 1.628, 0.140)
    assert p["confidence"] == "Medium" and p["nets_matched"].startswith("71%")
    assert p["activity_file"] == "/w/build/power/digits.vivado.saif"
    assert p["components"] == {"Clocks": 0.021, "Slice Logic": 0.012, "Signals": 0.025, "Block RAM": 0.018,
                               "DSPs": 0.0005, "PS7": 1.530}
    assert p["pl_dynamic_w"] == pytest.approx(0.021 + 0.012 + 0.025 + 0.018 + 0.0005)
    h = p["hierarchy"]
    assert h["system_wrapper"] == 1.628 and h["system_wrapper/system_i/axi_dma_0"] == 0.012
    assert h["system_wrapper/system_i/dynaspike_core_0/inst/core/acc"] == 0.020
    assert h["system_wrapper/system_i/ps7"] == 1.531
    assert p["core_w"] == 0.070


def test_parse_power_of_other_text_is_empty():
    assert manifest.parse_power("no tables here") == {}


def test_power_record_names_the_simulated_activity(tmp_path):
    assert manifest.power_record(tmp_path) is None
    (tmp_path / "power.rpt").write_text(REPORT)
    r = manifest.power_record(tmp_path)
    assert r["static_w"] == 0.140 and r["activity"]["saif"] is None and not r["estimate"]
    power = tmp_path / "power"
    power.mkdir()
    saif = power / "digits.vivado.saif"
    saif.write_text("(SAIFILE)")
    (power / "digits.json").write_text(json.dumps({"model": "train/shipped/digits.npz", "dataset": "digits",
                                                   "images": 10, "dense": False, "cycles_saif": 150000,
                                                   "cycles_active": 131750, "duration_s": 0.0015}))
    (tmp_path / "power_saif.txt").write_text(str(saif) + "\n")
    a = manifest.power_record(tmp_path)["activity"]
    assert (a["saif"], a["model"], a["images"], a["dataset"], a["cycles_active"]) == (
        str(saif), "train/shipped/digits.npz", 10, "digits", 131750)


def test_the_report_uses_coefficients_fitted_to_a_manifests_power_report(tmp_path):
    from dynaspike import energy
    from dynaspike.config import ModelConfig
    from sw.report import coefficients_for

    c = {"CYCLES": 13000, "AC_QKV": 3 * 64 * 100, "AC_KV": 5000, "AC_Y": 4000, "AC_PROJ": 64 * 50,
         "AC_FC1": 256 * 100, "AC_FC2": 64 * 300, "AC_READOUT": 1000, "SKIPPED_MODULE_STEPS": 8,
         "PROCESSED_UNITS": 60, "MERGED_TOKENS": 2, "HALTED_TOKENS": 5, "IN_WAIT_CYCLES": 0, "OUT_WAIT_CYCLES": 0, "EMB_PIXELS": 120, "DDR_READ_BEATS": 0}
    ev = energy.total_events([c] * 10, ModelConfig(), 32)
    (tmp_path / "power.rpt").write_text(REPORT)
    (tmp_path / "digits.vivado.saif").write_text("(SAIFILE)")
    (tmp_path / "digits.json").write_text(json.dumps({"model": "m.npz", "dataset": "digits", "images": 10,
                                                      "events": ev, "duration_s": 150000 / 1e8}))
    (tmp_path / "power_saif.txt").write_text(str(tmp_path / "digits.vivado.saif"))
    m = {"capacity": {"lanes": 32}, "clock_hz": 100_000_000, "utilization": {"ff": 16400},
         "power": manifest.power_record(tmp_path)}
    k, source = coefficients_for(m)
    assert source.startswith("fitted to Vivado's report_power with the SAIF of 10 digits images")
    assert k.static_w == 0.140 and k != energy.Coefficients()
    assert k.clock_fj_per_ff == pytest.approx(0.021 / (1e8 * 16400) * 1e15)
    assert coefficients_for({**m, "power": None})[1].startswith("documented defaults")


def test_the_report_shows_vivados_figure_next_to_the_estimate(tmp_path):
    import types

    import numpy as np

    from dynaspike.config import ModelConfig
    from sw import report

    c = {"CYCLES": 13000, "AC_QKV": 3 * 64 * 100, "AC_KV": 5000, "AC_Y": 4000, "AC_PROJ": 64 * 50,
         "AC_FC1": 256 * 100, "AC_FC2": 64 * 300, "AC_READOUT": 1000, "SKIPPED_MODULE_STEPS": 8,
         "PROCESSED_UNITS": 60, "MERGED_TOKENS": 2, "HALTED_TOKENS": 5, "IN_WAIT_CYCLES": 0, "OUT_WAIT_CYCLES": 0, "EMB_PIXELS": 120, "DDR_READ_BEATS": 0}
    B = 3
    cycles = np.array([13000, 12000, 14000], np.int64)
    logits = np.arange(B * 10).reshape(B, 10)
    res = types.SimpleNamespace(logits=logits, pred=logits.argmax(1), tags=np.arange(B), cycles=cycles,
                                counters={k: np.full(B, v, np.int64) for k, v in c.items() if k != "CYCLES"},
                                wall_s=np.full(B, 1e-3), batched=False)
    ref = {"logits": logits, "energy_uj_45nm": np.full(B, 0.4), "cycles_estimated": cycles}
    (tmp_path / "power.rpt").write_text(REPORT)
    m = {"capacity": {"lanes": 32}, "clock_hz": 100_000_000, "utilization": {"ff": 16400},
         "power": manifest.power_record(tmp_path)}
    r = report.figures("board", res, np.zeros(B), ref, ModelConfig(), 100_000_000, None, lanes=32, manifest=m)
    want = (0.140 + 0.021 + 0.012 + 0.025 + 0.018 + 0.0005) * 130.0          # W x mean latency in us
    assert r["energy_uj_fpga_vivado_mean"] == pytest.approx(want)
    assert r["vivado_power_activity"] == "vectorless" and r["energy_flip_flops"] == 16400
    lines = []
    report.print_table(r, out=lines.append)
    assert any("Vivado report_power" in x and "activity model's" in x for x in lines)
    assert any("energy per image, measured: n/a" in x for x in lines)
