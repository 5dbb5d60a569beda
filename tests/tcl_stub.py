"""Run bitstreams/build.tcl through tclsh with Vivado's commands stubbed (tests/vivado_stub.tcl).

``run_build_tcl(tmp, **env) -> (CompletedProcess, calls)``; ``calls`` is a list of ``[command, arg, ...]``.
``design(calls)`` condenses it: the cells created, each cell's CONFIG properties, the axi4 automations, the
stream connections, the address range set and the files written. ``require_tclsh()`` skips (default
.venv run) or fails (the board lane, ``DYNASPIKE_BOARD_LANE=1``) when tclsh is missing.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "tests" / "vivado_stub.tcl"
BUILD_TCL = ROOT / "bitstreams" / "build.tcl"


def require_tclsh() -> str:
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        msg = "tclsh is not installed (Debian: apt-get install -y tcl); `make test-board` installs it as root"
        if os.environ.get("DYNASPIKE_BOARD_LANE"):
            pytest.fail(msg + " - the board lane must run this test")
        pytest.skip(msg)
    return tclsh


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def run_build_tcl(tmp: Path, name: str = "dynaspike", extra=(), **env) -> tuple:
    """Run build.tcl with ``<verilog dir> <out dir> <name> *extra`` (``extra``: the optional SAIF file)."""
    tclsh = require_tclsh()
    vdir, out, log = tmp / "verilog", tmp / "out", tmp / "calls.log"
    vdir.mkdir(parents=True, exist_ok=True)
    for f in ("dynaspike_core.v", "dynaspike_core_axi.v"):
        (vdir / f).write_text("// stub\n")
    p = subprocess.run([tclsh, str(STUB), str(BUILD_TCL), str(vdir), str(out), name, *map(str, extra)], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "STUB_LOG": str(log), **env})
    calls = [[_unescape(a) for a in line.split("\t")] for line in log.read_text().splitlines()] if log.exists() else []
    return p, calls


def _pairs(words: list) -> dict:
    return dict(zip(words[0::2], words[1::2]))


def design(calls: list) -> dict:
    cells, config, automations, streams, nets, ranges, copies = {}, {}, [], [], [], [], []
    for c in calls:
        cmd, args = c[0], c[1:]
        if cmd == "create_bd_cell":
            opts = dict(zip(args[0:-1:2], args[1:-1:2]))
            cells[args[-1]] = opts.get("-vlnv") or f"module_ref:{opts.get('-reference')}"
        elif cmd == "set_property" and args[:1] == ["-dict"]:
            kv = _pairs(args[1:-2])
            config.setdefault(args[-1].lstrip("/"), {}).update({k.removeprefix("CONFIG."): v for k, v in kv.items()})
        elif cmd == "set_property" and args[:1] == ["range"]:
            ranges.append((args[1], args[2]))
        elif cmd == "apply_bd_automation":
            automations.append({"rule": args[0], "config": _pairs(args[1:-2]), "on": args[-1].lstrip("/")})
        elif cmd == "connect_bd_intf_net":
            streams.append(tuple(a.lstrip("/") for a in args))
        elif cmd == "connect_bd_net":
            nets.append(tuple(a.lstrip("/") for a in args))
        elif cmd == "file" and args[:1] == ["copy"]:
            copies.append(args[-1])
    return {"cells": cells, "config": config, "automations": automations, "streams": streams, "nets": nets,
            "ranges": ranges, "copies": copies}
