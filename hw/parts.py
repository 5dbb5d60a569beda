"""Where a mapped design's LUTs and flip-flops are: its cells counted by the part of the design they belong to.

Synthesis flattens the core and ABC renames every LUT, so a LUT's part is recovered from the nets: a cell
belongs to the part of the first named net it drives (Amaranth names a signal ``part.name`` in the flattened
netlist, e.g. ``acc.pair``: part ``acc``; a top-level signal is ``(top)``), or else, for logic whose outputs
are all anonymous, to the part of the first named net a breadth-first walk forward from it reaches
(through logic, up to the first register or memory: the register a LUT computes belongs to its part). Logic
shared by several parts goes to the first one found, so the split is an attribution, not a partition of
the logic's purpose; what reaches no named net is ``(unnamed)``.

``by_part(module)`` takes one module of yosys' ``write_json`` netlist (``hw.synth`` calls it on the mapped
core); LUT-RAM cells count as the LUTs they occupy (``hw.synth``'s table).
"""

from collections import Counter, defaultdict, deque

COMBINATIONAL = ("LUT", "CARRY", "MUXF")
UNNAMED = "(unnamed)"
TOP = "(top)"


def part_of(net_name: str) -> str:
    """The part of a flattened net name: what comes before its first dot (``\\acc.pair`` -> ``acc``)."""
    name = net_name.lstrip("$\\")
    return name.split(".", 1)[0] if "." in name else TOP


def by_part(module: dict, lutram_luts: dict) -> dict:
    """``{part: {"lut", "ff"}}`` of one ``write_json`` module, largest LUT count first; ``lutram_luts``
    maps LUT-RAM cell types to the LUTs each occupies."""
    named = {}                                   # bit -> part of its first named net
    for name, net in module["netnames"].items():
        if not name.startswith("$"):             # yosys' own nets ($abc$..., $auto$...) carry no part
            for b in net["bits"]:
                named.setdefault(b, part_of(name))
    cells = module["cells"]
    outputs, readers = {}, defaultdict(list)
    for cname, c in cells.items():
        dirs = c.get("port_directions", {})
        outs = []
        for pin, bits in c["connections"].items():
            for b in bits:
                if isinstance(b, int):
                    (outs.append(b) if dirs.get(pin) == "output" else readers[b].append(cname))
        outputs[cname] = outs

    found = {}

    def part(cname: str) -> str:
        """The part of the first named net ``cname`` drives, or that the logic after it drives."""
        if cname in found:
            return found[cname]
        seen, queue = {cname}, deque([cname])
        while queue:
            cur = queue.popleft()
            for b in outputs[cur]:
                if b in named:
                    found[cname] = named[b]
                    return found[cname]
            # walk on through logic only: a register or memory reached names the part, or ends the path
            if cur == cname or cells[cur]["type"].startswith(COMBINATIONAL):
                for b in outputs[cur]:
                    for nxt in readers[b]:
                        if nxt not in seen:
                            seen.add(nxt)
                            queue.append(nxt)
        found[cname] = UNNAMED
        return UNNAMED

    lut, ff = Counter(), Counter()
    for cname, c in cells.items():
        t = c["type"]
        if t.startswith("LUT"):
            lut[part(cname)] += 1
        elif t in lutram_luts:
            lut[part(cname)] += lutram_luts[t]
        elif t.startswith("FD"):
            ff[part(cname)] += 1
    return {p: {"lut": lut[p], "ff": ff[p]} for p in sorted(set(lut) | set(ff), key=lambda p: (-lut[p], p))}
