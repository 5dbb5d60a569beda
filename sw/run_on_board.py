"""Run a shipped model (digits by default, or ``--model train/shipped/fmnist.npz``) on test images on the
PYNQ-Z2, the simulated core or the golden model.

    python sw/run_on_board.py [--target board|sim|golden] [--model M] [--images N] [--power-w W]
                              [--idle-power-w W] [--repeat-seconds S] [--json FILE] [--lanes P]
                              [--bitstream FILE] [--data FILE] [--save-data FILE] [--bring-up]
                              [--weights-in-ddr]

Prints a table per image and the totals (sw/report.py): accuracy, agreement with the golden model,
latency measured (cycle counter, wall clock) vs estimated (cycle model / f_clk), throughput, energy
estimated (45 nm op model; the FPGA activity model of dynaspike/energy.py from each image's counters) vs
measured (the board has no power sensor: ``--power-w`` under load and ``--idle-power-w`` at idle from a
meter on its supply, read while ``--repeat-seconds S`` keeps the core busy on the images; README, "Energy"),
time steps and tokens used. The default target is the board where ``pynq`` imports,
else the simulated core (said on the first line). On the board, where torch is usually absent, the golden
reference comes from ``--data`` (written on a host by ``--save-data`` with the same ``--target`` and
``--weights-in-ddr``: the file says which memory its cycle estimates assume, and a run needing others stops).

``--bring-up`` (board or golden target) runs the first session on a new board step by step, each step
saying what it checked, or what failed and where to look: the files, the overlay, the capacity registers,
the model load, one image, then the batch.
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


def ddr_memory(args):
    """With ``--weights-in-ddr``, the memory the cycle model estimates against (``dynaspike.ddr.Memory``): the
    simulated RAM's latency on the sim and golden targets (the estimate is exact there), the assumed 40 cycles
    of the board's DDR (its cycle counter shows the real one); else None."""
    from dynaspike import ddr

    if not args.weights_in_ddr:
        return None
    return ddr.Memory() if args.target == "board" else ddr.Memory(read_latency=ddr.SIM_RAM_LATENCY)


def estimate_read_latency(memory) -> int:
    """What a ``--save-data`` file's estimates assume (``estimate_read_latency``): the weights in DDR at the
    memory's read latency, or -1 for the weights on chip (files without the key)."""
    return -1 if memory is None else memory.read_latency


def load_data(args, model) -> tuple:
    """``(images, labels, reference)``: from ``--data`` (npz) or the model's test split + the golden run."""
    memory = ddr_memory(args)
    if args.data:
        z = np.load(args.data)
        saved = int(z["estimate_read_latency"]) if "estimate_read_latency" in z.files else -1
        latency = estimate_read_latency(memory)
        if saved != latency:
            what = lambda lat: "weights on chip" if lat < 0 else f"weights in DDR at {lat} cycles of read latency"  # noqa: E731
            sys.exit(f"error: {args.data} holds estimates for the {what(saved)}, this run needs them for the "
                     f"{what(latency)}: write it with the same --target and --weights-in-ddr (--save-data)")
        ref = {"logits": z["logits"], "energy_uj_45nm": z["energy_uj_45nm"],
               **{k: z[k] if k in z.files else None for k in ("cycles_estimated", "stream_ends_estimated", "ddr_read_bytes_estimated")}}
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
        ref = report.reference(model, x, args.lanes, memory=memory)
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


def repeat(d, x, chunk: int, seconds: float, stream: bool = False) -> dict:
    """Run the images again and again, ``chunk`` at a time, until ``seconds`` have passed (at least one
    pass): ``{"images", "seconds", "images_per_s"}`` (for a meter reading of the power under load)."""
    print(f"repeating the {len(x)} images for {seconds:g} s: read the meter now", flush=True)
    n, t0 = 0, time.perf_counter()
    while True:
        for i in range(0, len(x), chunk):
            n += len(d.run(x[i:i + chunk], stream=stream).tags)
        t = time.perf_counter() - t0
        if t >= seconds:
            print(f"repeat: {n} images in {t:.1f} s ({n / t:.1f} images/s)", flush=True)
            return {"images": n, "seconds": t, "images_per_s": n / t}


