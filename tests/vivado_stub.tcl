# Vivado's Tcl commands, stubbed for tclsh: each call is recorded (one line: the command and its arguments,
# tab-separated, with \ tab and newline escaped) to $::env(STUB_LOG), and answers what build.tcl needs to go
# on. Any other unknown command fails the run (exit 3), so a new Vivado command in build.tcl must be added
# here knowingly. Used by tests/tcl_stub.py:
#   tclsh tests/vivado_stub.tcl bitstreams/build.tcl <verilog dir> <out dir> <name>
set _log [open $::env(STUB_LOG) w]
proc _rec {args} {
    set parts {}
    foreach a $args { lappend parts [string map [list \\ \\\\ \t \\t \n \\n] $a] }
    puts $::_log [join $parts \t]
    flush $::_log
}
proc _last {lst} { return [lindex $lst end] }

set _vivado_version [expr {[info exists ::env(STUB_VIVADO_VERSION)] ? $::env(STUB_VIVADO_VERSION) : "2022.1"}]
set _board_part [expr {[info exists ::env(STUB_BOARD_PART)] ? $::env(STUB_BOARD_PART) : ""}]

proc version {args} { _rec version {*}$args; return $::_vivado_version }
proc get_board_parts {args} { _rec get_board_parts {*}$args; return $::_board_part }
# Property lists and automation options are logged split into words by Tcl itself:
#   set_property -dict k v ... -- OBJECT        apply_bd_automation RULE k v ... -- OBJECT
proc set_property {args} {
    if {[lindex $args 0] eq "-dict"} { _rec set_property -dict {*}[lindex $args 1] -- [lindex $args end]; return }
    _rec set_property {*}$args
}
proc apply_bd_automation {args} {
    array set o [lrange $args 0 end-1]
    _rec apply_bd_automation $o(-rule) {*}$o(-config) -- [lindex $args end]
}
foreach cmd {create_project add_files update_compile_order create_bd_design
             connect_bd_intf_net connect_bd_net assign_bd_address validate_bd_design save_bd_design
             launch_runs wait_on_run open_run report_utilization report_timing_summary report_power
             read_saif} {
    proc $cmd {args} "_rec $cmd {*}\$args; return {}"
}
proc create_bd_cell {args} { _rec create_bd_cell {*}$args; return /[_last $args] }
proc get_bd_intf_pins {args} { _rec get_bd_intf_pins {*}$args; return /[_last $args] }
proc get_bd_pins {args} { _rec get_bd_pins {*}$args; return /[_last $args] }
proc get_bd_nets {args} { _rec get_bd_nets {*}$args; return {} }
proc get_bd_cells {args} { _rec get_bd_cells {*}$args; return proc_sys_reset_0 }
proc get_bd_addr_spaces {args} { _rec get_bd_addr_spaces {*}$args; return /[_last $args] }
proc get_bd_addr_segs {args} { _rec get_bd_addr_segs {*}$args; return /ps7/Data/SEG_dynaspike_core_0_reg0 }
proc get_files {args} {
    _rec get_files {*}$args
    if {[lsearch $args -of_objects] >= 0} { return system.hwh }
    return [_last $args]
}
proc make_wrapper {args} { _rec make_wrapper {*}$args; return system_wrapper.v }
proc current_fileset {args} { _rec current_fileset {*}$args; return sources_1 }
proc current_project {args} { _rec current_project {*}$args; return project_1 }
proc get_runs {args} { _rec get_runs {*}$args; return [_last $args] }
proc get_property {args} {
    _rec get_property {*}$args
    switch -- [lindex $args 0] {
        PROGRESS { return 100% }
        DIRECTORY { return /stub/impl_1 }
    }
    return {}
}
# `file copy` of Vivado's outputs (which do not exist here) is recorded, every other `file` call is real.
rename file _tcl_file
proc file {sub args} {
    if {$sub eq "copy"} { _rec file copy {*}$args; return }
    return [uplevel 1 [list _tcl_file $sub {*}$args]]
}
proc unknown {args} {
    _rec UNKNOWN {*}$args
    puts stderr "vivado_stub: build.tcl calls [lindex $args 0], which the stub does not know"
    exit 3
}

set ::_all_args $argv
set argv [lrange $argv 1 end]
set argc [llength $argv]
set _script [lindex $::_all_args 0]
source $_script
_rec END
