# The PYNQ-Z2 bitstream of the core: Vivado block design, synthesis, implementation, reports.
#
#   vivado -mode batch -source bitstreams/build.tcl -tclargs <verilog dir> <out dir> <name> [<saif>]
#
# (`make bitstream` runs it after `python -m hw.build` and `python -m bitstreams.wrapper`, then writes
# manifest.json with `python -m bitstreams.manifest`.) Inputs in <verilog dir>: dynaspike_core.v (the core,
# Amaranth's Verilog) and dynaspike_core_axi.v (the wrapper with Vivado interface attributes). Outputs in
# <out dir>: <name>.bit and <name>.hwh (pynq.Overlay loads the pair), utilization.rpt, timing.rpt,
# power.rpt, vivado_version.txt, and the project under <out dir>/vivado.
# Power: with <saif> (`make power` writes build/power/<data set>.vivado.saif, the core's switching activity
# in simulation rooted at sim/system_i/dynaspike_core_0/inst/core), report_power uses that activity for
# the core (read_saif -strip_path sim) and power_saif.txt names the file; without it, Vivado's default
# (vectorless) activity. power.rpt carries the hierarchy down to the core's components.
#
# Block design (what sw/transports/board.py expects):
#   ps7              Zynq-7000 PS, xc7z020clg400-1 (PYNQ-Z2); FCLK_CLK0 = 100 MHz; M_AXI_GP0; S_AXI_HP0 and
#                    S_AXI_HP1 64-bit
#   axi_dma_0        AXI DMA, simple mode (no scatter-gather), buffer length register 26 bits (64 MiB
#                    transfers), 64-bit memory-mapped and stream data; MM2S -> core, core -> S2MM; its
#                    memory side on HP0, its registers on GP0
#   dynaspike_core_0 the core (module reference dynaspike_core_axi): s_axil on GP0 (4 KiB window),
#                    s_axis from the DMA's MM2S, m_axis to the DMA's S2MM, m_axi (read only: the weight
#                    tiles of a model in DDR) on HP1, a port of its own (the traffic model's one port)
#   clock FCLK_CLK0 everywhere, reset from proc_sys_reset (peripheral_aresetn)

# Written for Vivado 2022.1 (the release PYNQ v3.0's overlays are built with); the IP it asks for is
# processing_system7 5.5 and axi_dma 7.1, the versions Vivado 2019.1 through 2024.x ship. Another release
# may rename IP versions or automation options: the run says so first. Checked without Vivado by
# tests/test_build_tcl.py (tclsh with every Vivado command stubbed and recorded).
set written_for 2022.1
set ps7_vlnv xilinx.com:ip:processing_system7:5.5
set dma_vlnv xilinx.com:ip:axi_dma:7.1

if {[llength $argv] < 3 || [llength $argv] > 4} {
    puts "usage: vivado -mode batch -source build.tcl -tclargs <verilog dir> <out dir> <name> \[<saif>\]"
    exit 2
}
lassign $argv vdir out name saif
if {$saif ne "" && ![file exists $saif]} { puts "error: $saif not found (make power writes it)"; exit 2 }
set part xc7z020clg400-1
file mkdir $out
set fh [open [file join $out vivado_version.txt] w]; puts $fh [version -short]; close $fh
if {![string match "$written_for*" [version -short]]} {
    puts "warning: this is Vivado [version -short]; build.tcl was written for $written_for ($ps7_vlnv, $dma_vlnv)"
}

create_project -force $name [file join $out vivado] -part $part
# The PYNQ-Z2 board files (tul.com.tw:pynq-z2) give the DDR and MIO preset; without them the same preset
# is set by hand below.
set board [lindex [get_board_parts -quiet -latest_file_version *pynq-z2*] 0]
if {$board ne ""} { set_property board_part $board [current_project] }

foreach f {dynaspike_core.v dynaspike_core_axi.v} {
    set p [file join $vdir $f]
    if {![file exists $p]} { puts "error: $p not found (run python -m hw.build and python -m bitstreams.wrapper)"; exit 2 }
    add_files -norecurse $p
}
update_compile_order -fileset sources_1

create_bd_design system
set ps [create_bd_cell -type ip -vlnv $ps7_vlnv ps7]
if {$board ne ""} {
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
} else {
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "0" Master "Disable" Slave "Disable"} $ps
    # PYNQ-Z2: 50 MHz PS clock, 512 MiB DDR3 (MT41K256M16 RE-125, 16-bit x 2), UART0 on MIO 14..15
    set_property -dict [list \
        CONFIG.PCW_CRYSTAL_PERIPHERAL_FREQMHZ {50} \
        CONFIG.PCW_UIPARAM_DDR_PARTNO {MT41K256M16 RE-125} \
        CONFIG.PCW_UIPARAM_DDR_BUS_WIDTH {32 Bit} \
        CONFIG.PCW_UART0_PERIPHERAL_ENABLE {1} CONFIG.PCW_UART0_UART0_IO {MIO 14 .. 15} \
        CONFIG.PCW_SD0_PERIPHERAL_ENABLE {1} CONFIG.PCW_ENET0_PERIPHERAL_ENABLE {1} \
        CONFIG.PCW_ENET0_ENET0_IO {MIO 16 .. 27} CONFIG.PCW_ENET0_GRP_MDIO_ENABLE {1} \
        CONFIG.PCW_USB0_PERIPHERAL_ENABLE {1} \
    ] $ps
}
set_property -dict [list \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100} \
    CONFIG.PCW_USE_M_AXI_GP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP0 {1} CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
    CONFIG.PCW_USE_S_AXI_HP1 {1} CONFIG.PCW_S_AXI_HP1_DATA_WIDTH {64} \
] $ps

