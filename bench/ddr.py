"""Benchmark: the DDR mode's traffic and latency (train/traffic_model.py), from the shipped models to the seeds'.

    python -m bench.ddr [--images 20] [--json build/bench.json] [--plot build/bench_ddr.png] [--out build/ddr]

The shapes are the shipped digits and Fashion-MNIST models, and untrained models of the medium and the
seeds' shapes. The untrained models come from ``bench/seed_models.py``, with thresholds set so that their
layers fire at the shipped Fashion-MNIST model's rates; they are saved under ``--out``. For each shape the
bench runs the golden model on test images and prints, per image, at 100 MHz, on one HP port:

- the DDR bytes read and written, against the lower bound;
- the compute, transfer and estimated latency cycles;
- dynamic against dense traffic, next to the operation ratio.

The seed shapes take Fashion-MNIST test images, padded to 32x32 and repeated over 3 channels. An untrained
model has no learned time-step mask or halting, so it runs dense. Its *dynamic* figures use the Fashion-MNIST
model's learned mask on every block (the mask is what a trained model saves most with).

For the shipped models it also gives the core's DDR mode as built (the weights from DDR, the membranes on
chip): the cycle model's CYCLES with ``memory`` (exact in simulation), at the assumed read latency and at the
simulated RAM's, next to the on-chip cycles.

The bench writes ``"ddr"`` (every shape) and ``"seed_cifar10"`` (the issue's keys) into ``build/bench.json``,
and plots latency and traffic against model size.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynaspike import ddr
from dynaspike.artifact import IntModel
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.jsonfile import write_json
from hw.build import SHIPPED_MODELS
from train.data import load_dataset
from train.evaluate import test_split
from train import cycle_model
from train.golden import GoldenModel
from train.traffic_model import predict_traffic

from . import seed_models

CLOCK_HZ = 100_000_000
#: The published FPGA Spikformer's latency (ANCHORS.md: Spikformer-1-384, one block, on a ZU7EV at 200 MHz, 7.2 W).
SPIKFORMER_FPGA_MS = 53.0
ASSUMPTIONS = [
    "one AXI HP port, 64 bits a cycle on each of its read and write channels, at the core's 100 MHz (the "
    "two-port figures: the membranes on a second port); the DDR gives 16 bytes a cycle (1.6 GB/s usable)",
    f"read latency {ddr.Memory().read_latency} cycles per pass (dynaspike.ddr.Memory; assumed, not measured)",
    "weight-stationary passes: double-buffered tiles, compute and transfer overlapped within a pass, not across",
    "compute cycles: the on-chip cycle model (train/cycle_model.py) of a core with P = 32",
    "the seed shapes are untrained (bench/seed_models.py); their spike rates are calibrated to the shipped "
    "Fashion-MNIST model's",
]


def figures(model: IntModel, images, lanes: int) -> dict:
    """The DDR figures of one model on ``images``: dynamic and dense, per image (means)."""
    gm = GoldenModel(model)
    out = {"weight_buffer_bytes": ddr.weight_buffer(model.config, lanes)["_bytes"],
           "state_buffer_bytes": ddr.state_buffer(model.config, lanes)["_bytes"]}
    for mode, dense in (("dynamic", False), ("dense", True)):
        g = gm.run(images, dense=dense, trace=True)   # one golden run for both memories and the ops
        p = predict_traffic(model, images, lanes, dense=dense, golden=g, gm=gm)
        two = predict_traffic(model, images, lanes, dense=dense, golden=g, gm=gm, memory=ddr.Memory(ports=2))
        acs = g.acs_total.numpy()
        out[mode] = {
            "ddr_bytes_per_image": float(p.total.mean()),
            "ddr_bytes_read": float(p.read.mean()),
            "ddr_bytes_written": float(p.state_write.mean()),
            "ddr_bytes_weights": float(p.weight_read.mean()),
            "ddr_bytes_lower_bound": float(p.bound.mean()),
            "traffic_over_bound": float((p.total / p.bound).mean()),
            "compute_cycles": float(p.compute_cycles.mean()),
            "transfer_cycles": float(p.transfer_cycles.mean()),
            "latency_cycles": float(p.latency_cycles.mean()),
            "latency_ms_100mhz": float(p.latency_cycles.mean() / CLOCK_HZ * 1e3),
            "latency_ms_100mhz_two_ports": float(two.latency_cycles.mean() / CLOCK_HZ * 1e3),
            "latency_over_max": float((p.latency_cycles / np.maximum(p.compute_cycles, p.transfer_cycles)).mean()),
            "acs": float(acs.mean()),
        }
    d, n = out["dynamic"], out["dense"]
    out["dynamic_traffic_ratio"] = d["ddr_bytes_per_image"] / n["ddr_bytes_per_image"]
    out["op_ratio"] = d["acs"] / n["acs"]
    out["latency_ratio"] = d["latency_cycles"] / n["latency_cycles"]
    return out


def core_weights_in_ddr(model: IntModel, images, lanes: int) -> dict:
    """The core's DDR mode as built (weights from DDR, membranes on chip): mean CYCLES per image from the cycle
    model, at the assumed read latency and at the simulated RAM's, and on chip."""
    gm = GoldenModel(model)
    golden = gm.run(images, trace=True)
    preds = {name: cycle_model.predict(model, images, lanes, golden=golden, gm=gm, memory=mem)
             for name, mem in (("assumed_latency", ddr.Memory()),
                               ("sim_ram", ddr.Memory(read_latency=ddr.SIM_RAM_LATENCY)), ("on_chip", None))}
    dense = cycle_model.predict(model, images, lanes, dense=True, memory=ddr.Memory())
    cyc = {name: float(p.cycles.mean()) for name, p in preds.items()}
    read = float(preds["assumed_latency"].ddr_read_bytes.mean())
    transfer = read / ddr.BEAT_BYTES                    # one beat a cycle on the read channel
    return {"cycles_per_image": cyc, "over_on_chip": cyc["assumed_latency"] / cyc["on_chip"],
            "latency_us_100mhz": cyc["assumed_latency"] / CLOCK_HZ * 1e6, "ddr_read_bytes_per_image": read,
            "ddr_read_bytes_per_image_dense": float(dense.ddr_read_bytes.mean()),
            "dynamic_read_ratio": read / float(dense.ddr_read_bytes.mean()),
            "transfer_cycles": transfer,
            "latency_over_max": cyc["assumed_latency"] / max(cyc["on_chip"], transfer)}


