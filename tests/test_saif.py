"""sim/saif.py: a small SAIF in Verilator's layout, parsed, summarised by component and re-rooted where the
bitstream's design has the core (what make power writes for Vivado's read_saif)."""

import pytest

from sim import saif

TEXT = r"""(SAIFILE
  (SAIFVERSION "2.0")
  (DIRECTION "backward")
  (DESIGN "top")
  (VENDOR "Verilator")
  (DIVIDER / )
  (TIMESCALE 1ps)
  (DURATION 100000)
  (INSTANCE TOP
    (NET
      (clk (T0 50000) (T1 50000) (TZ 0) (TX 0) (TB 0) (TC 20))
    )
    (INSTANCE top
      (NET
        (clk (T0 50000) (T1 50000) (TZ 0) (TX 0) (TB 0) (TC 20))
        (q\[0\] (T0 60000) (T1 40000) (TZ 0) (TX 0) (TB 0) (TC 10))
        (q\[1\] (T0 90000) (T1 10000) (TZ 0) (TX 0) (TB 0) (TC 5))
      )
      (INSTANCE acc
        (NET
          (s\[0\] (T0 1) (T1 2) (TC 4))
          (s\[1\] (T0 1) (T1 2) (TC 0))
        )
        (INSTANCE inner
          (NET (z (TC 6)))
        )
      )
      (INSTANCE lif
        (NET (m (TC 0)))
      )
    )
  )
)
"""


def test_parse_keeps_the_structure_and_header():
    tree = saif.parse(TEXT)
    assert tree[0] == "SAIFILE"
    h = saif.header(tree)
    assert h["DURATION"] == "100000" and h["TIMESCALE"] == "1ps" and h["VENDOR"] == '"Verilator"'
    assert [p for p, _ in saif.instances(tree)] == ["TOP", "TOP/top", "TOP/top/acc", "TOP/top/acc/inner",
                                                   "TOP/top/lif"]
    assert saif.unescape(r"q\[0\]") == "q[0]"


def test_summary_per_component_by_hand():
    s = saif.summary(saif.parse(TEXT), top="top", clock="clk")
    assert s["instance"] == "TOP/top" and s["cycles"] == 10 and s["duration"] == 100000
    assert s["components"]["(top)"] == {"bits": 3, "toggles": 35, "toggle_rate": 35 / 30}
    assert s["components"]["acc"] == {"bits": 3, "toggles": 10, "toggle_rate": 10 / 30}   # inner included
    assert s["components"]["lif"] == {"bits": 1, "toggles": 0, "toggle_rate": 0.0}
    assert (s["bits"], s["toggles"]) == (7, 45) and s["toggle_rate"] == 45 / 70


def test_reroot_nests_the_core_where_vivado_has_it_and_keeps_its_activity():
    tree = saif.parse(TEXT)
    text = saif.dumps(saif.reroot(tree, "top", ["sim", "system_i", "dynaspike_core_0", "inst", "core"]))
    again = saif.parse(text)
    assert [p for p, _ in saif.instances(again)][:5] == [
        "sim", "sim/system_i", "sim/system_i/dynaspike_core_0", "sim/system_i/dynaspike_core_0/inst",
        "sim/system_i/dynaspike_core_0/inst/core"]
    a, b = saif.summary(tree, top="top"), saif.summary(again, top="core")
    assert a["components"] == b["components"] and a["cycles"] == b["cycles"]
    assert saif.header(again)["DURATION"] == "100000"
    assert r"q\[0\]" in text                      # escapes survive


def test_malformed_text_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="unclosed"):
        saif.parse("(SAIFILE (INSTANCE top")
    with pytest.raises(ValueError, match="unbalanced"):
        saif.parse("(SAIFILE))")
    with pytest.raises(KeyError, match="no instance 'core'"):
        saif.find(saif.parse(TEXT), "core")


def test_a_saif_run_gets_its_own_build_directory(monkeypatch):
    from sim import runner

    monkeypatch.delenv("WAVES", raising=False)
    monkeypatch.delenv(runner.SAIF_ENV, raising=False)
    plain = runner.build_dir_for("core", {"lanes": 32})
    monkeypatch.setenv(runner.SAIF_ENV, "/tmp/x.saif")
    traced = runner.build_dir_for("core", {"lanes": 32})
    assert traced.name == plain.name + "-saif"
