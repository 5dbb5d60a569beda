"""Logic depth of a yosys-mapped xc7 netlist: LUT and carry levels of the deepest register-to-register paths.

``analyze(netlist, top)`` takes the JSON that yosys ``write_json`` writes after ``synth_xilinx -family xc7``
(``hw.synth`` writes ``<component>.netlist.json``) and returns a JSON-ready report: the worst paths by LUT
levels (ties broken by carry levels), the path with the most carry levels, a histogram of the LUT levels
at the endpoints, and any combinational loop. ``python -m hw.depth NETLIST.json [--top NAME]`` prints it.

yosys's own ``ltp`` is no use on the mapped netlist: it treats FDRE / RAMB / DSP cells as combinational
(every path runs through the clock) and reports false loops through CARRY4 cells. The model here:

- Start points: module input ports and the outputs of sequential cells; end points: module output ports
  and the data and control inputs of sequential cells (clock pins are not data endpoints). Sequential:
  FDRE / FDSE / FDCE / FDPE (and their ``_1`` inverted-clock forms), RAMB18E1 / RAMB36E1 (reads are
  registered), and DSP48E1, which is *assumed* registered: its inputs end paths and its outputs start
  them whatever its AREG / BREG / MREG / PREG say. The report counts the DSPs with neither MREG nor
  PREG (``dsp_unregistered``): a path out of one of those really runs through its multiplier.
- LUT RAM (RAM32M, RAM64M, RAM32X1D, ..., SRL16E, SRLC32E): the write side is synchronous, so the write
  address, write data, write enable and clock end paths; the read data output depends combinationally
  on its read address, one LUT level (the memory's content itself is a register: the output starts
  paths too). A RAM32M's port D, a RAMxX1D's ``A`` and a RAMxX1S's ``A`` are read and write address at
  once: they end paths and feed their output.
- Combinational: LUT1..LUT6 are one LUT level; MUXF7 / MUXF8 are part of the LUT level they select
  between (no LUT level; counted as ``muxf``); a CARRY4 is one carry level from any input to any output
  that depends on it (CI and CYINIT to every output, ``S[i]`` and ``DI[i]`` to the outputs of bit i and
  above), so a cascade of n CARRY4 through CI -> CO[3] counts n; INV / BUF / BUFG / IBUF / OBUF / OBUFT
  count nothing.
- Any other cell type is treated as registered and listed under ``opaque``.

Names: a net bit is named by the shortest human-readable netname that holds it (an Amaranth signal such
as ``eg_rem[3]`` rather than ``$abc$...``); a flip-flop endpoint by the register it writes (its Q).
The figures are levels, not nanoseconds: no placement, no routing, no cell delays.
"""

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

FLIP_FLOPS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1"})
BLOCK_RAMS = frozenset({"RAMB18E1", "RAMB36E1"})
DSPS = frozenset({"DSP48E1"})
LUTS = frozenset(f"LUT{n}" for n in range(1, 7))
MUXFS = frozenset({"MUXF7", "MUXF8"})
WIRES = frozenset({"INV", "BUF", "BUFG", "IBUF", "OBUF", "OBUFT"})
CONSTANTS = frozenset({"GND", "VCC"})
#: Clock inputs of the sequential cells above: the clock tree is not a data path.
CLOCK_PINS = frozenset({"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK"})


def _pins(prefix: str, n: int) -> tuple:
    return tuple(f"{prefix}{i}" for i in range(n))


def _multiport(ports: str) -> tuple:
    # RAM32M / RAM64M / RAM32M16 / RAM64M8: port X reads at ADDRX; the last port's address is also the
    # write address of all of them, so only the other ports' addresses are read-only.
    return tuple(((f"ADDR{p}",), f"DO{p}") for p in ports), frozenset(f"ADDR{p}" for p in ports[:-1])


def _dual(a, dpra) -> tuple:
    # RAMxX1D: SPO reads at the write address A, DPO at the read-only DPRA.
    return ((a, "SPO"), (dpra, "DPO")), frozenset(dpra)


