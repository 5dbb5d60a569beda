"""Run the shipped digits model on test images on the PYNQ-Z2, the simulated core or the golden model.

    python sw/run_on_board.py [--target board|sim|golden] [--model M] [--images N] [--power-w W]
                              [--json FILE] [--lanes P] [--bitstream FILE] [--data FILE] [--save-data FILE]

Prints a table per image and the totals (sw/report.py): accuracy, agreement with the golden model,
latency measured (cycle counter, wall clock) vs estimated (cycle model / f_clk), throughput, energy
estimated (45 nm op model; FPGA power x latency) vs measured (``--power-w`` from a meter; the board has
no power sensors), time steps and tokens used. The default target is the board where ``pynq`` imports,
else the simulated core (said on the first line). On the board, where torch is usually absent, the golden
reference comes from ``--data`` (written on a host by ``--save-data``).
"""

import argparse
import importlib.util
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python sw/run_on_board.py` from anywhere
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from dynaspike.artifact import ArtifactError, IntModel  # noqa: E402
from dynaspike.cycles import DEFAULT_LANES  # noqa: E402
from dynaspike.jsonfile import write_json  # noqa: E402
from sw import report  # noqa: E402

SHIPPED_MODEL = os.path.join(ROOT, "train", "shipped", "digits.npz")
DEFAULT_BITSTREAM = os.path.join(ROOT, "build", "bitstream", "dynaspike.bit")


def default_target() -> tuple:
    """``(target, first line)``: the board where pynq imports, else the simulated core."""
    if importlib.util.find_spec("pynq") is not None:
        return "board", "target: board (pynq found)"
    return "sim", "target: simulated board (pynq is not installed here, so no PYNQ-Z2: Verilator + cocotb)"


def load_data(args, model) -> tuple:
    """``(images, labels, reference)``: from ``--data`` (npz) or the model's test split + the golden run."""
    if args.data:
        z = np.load(args.data)
        ref = {"logits": z["logits"], "energy_uj_45nm": z["energy_uj_45nm"],
               "cycles_estimated": z["cycles_estimated"] if "cycles_estimated" in z.files else None}
        x, y = z["images"], z["labels"]
    else:
        import torch

        from train.evaluate import test_split

        torch.set_num_threads(args.threads)
        x, y = test_split(model)
        x, y = x.numpy(), y.numpy()
        ref = None
    n = len(x) if args.images is None else min(args.images, len(x))
    x, y = x[:n], y[:n]
    if ref is None:
        ref = report.reference(model, x, args.lanes)
    else:
        ref = {k: (v[:n] if v is not None else None) for k, v in ref.items()}
    return x, y, ref


def progress_bar(total: int, label: str):
    """A tqdm bar (stderr) and a ``progress(n)`` callback that moves it to n."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="img", file=sys.stderr, disable=None)

    def progress(n):
        bar.update(n - bar.n)
    return bar, progress


def run_target(args, model, x) -> tuple:
    """``(RunResult, clock_hz)`` of the images on the chosen target."""
    bar, progress = progress_bar(len(x), args.target)
    try:
        if args.target == "sim":
            from sw.transports.sim import simulate_run

            print(f"building the core for P = {args.lanes} with Verilator and simulating {len(x)} images "
                  "(the first build takes a while)", flush=True)
            cap, result, timing = simulate_run(args.model, x, args.lanes, progress=progress)
            print(f"simulation: Verilator build {timing['build_s']:.1f} s, run {timing['test_s']:.1f} s", flush=True)
            return result, cap["clock_hz"]
        from sw.driver import Driver
        if args.target == "golden":
            from sw.transports.golden import GoldenTransport
            transport = GoldenTransport(model.config, args.lanes)
        else:
            from sw.transports.board import BoardTransport
            transport = BoardTransport(args.bitstream)
        d = Driver(transport)
        cap = d.load_model(model)
        chunk = len(x) if args.target == "golden" else 1
        parts = []
        for i in range(0, len(x), chunk):
            parts.append(d.run(x[i:i + chunk], tags=np.arange(i, min(i + chunk, len(x)))))
            progress(i + len(parts[-1].tags))
        return merge(parts), cap.clock_hz
    finally:
        bar.close()


def merge(parts):
    """One RunResult from consecutive ones."""
    from sw.driver import RunResult

    cat = lambda f: np.concatenate([getattr(p, f) for p in parts])  # noqa: E731
    return RunResult(tags=cat("tags"), logits=cat("logits"), cycles=cat("cycles"),
                     result_cycles=cat("result_cycles"),
                     counters={k: np.concatenate([p.counters[k] for p in parts]) for k in parts[0].counters},
                     wall_s=cat("wall_s"), batched=parts[0].batched)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python sw/run_on_board.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=("board", "sim", "golden"), help="default: board if pynq imports, else sim")
    ap.add_argument("--model", default=SHIPPED_MODEL, help="exported model (.npz); default: the shipped digits model")
    ap.add_argument("--images", type=int, default=100, help="first N test images (default 100)")
    ap.add_argument("--power-w", type=float, default=None,
                    help="measured power in W (a meter on the board's supply); without it the FPGA energy uses "
                         f"an assumed {report.ASSUMED_POWER_W} W and nothing is reported as measured")
    ap.add_argument("--json", help="write every figure (and the per-image rows) to this JSON file")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES, help="accumulator lanes P of the core (sim, golden)")
    ap.add_argument("--bitstream", default=DEFAULT_BITSTREAM, help="board: the .bit (its .hwh and manifest.json beside it)")
    ap.add_argument("--data", help="images, labels and the golden reference from a --save-data file (no torch needed)")
    ap.add_argument("--save-data", help="write the images, labels and golden reference to this .npz and exit")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.target is None:
        a.target, line = default_target()
    else:
        line = f"target: {a.target}"
    print(line, flush=True)
    try:
        model = IntModel.load(a.model)
    except ArtifactError as e:
        sys.exit(f"error: {e}")
    x, y, ref = load_data(a, model)
    if a.save_data:
        np.savez(a.save_data, images=x, labels=y, **{k: v for k, v in ref.items() if v is not None})
        print(f"wrote {a.save_data} ({len(x)} images and their golden reference)")
        return 0
    print(f"model: {a.model} ({model.config.to_json()}); {len(x)} test images", flush=True)
    t0 = time.perf_counter()
    result, clock_hz = run_target(a, model, x)
    r = report.figures(a.target, result, y, ref, model.config, clock_hz, a.power_w)
    r["session_s"] = time.perf_counter() - t0
    report.print_table(r)
    if a.json:
        write_json(a.json, r)
        print(f"figures: {a.json}")
    return 0 if r["golden_agreement"] == 1.0 and r["logits_bit_exact"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