def run_target(args, model, x) -> tuple:
    """``(RunResult, clock_hz, manifest or None, meter or None)`` of the images on the chosen target (meter:
    the ``--repeat-seconds`` run, :func:`repeat`)."""
    bar, progress = progress_bar(len(x), args.target)
    try:
        if args.target == "sim":
            from sw.transports.sim import simulate_run

            print(f"building the core for P = {args.lanes} with Verilator and simulating {len(x)} images "
                  "(the first build takes a while)", flush=True)
            cap, result, timing = simulate_run(args.model, x, args.lanes, stream=args.stream, progress=progress,
                                               weights_in_ddr=args.weights_in_ddr)
            print(f"simulation: Verilator build {timing['build_s']:.1f} s, run {timing['test_s']:.1f} s", flush=True)
            return result, cap["clock_hz"], None, None
        from sw.driver import Driver
        if args.target == "golden":
            from sw.transports.golden import GoldenTransport
            from hw.build import sizing_config

            transport = GoldenTransport(sizing_config(model.config, args.lanes), args.lanes)  # the shipped core
        else:
            from sw.transports.board import BoardTransport
            transport = BoardTransport(args.bitstream)
        d = Driver(transport)
        cap = d.load_model(model, args.weights_in_ddr)
        # one image per call on the board (a progress bar), all at once on the golden model or in a stream
        chunk = len(x) if args.target == "golden" or args.stream else 1
        parts = []
        for i in range(0, len(x), chunk):
            parts.append(d.run(x[i:i + chunk], tags=np.arange(i, min(i + chunk, len(x))), stream=args.stream))
            progress(i + len(parts[-1].tags))
        meter = repeat(d, x, chunk, args.repeat_seconds, args.stream) if args.repeat_seconds else None
        return merge(parts), cap.clock_hz, transport.manifest(), meter
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


BRING_UP_STEPS = 6