#: LUT-RAM primitives (pin names of yosys' techlibs/xilinx/cells_sim.v): ``(((read-address pins, data
#: output pin), ...), read-only pins)``. Every other input ends paths (write side); every output starts them.
LUTRAM = {
    "RAM32M": _multiport("ABCD"), "RAM64M": _multiport("ABCD"),
    "RAM32M16": _multiport("ABCDEFGH"), "RAM64M8": _multiport("ABCDEFGH"),
    "RAM16X1D": _dual(_pins("A", 4), _pins("DPRA", 4)), "RAM32X1D": _dual(_pins("A", 5), _pins("DPRA", 5)),
    "RAM64X1D": _dual(_pins("A", 6), _pins("DPRA", 6)), "RAM128X1D": _dual(("A",), ("DPRA",)),
    "RAM16X1S": (((_pins("A", 4), "O"),), frozenset()), "RAM32X1S": (((_pins("A", 5), "O"),), frozenset()),
    "RAM64X1S": (((_pins("A", 6), "O"),), frozenset()), "RAM128X1S": (((_pins("A", 7), "O"),), frozenset()),
    "RAM256X1S": (((("A",), "O"),), frozenset()), "RAM512X1S": (((("A",), "O"),), frozenset()),
    # shift registers: the tap address only reads; Q31 is the last stage, a plain register output
    "SRL16E": (((_pins("A", 4), "Q"),), frozenset(_pins("A", 4))),
    "SRLC32E": (((("A",), "Q"),), frozenset({"A"})),
}

# An arrival is one int: levels packed in base 2**20 fields, most significant first, so that adding two
# arrivals adds their levels and comparing them compares lexicographically (no path has 2**20 levels).
_F = 1 << 20
#: The order of the levels in a pass: the worst path maximises LUT levels, then carry, then MUXF;
#: the carry pass carry levels, then LUT, then MUXF.
_ORDERS = {"lut": ("lut", "carry", "muxf"), "carry": ("carry", "lut", "muxf")}


def _pack(order, lut=0, carry=0, muxf=0) -> int:
    v = {"lut": lut, "carry": carry, "muxf": muxf}
    return (v[order[0]] * _F + v[order[1]]) * _F + v[order[2]]


