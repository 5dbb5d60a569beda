# amaranth: UnusedElaboratable=no
"""hw/build.py writes Verilog and a config JSON that agrees with the shared modules; hw/synth.py counts."""

import json

import pytest

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from hw import build, synth


def test_build_writes_verilog_and_config(tmp_path):
    # Two components keep this fast; every component's conversion is exercised by its `make sim` test.
    config = build.build(tmp_path, lanes=8, only=("lif", "accumulate"))
    assert sorted(config["components"]) == ["accumulate", "lif"]
    for name in config["components"]:
        text = (tmp_path / f"{name}.v").read_text()
        assert f"module {name}(" in text
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["capacity"] == packing.capacity_for(ModelConfig(), 8).__dict__
    assert saved["formats_id"] == regmap.formats_id()
    assert saved["components"]["accumulate"]["weight_rows"] == saved["capacity"]["weight_rows"]


def test_synth_counts_cells_by_resource():
    got = synth.count({"LUT6": 10, "LUT2": 3, "RAM64M": 2, "FDRE": 7, "FDSE": 1, "DSP48E1": 2,
                       "RAMB36E1": 3, "RAMB18E1": 1, "CARRY4": 5, "BUFG": 1})
    assert got == {"lut": 21, "ff": 8, "dsp": 2, "bram36": 3.5, "carry": 5}


def test_synth_lists_memories_and_checks_the_energy_models_ports():
    from dynaspike.energy import MEMORIES

    def ram(t, widths=None):
        return {"type": t, "parameters": {k: format(v, "032b") for k, v in (widths or {}).items()}}
    # a mapped netlist of the shipped core's memories as energy.MEMORIES has them (yosys names a memory's
    # primitives <memory>.<i>[.<j>])
    cells = {"lut0": {"type": "LUT6", "parameters": {}}}
    for mem, n, port in MEMORIES.values():
        for i in range(n or 3):
            cells[f"{mem}.{i}.0"] = ram("RAMB18E1", {"READ_WIDTH_A": 0, "READ_WIDTH_B": port}) if n else ram("RAM32M")
    got = synth.memories({"cells": cells})
    assert got["acc.wmem"] == {"cell": "RAMB18E1", "count": 57, "port_bits": 9}
    assert got["acc.bmem"] == {"cell": "RAM32M", "count": 3, "port_bits": 0}
    assert synth.check_energy_memories(got) == []
    got["lif.mem"]["count"] = 40                 # synthesis mapped the membranes differently
    del got["seq.thm"]
    bad = synth.check_energy_memories(got)
    assert len(bad) == 2 and "threshold_rows" in bad[0] and "no such memory" in bad[0]
    assert "membrane_rows" in bad[1] and "40 RAMB18E1 of 18 bits" in bad[1]


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_every_component_is_listed_with_valid_parameters():
    comps = build.components(64, ModelConfig())
    assert set(comps) == {"dynaspike_core", "lif", "lif_layer", "accumulate", "attention", "halt", "merge", "axil",
                          "stream_in", "embed", "head", "events", "axi_reader",
                          "axi_writer", "shared_reader", "tile_loader", "tile_pass", "lif_layer_staging", "state_mover"}
    assert comps["lif_layer"][1]["rows"] == 16 * (2 * (6 + 4) + 1)  # digits at P = 64: 336 rows
    for name, (cls, params) in comps.items():
        cls(**params)  # constructs (validates its parameters) without elaborating