def with_mask(model: IntModel, mask_of: IntModel) -> IntModel:
    """``model`` with ``mask_of``'s time-step mask (its first block's rows) on every block."""
    m = model["mask"].copy()
    m[:] = np.tile(mask_of["mask"][:2], (model.config.blocks, 1))[:, : m.shape[1]]
    return IntModel(model.config, model.params, dict(model.tensors, mask=m),
                    dict(model.info, mask_from=mask_of.info.get("source", "the shipped Fashion-MNIST model")))


def plot(rows: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    size = [rows[n]["weight_buffer_bytes"] / 1e6 for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("dense", "s--"), ("dynamic", "o-")):
        a.plot(size, [rows[n][mode]["latency_ms_100mhz"] for n in names], style, label=mode)
        b.plot(size, [rows[n][mode]["ddr_bytes_per_image"] / 1e6 for n in names], style, label=mode)
    b.plot(size, [rows[n]["dynamic"]["ddr_bytes_lower_bound"] / 1e6 for n in names], ":", color="grey",
           label="dynamic: lower bound")
    a.axhline(SPIKFORMER_FPGA_MS, color="grey", ls=":", lw=1)
    a.text(size[0], SPIKFORMER_FPGA_MS, " FPGA Spikformer-1-384, ZU7EV at 200 MHz", va="bottom", fontsize=8, color="grey")
    for ax, label in ((a, "latency per image at 100 MHz (ms)"), (b, "DDR traffic per image (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("weights in DDR (MB)")
        ax.set_ylabel(label)
        key = "latency_ms_100mhz" if ax is a else "ddr_bytes_per_image"
        labels = {}   # shapes of one size share a label
        for n, x in zip(names, size):
            labels.setdefault(x, []).append(n)
        for x, ns in labels.items():
            y = rows[ns[0]]["dense"][key] / (1 if ax is a else 1e6)
            ax.annotate(", ".join(ns), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle("dynaspike DDR mode: one HP port, 64 bits a cycle (traffic model)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="test images per shape")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--json", default="build/bench.json")
    ap.add_argument("--plot", default="build/bench_ddr.png")
    ap.add_argument("--out", default="build/ddr", help="where the seed-shape models are saved")
    args = ap.parse_args(argv)

    shipped = {p.stem: IntModel.load(p) for p in map(Path, SHIPPED_MODELS)}
    fmnist = shipped["fmnist"]
    split = load_dataset("fmnist")
    target = seed_models.layer_rates(fmnist, split.test_x[:32])
    rows = {}
    for name, model in shipped.items():
        x = test_split(model)[0][:args.images]
        rows[name] = figures(model, x, args.lanes)
        rows[name]["core_weights_in_ddr"] = core_weights_in_ddr(model, x.numpy(), args.lanes)
        c = rows[name]["core_weights_in_ddr"]["cycles_per_image"]
        print(f"{name:14s} the core with its weights in DDR: {c['assumed_latency']:.1f} cycles per image at "
              f"{ddr.Memory().read_latency} cycles of read latency ({c['sim_ram']:.1f} at the simulated RAM's "
              f"{ddr.SIM_RAM_LATENCY}), {c['on_chip']:.1f} on chip; tiles read "
              f"{rows[name]['core_weights_in_ddr']['ddr_read_bytes_per_image'] / 1e3:.1f} KB per image "
              f"({rows[name]['core_weights_in_ddr']['dynamic_read_ratio']:.3f} of dense), latency / "
              f"max(compute, transfer) {rows[name]['core_weights_in_ddr']['latency_over_max']:.3f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for shape in tqdm(seed_models.SHAPES, desc="seed shapes"):
        cfg = seed_models.SHAPES[shape]
        calib = seed_models.cifar_like(split.val_x[:64].numpy(), cfg)
        model = seed_models.build(shape, calib[:8], target, bn_images=calib)
        model.save(Path(args.out) / f"{shape}.npz")
        images = seed_models.cifar_like(split.test_x[:args.images].numpy(), cfg)
        dense = figures(model, images, args.lanes)
        masked = figures(with_mask(model, fmnist), images, args.lanes)
        rows[shape] = dict(masked, dense=dense["dense"], spike_rates=seed_models.layer_rates(model, images))
    for name, r in rows.items():
        d, n = r["dynamic"], r["dense"]
        print(f"{name:14s} weights {r['weight_buffer_bytes'] / 1e6:6.2f} MB, state {r['state_buffer_bytes'] / 1e6:5.2f} MB | "
              f"dense {n['latency_ms_100mhz']:6.2f} ms, {n['ddr_bytes_per_image'] / 1e6:6.2f} MB | "
              f"dynamic {d['latency_ms_100mhz']:6.2f} ms, {d['ddr_bytes_per_image'] / 1e6:6.2f} MB, "
              f"{d['traffic_over_bound']:.3f} x bound, latency / max(compute, transfer) {d['latency_over_max']:.3f} | "
              f"traffic {r['dynamic_traffic_ratio']:.3f} vs ops {r['op_ratio']:.3f} | two HP ports: dense "
              f"{n['latency_ms_100mhz_two_ports']:.2f} ms, dynamic {d['latency_ms_100mhz_two_ports']:.2f} ms")
    seed = rows["seed_cifar10"]
    path = Path(args.json)
    out = json.loads(path.read_text()) if path.exists() else {}
    out["ddr"] = {"shapes": rows, "images": args.images, "lanes": args.lanes, "assumptions": ASSUMPTIONS}
    out["seed_cifar10"] = {
        "latency_ms_100mhz": seed["dense"]["latency_ms_100mhz"],
        "latency_ms_100mhz_masked": seed["dynamic"]["latency_ms_100mhz"],
        "latency_ms_100mhz_two_ports": seed["dense"]["latency_ms_100mhz_two_ports"],
        "compute_cycles": seed["dense"]["compute_cycles"],
        "transfer_cycles": seed["dense"]["transfer_cycles"],
        "ddr_bytes_per_image": seed["dense"]["ddr_bytes_per_image"],
        "ddr_bytes_lower_bound": seed["dense"]["ddr_bytes_lower_bound"],
        "dynamic_traffic_ratio": seed["dynamic_traffic_ratio"],
        "spike_rates": seed["spike_rates"],
        "lut_util": None, "bram_util": None, "dsp_util": None,
        "resources": "not yet: the shipped core reads a model's weights from DDR, but the membranes, a capacity "
                     "beyond its on-chip memories and the seed shape's width are still to come (issue #11)",
        "figures": "dense: the untrained model as built (every module step, every token); masked: with the "
                   "Fashion-MNIST model's learned time-step mask on every block",
        "assumptions": ASSUMPTIONS,
    }
    write_json(path, out)
    plot(rows, Path(args.plot))
    print(f"wrote {path} (\"ddr\", \"seed_cifar10\") and {args.plot}")


if __name__ == "__main__":
    main()
