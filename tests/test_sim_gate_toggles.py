"""sim/gate_toggles.py: a small mapped netlist evaluated from recorded values, its toggles counted and its
flip-flops checked against the recording (the yosys mapping itself runs in bench.gate_toggles)."""

import numpy as np
import pytest

from sim import gate_toggles as gt


def netlist():
    """q <= a[0] ^ a[1] (a LUT2), s = q + a (a CARRY4: propagate q ^ a[0] from a LUT2, then a[1]), in yosys's
    write_json form."""
    lut2 = {"I0": "input", "I1": "input", "O": "output"}
    lut = {"type": "LUT2", "parameters": {"INIT": "0110"}, "port_directions": lut2,
           "connections": {"I0": [2], "I1": [3], "O": [10]}}
    ff = {"type": "FDRE", "parameters": {"INIT": "0"},
          "port_directions": {"C": "input", "CE": "input", "D": "input", "R": "input", "Q": "output"},
          "connections": {"C": [4], "CE": ["1"], "D": [10], "R": ["0"], "Q": [11]}}
    carry = {"type": "CARRY4", "parameters": {},
             "port_directions": {"CI": "input", "CYINIT": "input", "DI": "input", "S": "input", "O": "output",
                                 "CO": "output"},
             "connections": {"CI": ["0"], "CYINIT": ["0"], "DI": [11, "0", "0", "0"], "S": [12, 3, "0", "0"],
                             "O": [13, 14, 15, 16], "CO": [17, 18, 19, 20]}}
    s0 = {"type": "LUT2", "parameters": {"INIT": "0110"}, "port_directions": lut2,
          "connections": {"I0": [11], "I1": [2], "O": [12]}}
    return {"ports": {"a": {"direction": "input", "bits": [2, 3]}, "clk": {"direction": "input", "bits": [4]}},
            "cells": {"lut": lut, "ff": ff, "carry": carry, "s0": s0},
            "netnames": {"a": {"bits": [2, 3]}, "clk": {"bits": [4]}, "x": {"bits": [10]}, "q": {"bits": [11]},
                         "_5_": {"bits": [11]}, "s": {"bits": [13, 14]}}}


def test_sources_name_flip_flops_by_their_rtl_signal():
    src = gt.sources(netlist())
    assert src[11] == ("q", 0, "ff") and src[2] == ("a", 0, "in") and src[4] == ("clk", 0, "in")
    assert gt.signals(netlist()) == ["a", "q"]


def test_evaluation_counts_toggles_and_checks_every_flip_flop():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 200)
    x = (a & 1) ^ (a >> 1)
    q = np.concatenate([[0], x[:-1]])                  # the register: last cycle's x
    rec = {"a": a.astype(np.uint8)[:, None], "q": q.astype(np.uint8)[:, None]}
    r = gt.evaluate(netlist(), rec)
    s = q + a                                          # the carry chain's two sum bits
    flips = lambda v: int(np.count_nonzero(v[1:] != v[:-1]))  # noqa: E731
    assert r["ff_mismatches"] == 0 and r["flip_flops"] == 1 and r["cycles"] == 200
    assert r["by_driver"]["LUT2"] == flips(x) + flips(q ^ (a & 1))
    assert r["by_driver"]["FF"] == flips(q)
    # O[0..2] are the sum's bits (O[2] the carry out of bit 1), O[3] stays 0
    assert r["by_driver"]["CARRY4.O"] == sum(flips((s >> i) & 1) for i in range(3)) and r["nets"]["CARRY4.O"] == 4
    rec["q"] = rec["q"].copy()
    rec["q"][50, 0] ^= 1                               # a recording the netlist cannot have produced
    assert gt.evaluate(netlist(), rec)["ff_mismatches"] == 1


def test_unknown_cells_and_loops_are_named():
    nl = netlist()
    nl["cells"]["ram"] = {"type": "RAMB18E1", "parameters": {}, "port_directions": {}, "connections": {}}
    rec = {"a": np.zeros((4, 1), np.uint8), "q": np.zeros((4, 1), np.uint8)}
    with pytest.raises(ValueError, match="RAMB18E1"):
        gt.evaluate(nl, rec)
    nl = netlist()
    nl["cells"]["lut"]["connections"]["I1"] = [10]     # x depends on itself
    with pytest.raises(ValueError, match="loop"):
        gt.evaluate(nl, rec)
