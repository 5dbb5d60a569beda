"""bitstreams/build.tcl through tclsh with every Vivado command stubbed and recorded (tests/vivado_stub.tcl):
it parses and runs to the end, and the recorded block design is the one sw/transports/board.py opens and the
README states (cells, IP versions, DMA length register and stream widths, HP0/GP0, FCLK0 100 MHz, 4 KiB)."""

import pytest

from bitstreams.wrapper import WRAPPER_MODULE
from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from sw.transports.board import CORE_CELL, DMA_CELL
from tcl_stub import design, run_build_tcl

CLOCK_MHZ = packing.capacity_for(ModelConfig(), DEFAULT_LANES).clock_hz // 1_000_000   # what the manifest says
PS7_VLNV, DMA_VLNV = "xilinx.com:ip:processing_system7:5.5", "xilinx.com:ip:axi_dma:7.1"
AXI4_OPTIONS = {"Clk_master", "Clk_slave", "Clk_xbar", "Master", "Slave", "intc_ip", "master_apm", "ddr_seg"}


def eq(what, seen, expected):
    assert seen == expected, f"{what}: seen {seen!r}, expected {expected!r}"


@pytest.fixture(scope="module", params=["", "tul.com.tw:pynq-z2:part0:1.0"], ids=["hand preset", "board files"])
def recorded(request, tmp_path_factory):
    p, calls = run_build_tcl(tmp_path_factory.mktemp("tcl"), STUB_BOARD_PART=request.param)
    assert p.returncode == 0, f"build.tcl under tclsh: exit {p.returncode}\n{p.stderr}"
    assert calls and calls[-1] == ["END"], f"build.tcl stopped early; last call {calls[-1] if calls else None}"
    return request.param, calls, design(calls), p.stdout


def test_cells_are_the_ones_the_transport_opens(recorded):
    _, _, d, _ = recorded
    eq("cells", d["cells"], {"ps7": PS7_VLNV, DMA_CELL: DMA_VLNV, CORE_CELL: f"module_ref:{WRAPPER_MODULE}"})


def test_dma_is_simple_mode_with_26_bit_lengths_and_64_bit_streams(recorded):
    _, _, d, _ = recorded
    c = d["config"][DMA_CELL]
    eq("c_include_sg", c.get("c_include_sg"), "0")
    eq("c_sg_length_width", c.get("c_sg_length_width"), "26")
    for k in ("c_m_axi_mm2s_data_width", "c_m_axis_mm2s_tdata_width", "c_m_axi_s2mm_data_width",
              "c_s_axis_s2mm_tdata_width"):
        eq(k, c.get(k), str(packing.BEAT_BITS))


def test_ps7_clock_and_ports(recorded):
    board, _, d, _ = recorded
    c = d["config"]["ps7"]
    eq("FCLK0 MHz", c.get("PCW_FPGA0_PERIPHERAL_FREQMHZ"), str(CLOCK_MHZ))
    eq("GP0 master", c.get("PCW_USE_M_AXI_GP0"), "1")
    eq("HP0 slave", c.get("PCW_USE_S_AXI_HP0"), "1")
    eq("HP0 width", c.get("PCW_S_AXI_HP0_DATA_WIDTH"), str(packing.BEAT_BITS))
    eq("HP1 slave", c.get("PCW_USE_S_AXI_HP1"), "1")
    eq("HP1 width", c.get("PCW_S_AXI_HP1_DATA_WIDTH"), str(packing.BEAT_BITS))
    ps_rule = [a for a in d["automations"] if a["rule"].endswith("processing_system7")]
    eq("board preset", [a["config"]["apply_board_preset"] for a in ps_rule], ["1" if board else "0"])
    if not board:
        eq("DDR part by hand", c.get("PCW_UIPARAM_DDR_PARTNO"), "MT41K256M16 RE-125")


