"""SAIF (switching activity interchange format) files: read Verilator's, summarise them by hierarchy, and
write a copy rooted where the core sits in the bitstream's design (for Vivado's ``read_saif``).

Standard library only. A SAIF file is an s-expression: ``(SAIFILE (DURATION d) (INSTANCE name (NET (sig
(T0 a) (T1 b) (TX c) (TC n)) ...) (INSTANCE child ...)))``, one ``NET`` entry per bit, ``TC`` its number
of transitions (toggles) over the duration.

    tree = parse(text)                       # nested lists of atoms
    s = summary(tree, top="top", clock="clk")   # per component: bits, toggles, toggle rate per bit per cycle
"""

import re

_COMMENT = re.compile(r"(?m)^[ \t]*//.*$")
_TOKEN = re.compile(r'\(|\)|"[^"]*"|(?:\\.|[^\s()\\"])+')


def parse(text: str) -> list:
    """The s-expression of ``text`` as nested lists of atoms (strings, escapes kept); ``//`` comment lines
    (Verilator's first line) are skipped."""
    text = _COMMENT.sub("", text)
    stack, cur = [], []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok == "(":
            stack.append(cur)
            cur = []
        elif tok == ")":
            if not stack:
                raise ValueError(f"SAIF: unbalanced ')' at character {m.start()}")
            done, cur = cur, stack.pop()
            cur.append(done)
        else:
            cur.append(tok)
    if stack:
        raise ValueError(f"SAIF: {len(stack)} unclosed '(' at the end of the text")
    if len(cur) != 1 or not isinstance(cur[0], list) or not cur[0] or cur[0][0] != "SAIFILE":
        raise ValueError("SAIF: the text is not one (SAIFILE ...) expression")
    return cur[0]


def unescape(name: str) -> str:
    """A SAIF identifier without its backslash escapes (``q\\[3\\]`` -> ``q[3]``)."""
    return re.sub(r"\\(.)", r"\1", name)


def header(tree: list) -> dict:
    """The SAIFILE's scalar fields (``DURATION``, ``TIMESCALE``, ``DESIGN``, ``VENDOR`` ...) as strings."""
    return {e[0]: " ".join(str(x) for x in e[1:]) for e in tree[1:]
            if isinstance(e, list) and e and e[0] != "INSTANCE" and all(isinstance(x, str) for x in e[1:])}


def _nets(inst: list):
    """``(name, {"T0": .., "TC": ..})`` of every NET or PORT entry of an INSTANCE."""
    for e in inst[2:]:
        if isinstance(e, list) and e and e[0] in ("NET", "PORT"):
            for n in e[1:]:
                if isinstance(n, list) and n and isinstance(n[0], str):
                    vals = {}
                    for kv in n[1:]:
                        if isinstance(kv, list) and len(kv) == 2:
                            vals[kv[0]] = int(kv[1])
                    yield unescape(n[0]), vals


def _children(inst: list):
    return [e for e in inst[2:] if isinstance(e, list) and e and e[0] == "INSTANCE"]


def instances(tree: list, path: str = ""):
    """Every INSTANCE as ``(path, node)``, depth first (paths ``a/b/c`` of unescaped names)."""
    for inst in (e for e in tree[1:] if isinstance(e, list) and e and e[0] == "INSTANCE"):
        yield from _walk(inst, path)


def _walk(inst, prefix):
    name = unescape(inst[1])
    p = f"{prefix}/{name}" if prefix else name
    yield p, inst
    for c in _children(inst):
        yield from _walk(c, p)


def find(tree: list, name: str) -> tuple:
    """``(path, node)`` of the first INSTANCE called ``name`` (depth first); KeyError if none."""
    for p, inst in instances(tree):
        if p.rsplit("/", 1)[-1] == name:
            return p, inst
    raise KeyError(f"SAIF: no instance {name!r}; instances: {[p for p, _ in instances(tree)][:20]}")


def _activity(inst) -> tuple:
    """(bits, toggles) of an instance and everything below it."""
    bits = tc = 0
    for _, v in _nets(inst):
        bits += 1
        tc += v.get("TC", 0)
    for c in _children(inst):
        b, t = _activity(c)
        bits += b
        tc += t
    return bits, tc