def bring_up(args, model, x, y, ref) -> int:
    """The step-by-step first run (see the module docstring); 0 if every step passed, else 1 at the first
    failure, with what to look at. The batch step prints the usual table and totals."""
    import json
    from pathlib import Path

    from sw.driver import Driver

    state = {}

    def step(k, what, fn, hint):
        print(f"[{k}/{BRING_UP_STEPS}] {what} ...", flush=True)
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported with its hint
            print(f"[{k}/{BRING_UP_STEPS}] FAIL: {type(e).__name__}: {e}\n    look at: {hint}", flush=True)
            return False
        print(f"[{k}/{BRING_UP_STEPS}] ok: {detail}", flush=True)
        return True

    def files():
        if args.target != "board":
            return "golden target: no files"
        bit = Path(args.bitstream)
        missing = [str(p) for p in (bit, bit.with_suffix(".hwh"), bit.parent / "manifest.json") if not p.exists()]
        if missing:
            raise FileNotFoundError(", ".join(missing))
        m = json.loads((bit.parent / "manifest.json").read_text())
        tool = (m.get("tool") or {}).get("version")
        return (f"{bit.name}, {bit.with_suffix('.hwh').name}, manifest.json (P = {m['capacity']['lanes']}, "
                f"built {'with Vivado ' + tool if tool else 'without Vivado reports'}, source "
                f"{(m.get('source') or {}).get('revision')})")

    def overlay():
        if args.target == "board":
            from sw.transports.board import BoardTransport
            state["t"] = BoardTransport(args.bitstream)
            ip = state["t"].overlay.ip_dict
            return "overlay loaded; " + ", ".join(f"{k} at {ip[k]['phys_addr']:#010x}" for k in sorted(ip))
        from sw.transports.golden import GoldenTransport
        state["t"] = GoldenTransport(model.config, args.lanes)
        return "golden transport"

    def capacity():
        state["d"] = Driver(state["t"])
        cap = state["d"].capacity()
        return (f"ID and VERSION match; P = {cap.lanes}, up to {cap.max_tokens} tokens, dim {cap.max_dim}, "
                f"{cap.weight_rows} weight rows, {cap.clock_hz / 1e6:g} MHz")

    def load():
        import time as _t
        t0 = _t.perf_counter()
        state["d"].load_model(model, args.weights_in_ddr)
        return f"MODEL_LOADED, MODEL_* registers read back the model's config ({_t.perf_counter() - t0:.3f} s)"

    def one():
        r = state["d"].run(x[:1], tags=np.array([0]))
        if not (r.logits[0] == ref["logits"][0]).all():
            raise AssertionError(f"logits {r.logits[0].tolist()}, golden {ref['logits'][0].tolist()}")
        return f"image 0: logits equal the golden model's, {int(r.cycles[0])} cycles, {r.wall_s[0] * 1e3:.2f} ms"

    def batch():
        parts = [state["d"].run(x[i:i + 1], tags=np.array([i])) for i in range(len(x))]
        res = merge(parts)
        cap = state["d"]._cap
        r = report.figures(args.target, res, y, ref, model.config, cap.clock_hz, args.power_w, lanes=cap.lanes,
                           idle_power_w=args.idle_power_w, manifest=state["t"].manifest())
        report.print_table(r)
        if r["logits_bit_exact"] != 1.0:
            bad = [i for i, p in enumerate(r["per_image"]) if not p["logits_equal"]]
            raise AssertionError(f"logits differ from the golden model on images {bad[:10]}")
        return f"{len(x)} images, golden agreement 100 %, {r['cycles_measured_mean']:.1f} cycles mean"

    steps = [
        ("the files beside the bitstream", files,
         "copy <name>.bit, <name>.hwh and manifest.json from build/bitstream/ on the host into one folder"),
        ("load the overlay (pynq.Overlay) and find the core and the DMA", overlay,
         "run as root (sudo -E); the .hwh must come from the same Vivado run as the .bit; the PYNQ image's pynq"),
        ("read the ID, VERSION and capacity registers", capacity,
         "ID 0 or a bus error: the PL is not programmed or FCLK0 is off (reload the overlay); another ID or "
         "version: a bitstream of another build (make bitstream again and copy its files)"),
        ("load the model (MM2S stream, then MODEL_LOADED)", load,
         "a time-out at 'send': the DMA's MM2S or HP0 (bitstreams/build.tcl); CoreError: the ErrorCode names "
         "the packet check; ManifestError/CapacityError: the model is not the one the bitstream is built for"),
        ("run one image and compare its logits with the golden model", one,
         "a time-out at 'receive RESULT': the S2MM stream or TLAST; different logits: the model file and the "
         "--data file must come from the same model (--save-data on the host with the same --model)"),
        (f"run the batch ({len(x)} images)", batch,
         "a failure after some images: note the image index and its tag, then rerun with --images 1 on it"),
    ]
    try:
        for k, (what, fn, hint) in enumerate(steps, 1):
            if not step(k, what, fn, hint):
                return 1
    finally:
        if "t" in state:
            state["t"].close()
    print("bring-up: every step passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python sw/run_on_board.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=("board", "sim", "golden"), help="default: board if pynq imports, else sim")
    ap.add_argument("--model", default=SHIPPED_MODEL, help="exported model (.npz); default: the shipped digits model "
                    "(train/shipped/fmnist.npz: Fashion-MNIST); the test images are the model's data set's")
    ap.add_argument("--images", type=int, default=100, help="first N test images (default 100)")
    ap.add_argument("--power-w", type=float, default=None,
                    help="board power under load in W (a meter on the board's supply, read during "
                         "--repeat-seconds); energy per image = power x time / images")
    ap.add_argument("--idle-power-w", type=float, default=None,
                    help="board power in W with the bitstream loaded and the core idle: the FPGA energy per "
                         "image measured is (--power-w - this) x time / images")
    ap.add_argument("--repeat-seconds", type=float, default=None, metavar="S",
                    help="board or golden: after the batch, run the images again until S seconds have passed "
                         "(images run and images/s reported), long enough to read a meter")
    ap.add_argument("--stream", action="store_true",
                    help="send the images back to back (RUN_CONFIG.STREAM): each one's intake and embedding overlap "
                         "the previous one's blocks; cycles and counters come from the RESULT packets")
    ap.add_argument("--weights-in-ddr", action="store_true",
                    help="place the model's weights in DDR (the board's, or the simulated RAM) and have the core "
                         "read them tile by tile (docs/hardware.md, 'DDR mode'), as for a model too large for "
                         "its block RAM")
    ap.add_argument("--json", help="write every figure (and the per-image rows) to this JSON file")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES, help="accumulator lanes P of the core (sim, golden)")
    ap.add_argument("--bitstream", default=DEFAULT_BITSTREAM, help="board: the .bit (its .hwh and manifest.json beside it)")
    ap.add_argument("--data", help="images, labels and the golden reference from a --save-data file (no torch needed)")
    ap.add_argument("--save-data", help="write the images, labels and golden reference to this .npz and exit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bring-up", action="store_true",
                    help="board or golden: the first run on a new board, step by step (see the module docstring)")
    a = ap.parse_args(argv)
    if a.target is None:
        a.target, line = default_target()
    else:
        line = f"target: {a.target}"
    if not a.save_data:  # --save-data runs nothing on a target
        print(line, flush=True)
    try:
        model = IntModel.load(a.model)
    except ArtifactError as e:
        sys.exit(f"error: {e}")
    x, y, ref = load_data(a, model)
    if a.save_data:
        np.savez(a.save_data, images=x, labels=y, estimate_read_latency=estimate_read_latency(ddr_memory(a)),
                 **{k: v for k, v in ref.items() if v is not None})
        print(f"wrote {a.save_data} ({len(x)} images and their golden reference)")
        return 0
    print(f"model: {a.model} ({model.config.to_json()}); {len(x)} test images", flush=True)
    if a.repeat_seconds is not None and (a.target == "sim" or a.repeat_seconds <= 0):
        sys.exit("error: --repeat-seconds needs a positive S and the board or golden target")
    if a.idle_power_w is not None and a.power_w is None:
        sys.exit("error: --idle-power-w needs --power-w (the reading under load)")
    if a.bring_up:
        if a.target not in ("board", "golden"):
            sys.exit("error: --bring-up runs on the board or golden target")
        return bring_up(a, model, x, y, ref)
    t0 = time.perf_counter()
    result, clock_hz, manifest, meter = run_target(a, model, x)
    r = report.figures(a.target, result, y, ref, model.config, clock_hz, a.power_w, lanes=a.lanes,
                       idle_power_w=a.idle_power_w, meter=meter, manifest=manifest)
    r["session_s"] = time.perf_counter() - t0
    report.print_table(r)
    if a.json:
        write_json(a.json, r)
        print(f"figures: {a.json}")
    return 0 if r["golden_agreement"] == 1.0 and r["logits_bit_exact"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