def _unpack(order, a: int) -> dict:
    return {order[0]: a // (_F * _F), order[1]: a // _F % _F, order[2]: a % _F}


def _carry_arcs(conn) -> list:
    """``(input bit, output bit)`` of a CARRY4: O[i] = S[i] ^ C[i], CO[i] = S[i] ? C[i] : DI[i], with
    C[0] = CI | CYINIT and C[i+1] = CO[i]."""
    co, o = conn.get("CO", []), conn.get("O", [])
    arcs = []
    for pin in ("CI", "CYINIT"):
        arcs += [(b, y) for b in conn.get(pin, []) for y in co + o]
    for i, b in enumerate(conn.get("S", [])):
        arcs += [(b, y) for y in co[i:] + o[i:]]
    for i, b in enumerate(conn.get("DI", [])):
        arcs += [(b, y) for y in co[i:] + o[i + 1:]]
    return arcs


def _int_param(v) -> int:
    return v if isinstance(v, int) else int(v, 2) if v and set(v) <= {"0", "1"} else 0


_TEMP = re.compile(r"_\d+_")


def _names(netnames: dict) -> dict:
    """``{bit: (name, index or None)}``: for every bit the best netname, by (hidden, has '$', length)."""
    best = {}
    for raw, net in netnames.items():
        name = raw[1:] if raw.startswith("\\") else raw
        # '$' marks generated names (Amaranth's ``$14``, yosys' ``$abc$...``), ``_12_`` the Verilog
        # backend's temporaries: a real signal name beats them whatever its length.
        score = (bool(net.get("hide_name", name.startswith("$"))), "$" in name or bool(_TEMP.fullmatch(name)),
                 len(name))
        bits, off, upto = net["bits"], net.get("offset", 0), net.get("upto", 0)
        n = len(bits)
        for i, b in enumerate(bits):
            if isinstance(b, int) and (b not in best or score < best[b][0]):
                best[b] = (score, name, None if n == 1 else off + (n - 1 - i if upto else i))
    return {b: (name, idx) for b, (_, name, idx) in best.items()}


def _label(name_idx) -> str:
    name, idx = name_idx
    return name if idx is None else f"{name}[{idx}]"


def _readable(name: str) -> bool:
    return not name.startswith("$")


class _Graph:
    """The netlist as bits (nodes) and cell arcs (edges, weighted in levels); sources and sinks."""

    def __init__(self, module: dict):
        self.arcs = defaultdict(list)        # bit -> [(bit, {"lut"|"carry"|"muxf"|None}, cell type)]
        self.driver = {}                     # source bit -> its kind ("port", or the cell type and pin)
        self.sinks = []                      # (name, idx, kind, bit) of every endpoint
        self.bits = set()
        self.counts = {"opaque": Counter(), "dsp": 0, "dsp_unregistered": 0}
        self.names = _names(module.get("netnames", {}))
        for pname, port in module.get("ports", {}).items():
            bits = port["bits"]
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                self.bits.add(b)
                if port["direction"] in ("input", "inout"):
                    self.driver[b] = "port"
                if port["direction"] in ("output", "inout"):
                    self.sinks.append((pname, None if len(bits) == 1 else i, "port", b))
        for cname, cell in module.get("cells", {}).items():
            self._cell(cname, cell)

    def _arc(self, a, y, kind, ctype):
        if isinstance(a, int) and isinstance(y, int):
            self.arcs[a].append((y, kind, ctype))

    def _cell(self, cname, cell):
        ctype, conn = cell["type"], cell.get("connections", {})
        if ctype.startswith("$scopeinfo"):
            return
        dirs = cell.get("port_directions")
        if dirs is None:
            raise ValueError(f"cell {cname} ({ctype}) has no port_directions: write_json needs the cell "
                             f"library loaded (synth_xilinx reads it)")
        for bits in conn.values():
            self.bits.update(b for b in bits if isinstance(b, int))
        ins = [p for p, d in dirs.items() if d in ("input", "inout")]
        outs = [p for p, d in dirs.items() if d in ("output", "inout")]
        if ctype in LUTS or ctype in MUXFS or ctype in WIRES:
            kind = "lut" if ctype in LUTS else "muxf" if ctype in MUXFS else None
            for p in ins:
                for a in conn.get(p, []):
                    for q in outs:
                        for y in conn.get(q, []):
                            self._arc(a, y, kind, ctype)
            return
        if ctype == "CARRY4":
            for a, y in _carry_arcs(conn):
                self._arc(a, y, "carry", ctype)
            return
        read_only = frozenset()
        if ctype in LUTRAM:
            reads, read_only = LUTRAM[ctype]
            for addr, out in reads:
                for p in addr:
                    for a in conn.get(p, []):
                        for y in conn.get(out, []):
                            self._arc(a, y, "lut", ctype)
        elif ctype in DSPS:
            self.counts["dsp"] += 1
            p = cell.get("parameters", {})
            # neither the product (MREG) nor the output (PREG) registered: a path out of P really starts
            # at the inputs or input registers and crosses the multiplier
            if not any(_int_param(p.get(r, "0")) for r in ("MREG", "PREG")):
                self.counts["dsp_unregistered"] += 1
        elif not (ctype in FLIP_FLOPS or ctype in BLOCK_RAMS or ctype in CONSTANTS):
            self.counts["opaque"][ctype] += 1
        # Registered (or assumed so): outputs start paths, inputs end them. A flip-flop endpoint is named
        # by the register it writes, every other by the cell if it has a readable name, else by the net.
        q = conn.get("Q", []) if ctype in FLIP_FLOPS else []
        reg = self.names.get(q[0]) if q and isinstance(q[0], int) else None
        for p in outs:
            for b in conn.get(p, []):
                if isinstance(b, int):
                    self.driver[b] = f"{ctype}.{p}"
        for p in ins:
            if p in read_only:
                continue
            bits = conn.get(p, [])
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                if p in CLOCK_PINS:  # checked after the DP: a clock through a LUT is a gated clock
                    self.sinks.append((None, None, f"{ctype}.{p}", b))
                    continue
                where = f"{ctype}.{p}" + (f"[{i}]" if len(bits) > 1 else "")
                if reg is not None and _readable(reg[0]):
                    self.sinks.append((*reg, where, b))
                elif _readable(cname):
                    self.sinks.append((cname, None, where, b))
                else:
                    self.sinks.append((*self.names.get(b, (cname, None)), where, b))

    def order(self):
        """Bits in topological order, and the bits left over: on or behind a combinational loop. Sets
        ``driven``, the bits that some arc drives."""
        indeg = Counter(y for arcs in self.arcs.values() for y, _, _ in arcs)
        self.driven = set(indeg)
        ready = [b for b in self.bits if not indeg[b]]
        order = []
        while ready:
            b = ready.pop()
            order.append(b)
            for y, _, _ in self.arcs.get(b, ()):
                indeg[y] -= 1
                if not indeg[y]:
                    ready.append(y)
        return order, {b for b in self.bits if indeg[b] > 0}

    def longest(self, order, levels):
        """``(arrival, pred)`` over ``order``: the packed levels (in ``levels``' order) of the deepest path
        into every bit and the ``(bit, cell type)`` it came through (absent at a start point)."""
        weight = {kind: _pack(levels, **{kind: 1}) for kind in ("lut", "carry", "muxf")}
        weight[None] = 0
        # Start points (sources, undriven bits) arrive at 0; a bit driven by arcs only starts below any
        # path so that its first arc always sets its predecessor (a LUT-RAM output is both).
        arrival = {b: -1 if b in self.driven and b not in self.driver else 0 for b in self.bits}
        pred = {}
        for b in order:
            ab = arrival[b]
            for y, kind, ctype in self.arcs.get(b, ()):
                cand = ab + weight[kind]
                if cand > arrival[y]:
                    arrival[y] = cand
                    pred[y] = (b, ctype)
        return arrival, pred

    def loops(self, left: set, most: int = 5) -> list:
        """Up to ``most`` combinational loops among the ``left`` bits, each as the nets and cells around it.

        Every left bit has a left predecessor (that is why it was left), so walking back through them
        must come round to a bit already on the walk."""
        back = {}
        for a, arcs in self.arcs.items():
            if a in left:
                for y, _, ctype in arcs:
                    if y in left:
                        back.setdefault(y, (a, ctype))
        found, done = [], set()
        for start in sorted(left):
            walk, pos, b = [], {}, start
            while b not in done and b not in pos:
                pos[b] = len(walk)
                walk.append(b)
                b = back[b][0]
            if b in pos:
                cycle = walk[pos[b]:][::-1]
                found.append({"nets": [_label(self.names.get(x, (str(x), None))) for x in cycle],
                              "cells": [back[x][1] for x in cycle]})
            done.update(walk)
            if len(found) >= most:
                break
        return found

    def path(self, bit, pred, levels, arrival):
        """The report record of the deepest path into ``bit``: levels, start, and the cells it crosses."""
        steps = []
        while bit in pred:
            prev, ctype = pred[bit]
            name = self.names.get(bit)
            steps.append(ctype + (f" {_label(name)}" if name and _readable(name[0]) else ""))
            bit = prev
        steps.reverse()
        start = self.names.get(bit, (f"bit {bit}", None))
        return {**_unpack(levels, arrival), "start": start, "start_kind": self.driver.get(bit, "undriven"),
                "through": steps}


#: the logic depth the throughput issue asks for: endpoints deeper than this are listed by signal
DEPTH_LIMIT = 10


def analyze(netlist: dict, top: str | None = None, worst: int = 10, limit: int = DEPTH_LIMIT,
            groups: int = 25) -> dict:
    """The depth report of module ``top`` (default: the one with the ``top`` attribute, else the only one)
    of a yosys JSON netlist (``json.load`` of ``write_json``'s output).

    Returns ``{"lut_levels", "carry_levels", "muxf", "start", "end"`` (of the worst path, 0 and None without
    endpoints), ``"worst"``: up to ``worst`` paths, deepest first (LUT, then carry, then MUXF levels), one
    per pair of start and end signal (the bits of one bus count once), each ``{"lut", "carry", "muxf",
    "start", "start_kind", "end", "end_kind", "through"}``; ``"longest_carry"``: the path with the most
    carry levels (ties by LUT levels), same fields; ``"histogram"``: ``{LUT levels: endpoint bits}``;
    ``"over_limit"``: the endpoints deeper than ``limit`` LUT levels, ``{"limit", "endpoint_bits", "signals":
    [{"end", "bits", "lut"}]}`` by endpoint signal (the bits of a bus together), deepest first, at most
    ``groups`` of them: what a pipelining effort has to cover;
    ``"endpoints"``, ``"loops"`` (combinational loops, expected empty; endpoints behind one are left out),
    ``"gated_clocks"`` (clock pins reached through any LUT, MUXF or carry level), ``"dsp"``, ``"dsp_unregistered"``,
    ``"opaque"`` (``{cell type: count}`` treated as registered), ``"seconds"``}.
    """
    t0 = time.monotonic()
    modules = netlist["modules"]
    if top is None:
        tops = [n for n, m in modules.items() if _int_param(m.get("attributes", {}).get("top", "0"))]
        if len(tops) != 1 and len(modules) != 1:
            raise ValueError(f"name the top module: the netlist has {sorted(modules)}")
        top = tops[0] if len(tops) == 1 else next(iter(modules))
    if top not in modules:
        raise ValueError(f"no module {top!r} in the netlist (it has {sorted(modules)[:5]} ...)")
    g = _Graph(modules[top])
    order, left = g.order()
    lut_order = _ORDERS["lut"]
    arrival, pred = g.longest(order, lut_order)

    data = [s for s in g.sinks if s[0] is not None and s[3] not in left]
    gated = sum(1 for s in g.sinks if s[0] is None and s[3] not in left and arrival[s[3]] > 0)
    hist = Counter(arrival[s[3]] // (_F * _F) for s in data)
    paths, seen = [], set()
    for name, idx, kind, b in sorted(data, key=lambda s: -arrival[s[3]]):
        if len(paths) >= worst:
            break
        p = g.path(b, pred, lut_order, arrival[b])
        key = (p["start"][0], name)
        if key in seen:
            continue
        seen.add(key)
        paths.append({**p, "start": _label(p["start"]), "end": _label((name, idx)), "end_kind": kind})

    carry_order = _ORDERS["carry"]
    c_arrival, c_pred = g.longest(order, carry_order)
    longest_carry = None
    if data:
        name, idx, kind, b = max(data, key=lambda s: c_arrival[s[3]])
        p = g.path(b, c_pred, carry_order, c_arrival[b])
        longest_carry = {**p, "start": _label(p["start"]), "end": _label((name, idx)), "end_kind": kind}

    over, deepest = Counter(), {}
    for name, _, _, b in data:
        levels = arrival[b] // (_F * _F)
        if levels > limit:
            over[name] += 1
            deepest[name] = max(deepest.get(name, 0), levels)
    signals = sorted(over, key=lambda n: (-deepest[n], -over[n], n))[:groups]
    over_limit = {"limit": limit, "endpoint_bits": sum(over.values()),
                  "signals": [{"end": n, "bits": over[n], "lut": deepest[n]} for n in signals]}

    head = paths[0] if paths else {"lut": 0, "carry": 0, "muxf": 0, "start": None, "end": None}
    return {"lut_levels": head["lut"], "carry_levels": head["carry"], "muxf": head["muxf"],
            "start": head["start"], "end": head["end"], "worst": paths, "longest_carry": longest_carry,
            "histogram": {str(k): hist[k] for k in sorted(hist)}, "endpoints": len(data), "over_limit": over_limit,
            "loops": g.loops(left) if left else [], "gated_clocks": gated,
            "dsp": g.counts["dsp"], "dsp_unregistered": g.counts["dsp_unregistered"],
            "opaque": dict(g.counts["opaque"]), "seconds": round(time.monotonic() - t0, 2)}


def describe(path: dict) -> str:
    """One line for a path record: its levels, start and end."""
    return (f"{path['lut']} LUT + {path['carry']} CARRY4 levels ({path['muxf']} MUXF): "
            f"{path['start']} ({path['start_kind']}) -> {path['end']} ({path['end_kind']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netlist", help="yosys write_json output of a mapped xc7 design")
    ap.add_argument("--top", default=None, help="module (default: the top one)")
    ap.add_argument("--worst", type=int, default=10, help="paths to list")
    ap.add_argument("--json", default=None, help="also write the report here")
    args = ap.parse_args(argv)
    r = analyze(json.loads(Path(args.netlist).read_text()), args.top, args.worst)
    for p in r["worst"]:
        print(describe(p))
    if r["longest_carry"]:
        print("most carry levels:", describe(r["longest_carry"]))
    print(f"LUT levels at {r['endpoints']} endpoint bits: {r['histogram']}")
    o = r["over_limit"]
    print(f"{o['endpoint_bits']} endpoint bits deeper than {o['limit']} LUT levels"
          + (": " + ", ".join(f"{x['end']} ({x['bits']} bits, {x['lut']})" for x in o["signals"]) if o["signals"] else ""))
    for loop in r["loops"]:
        print("combinational loop:", " -> ".join(f"{c} {n}" for c, n in zip(loop["cells"], loop["nets"])))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    return 1 if r["loops"] else 0


if __name__ == "__main__":
    sys.exit(main())