def _distinct_toggles(inst) -> int:
    """Toggles under ``inst`` with each group of bits of equal index and activity (``T0``, ``T1``, ``TC``)
    counted once.

    A wire that crosses hierarchy levels appears in the SAIF once per level (a component's output port, the
    parent's wire, the next component's input port: the accumulate engine's 1,536-bit result four times), and
    the netlist has it once. Bits of the same index (``[k]``) with equal high and low times and toggle count
    over a whole run are taken for one net. A heuristic: two different nets may agree by chance, and a
    port connected to a slice at another offset is still counted twice."""
    seen = set()
    for _, node in _walk(inst, ""):
        for name, v in _nets(node):
            if v.get("TC", 0):
                index = name[name.rindex("["):] if name.endswith("]") else ""
                seen.add((index, v.get("T0"), v.get("T1"), v["TC"]))
    return sum(key[-1] for key in seen)


def summary(tree: list, top: str = "top", clock: str = "clk") -> dict:
    """Activity of the design under the instance ``top``, per direct child (component) and the top's own
    nets: ``{"cycles", "duration", "timescale", "bits", "toggles", "toggles_distinct", "toggle_rate",
    "components": {name: {"bits", "toggles", "toggle_rate"}}}``; the toggle rate is toggles per bit per clock
    cycle, the cycles are the ``clock`` net's transitions / 2; ``toggles_distinct`` counts a net seen at
    several hierarchy levels once (``_distinct_toggles``)."""
    path, inst = find(tree, top)
    clk = dict(_nets(inst)).get(clock)
    if clk is None:  # the clock may be a port of the simulation's top scope above the design
        for _, other in instances(tree):
            clk = dict(_nets(other)).get(clock)
            if clk is not None:
                break
    if clk is None:
        raise KeyError(f"SAIF: no net {clock!r} to count cycles with")
    cycles = clk.get("TC", 0) // 2
    rate = lambda b, t: t / (b * cycles) if b and cycles else 0.0  # noqa: E731
    comps = {}
    own = [(n, v) for n, v in _nets(inst)]
    b_own, t_own = len(own), sum(v.get("TC", 0) for _, v in own)
    comps["(top)"] = {"bits": b_own, "toggles": t_own, "toggle_rate": rate(b_own, t_own)}
    for c in _children(inst):
        b, t = _activity(c)
        comps[unescape(c[1])] = {"bits": b, "toggles": t, "toggle_rate": rate(b, t)}
    bits, tc = sum(v["bits"] for v in comps.values()), sum(v["toggles"] for v in comps.values())
    h = header(tree)
    return {"instance": path, "cycles": cycles, "duration": int(h["DURATION"]) if "DURATION" in h else None,
            "timescale": h.get("TIMESCALE"), "bits": bits, "toggles": tc, "toggles_distinct": _distinct_toggles(inst),
            "toggle_rate": rate(bits, tc), "components": comps}


def _atom(x) -> str:
    return x


def dumps(tree) -> str:
    """The SAIF text of a tree (one expression per line for INSTANCE and NET lists)."""
    out = []

    def emit(node, depth):
        if not isinstance(node, list):
            out.append(node)
            return
        simple = all(not isinstance(x, list) or all(not isinstance(y, list) for y in x) for x in node)
        if simple and node and node[0] not in ("INSTANCE", "NET", "PORT", "SAIFILE"):
            out.append("(" + " ".join(x if not isinstance(x, list) else "(" + " ".join(x) + ")" for x in node) + ")")
            return
        out.append("(" + " ".join(x for x in node if not isinstance(x, list)))
        for x in node:
            if isinstance(x, list):
                out.append("\n" + "  " * (depth + 1))
                emit(x, depth + 1)
        out.append(")")
    emit(tree, 0)
    return "".join(out) + "\n"


def reroot(tree: list, top: str, path: list) -> list:
    """A SAIFILE holding only the instance ``top``, renamed to the last name of ``path`` and nested in
    INSTANCEs of the names before it (``["sim", "system_i", "dynaspike_core_0", "inst", "core"]``): the
    core's activity where the bitstream's design has the core, for ``read_saif -strip_path sim``."""
    _, inst = find(tree, top)
    node = ["INSTANCE", path[-1], *inst[2:]]
    for name in reversed(path[:-1]):
        node = ["INSTANCE", name, node]
    return [e for e in tree if not (isinstance(e, list) and e and e[0] == "INSTANCE")] + [node]