set dma [create_bd_cell -type ip -vlnv $dma_vlnv axi_dma_0]
set_property -dict [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_length_width {26} \
    CONFIG.c_m_axi_mm2s_data_width {64} CONFIG.c_m_axis_mm2s_tdata_width {64} \
    CONFIG.c_m_axi_s2mm_data_width {64} CONFIG.c_s_axis_s2mm_tdata_width {64} \
    CONFIG.c_mm2s_burst_size {16} CONFIG.c_s2mm_burst_size {16} \
] $dma

set core [create_bd_cell -type module -reference dynaspike_core_axi dynaspike_core_0]

# Control: GP0 -> interconnect -> DMA registers and the core's AXI4-Lite (clocks and resets come along).
# The axi4 rule's options as Vivado 2018.3 and later name them (Clk_master/Clk_slave/Clk_xbar, intc_ip).
set fclk "/ps7/FCLK_CLK0 (100 MHz)"
foreach slave {axi_dma_0/S_AXI_LITE dynaspike_core_0/s_axil} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master $fclk Clk_slave $fclk \
        Clk_xbar $fclk Master /ps7/M_AXI_GP0 Slave /$slave intc_ip {New AXI Interconnect} master_apm 0] \
        [get_bd_intf_pins $slave]
}
# Data: the DMA's memory masters -> HP0 (64-bit), through one AXI SmartConnect or interconnect.
foreach master {axi_dma_0/M_AXI_MM2S axi_dma_0/M_AXI_S2MM} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master $fclk Clk_slave $fclk \
        Clk_xbar $fclk Master /$master Slave /ps7/S_AXI_HP0 intc_ip Auto master_apm 0] \
        [get_bd_intf_pins ps7/S_AXI_HP0]
}
# The core's weight tiles: its read master -> HP1 (64-bit; AXI4 bursts of at most 16 beats, so the
# interconnect's conversion to the port's AXI3 splits nothing).
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master $fclk Clk_slave $fclk \
    Clk_xbar $fclk Master /dynaspike_core_0/m_axi Slave /ps7/S_AXI_HP1 intc_ip Auto master_apm 0] \
    [get_bd_intf_pins ps7/S_AXI_HP1]
# Streams: DMA MM2S -> core -> DMA S2MM.
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins dynaspike_core_0/s_axis]
connect_bd_intf_net [get_bd_intf_pins dynaspike_core_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]
# The core's clock and reset: the ones the GP0 automation made for its AXI4-Lite port.
if {[llength [get_bd_nets -quiet -of_objects [get_bd_pins dynaspike_core_0/aclk]]] == 0} {
    connect_bd_net [get_bd_pins ps7/FCLK_CLK0] [get_bd_pins dynaspike_core_0/aclk]
}
if {[llength [get_bd_nets -quiet -of_objects [get_bd_pins dynaspike_core_0/aresetn]]] == 0} {
    connect_bd_net [get_bd_pins [lindex [get_bd_cells -filter {VLNV =~ *proc_sys_reset*}] 0]/peripheral_aresetn] \
        [get_bd_pins dynaspike_core_0/aresetn]
}

assign_bd_address
set seg [get_bd_addr_segs -of_objects [get_bd_addr_spaces ps7/Data] -filter {NAME =~ *dynaspike_core_0*}]
set_property range 4K $seg
validate_bd_design
save_bd_design

set bd [get_files system.bd]
add_files -norecurse [make_wrapper -files $bd -top]   ;# make_wrapper returns the wrapper's file name
set_property top system_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs 2
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    puts "error: implementation did not finish; see [get_property DIRECTORY [get_runs impl_1]]"
    exit 1
}
open_run impl_1
report_utilization -file [file join $out utilization.rpt]
report_timing_summary -file [file join $out timing.rpt]
if {$saif ne ""} {
    read_saif -strip_path sim $saif
    set fh [open [file join $out power_saif.txt] w]; puts $fh [file normalize $saif]; close $fh
}
report_power -hierarchical_depth 6 -file [file join $out power.rpt]

file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] system_wrapper.bit] [file join $out $name.bit]
set hwh [lindex [get_files -of_objects $bd -filter {FILE_TYPE == "Hardware Handoff"}] 0]
if {$hwh eq ""} { set hwh [lindex [glob -nocomplain [file join [get_property DIRECTORY [current_project]] * sources_1 bd system hw_handoff system.hwh]] 0] }
file copy -force $hwh [file join $out $name.hwh]
puts "wrote [file join $out $name.bit] and [file join $out $name.hwh]"