def test_gp0_reaches_both_register_windows_hp0_carries_the_dma_and_hp1_the_cores_tiles(recorded):
    _, _, d, _ = recorded
    axi = [a for a in d["automations"] if a["rule"] == "xilinx.com:bd_rule:axi4"]
    for a in axi:
        assert set(a["config"]) <= AXI4_OPTIONS, f"axi4 automation on {a['on']}: unknown options " \
                                                 f"{sorted(set(a['config']) - AXI4_OPTIONS)}"
        for k in ("Clk_master", "Clk_slave", "Clk_xbar"):
            eq(f"{a['on']} {k}", a["config"][k], f"/ps7/FCLK_CLK0 ({CLOCK_MHZ} MHz)")
    links = sorted((a["config"]["Master"], a["config"]["Slave"]) for a in axi)
    eq("axi4 links", links, sorted([("/ps7/M_AXI_GP0", f"/{DMA_CELL}/S_AXI_LITE"),
                                    ("/ps7/M_AXI_GP0", f"/{CORE_CELL}/s_axil"),
                                    (f"/{DMA_CELL}/M_AXI_MM2S", "/ps7/S_AXI_HP0"),
                                    (f"/{DMA_CELL}/M_AXI_S2MM", "/ps7/S_AXI_HP0"),
                                    (f"/{CORE_CELL}/m_axi", "/ps7/S_AXI_HP1")]))


def test_streams_clock_reset_and_window(recorded):
    _, _, d, _ = recorded
    eq("streams", d["streams"], [(f"{DMA_CELL}/M_AXIS_MM2S", f"{CORE_CELL}/s_axis"),
                                 (f"{CORE_CELL}/m_axis", f"{DMA_CELL}/S_AXIS_S2MM")])
    eq("clock/reset nets", d["nets"], [("ps7/FCLK_CLK0", f"{CORE_CELL}/aclk"),
                                       ("proc_sys_reset_0/peripheral_aresetn", f"{CORE_CELL}/aresetn")])
    eq("core window", [r[0] for r in d["ranges"] if CORE_CELL in r[1]], [f"{(1 << regmap.ADDR_BITS) // 1024}K"])
    eq("outputs", [c.rsplit("/", 1)[1] for c in d["copies"]], ["dynaspike.bit", "dynaspike.hwh"])


def test_another_vivado_release_is_named_first(tmp_path):
    p, calls = run_build_tcl(tmp_path, STUB_VIVADO_VERSION="2024.2")
    assert p.returncode == 0, p.stderr
    assert "warning: this is Vivado 2024.2; build.tcl was written for 2022.1" in p.stdout, p.stdout


def test_an_unknown_vivado_command_fails_the_check(tmp_path):
    """The stub is not a sink: a command it does not know stops the run (so the check can fail)."""
    import shutil
    src = tmp_path / "src"
    src.mkdir()
    from tcl_stub import BUILD_TCL
    bad = src / "build.tcl"
    bad.write_text(BUILD_TCL.read_text().replace("validate_bd_design", "validate_bd_desing"))
    import tcl_stub
    orig = tcl_stub.BUILD_TCL
    tcl_stub.BUILD_TCL = bad
    try:
        p, calls = run_build_tcl(tmp_path)
    finally:
        tcl_stub.BUILD_TCL = orig
    assert p.returncode == 3 and calls[-1][:2] == ["UNKNOWN", "validate_bd_desing"], (p.returncode, calls[-1:])
    assert shutil.which("tclsh")


def test_power_report_without_saif_uses_vectorless_activity(recorded):
    _, calls, _, _ = recorded
    assert not [c for c in calls if c[0] == "read_saif"], "read_saif without a SAIF argument"
    power = [c for c in calls if c[0] == "report_power"]
    eq("report_power calls", len(power), 1)
    args = power[0][1:]
    assert "-hierarchical_depth" in args and args[-2] == "-file" and args[-1].endswith("/power.rpt"), args


def test_a_saif_is_read_into_the_implemented_design_before_report_power(tmp_path):
    saif = tmp_path / "digits.vivado.saif"
    saif.write_text("(SAIFILE)\n")
    p, calls = run_build_tcl(tmp_path, extra=[saif])
    assert p.returncode == 0, p.stderr
    names = [c[0] for c in calls]
    read = [c for c in calls if c[0] == "read_saif"]
    eq("read_saif calls", read, [["read_saif", "-strip_path", "sim", str(saif)]])
    assert names.index("open_run") < names.index("read_saif") < names.index("report_power"), names
    eq("power_saif.txt", (tmp_path / "out" / "power_saif.txt").read_text().strip(), str(saif.resolve()))


def test_a_missing_saif_stops_the_run_before_vivado_starts(tmp_path):
    p, calls = run_build_tcl(tmp_path, extra=[tmp_path / "none.saif"])
    assert p.returncode == 2 and "none.saif not found" in p.stdout, (p.returncode, p.stdout)
    assert "create_project" not in [c[0] for c in calls]
