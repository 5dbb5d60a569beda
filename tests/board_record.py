"""Record what the board lane replays: the golden transport's answers, packed under numpy 2 (the .venv).

    .venv/bin/python tests/board_record.py --out build/board-lane [--images 24]

Writes into ``--out``:

- ``data.npz``: ``sw/run_on_board.py --save-data`` of the shipped model's first N test images (the file a
  board run reads with ``--data``: images, labels, golden logits, energies, estimated cycles);
- ``recording.npz``: ``model_packet`` (``packing.pack_model`` for the default lane count), ``image_packets``
  (``packing.pack_images`` with tags 0..N-1), ``payloads`` (their payload beats), ``results`` / ``taps``
  (the RESULT and TAP packets the golden transport answers, DEBUG_TAPS on), ``registers`` (CYCLES and the
  performance counters after each image, ``sw.driver.RESULT_REGISTERS`` order) and ``numpy_version``;
- ``manifest.json`` (the golden core's manifest), ``dynaspike.bit`` and ``dynaspike.hwh`` (placeholders:
  the board lane's fake device never reads them; pynq.Overlay only needs them to exist);
- ``data_ddr.npz`` and the recording's ``ddr_*`` arrays: the same with the weights in DDR (``record_ddr``).

The board lane (.venv-board: numpy 1.x, pynq, no torch) packs the same model and images itself and must get
these packets byte for byte; its fake core (tests/board_fakes.py) answers with these results.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from dynaspike import packing, regmap  # noqa: E402
from dynaspike.artifact import IntModel  # noqa: E402
from dynaspike.cycles import DEFAULT_LANES  # noqa: E402
from sw.driver import RESULT_REGISTERS, RUN_CONFIG  # noqa: E402
from sw.transports.golden import GoldenTransport  # noqa: E402

SHIPPED = ROOT / "train" / "shipped" / "digits.npz"


def record(out: Path, images: int) -> dict:
    """Write the lane's files into ``out``; return a summary."""
    import runpy

    import torch

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.npz"
    run_on_board = runpy.run_path(str(ROOT / "sw" / "run_on_board.py"))
    rc = run_on_board["main"](["--images", str(images), "--save-data", str(data), "--threads", "1"])
    if rc:
        raise SystemExit(f"run_on_board.py --save-data failed ({rc})")
    model = IntModel.load(SHIPPED)
    x = np.load(data)["images"]
    gold = GoldenTransport(model.config, DEFAULT_LANES)
    from sw.driver import Driver

    Driver(gold).load_model(model)
    gold.write(regmap.REG["RUN_CONFIG"].offset, RUN_CONFIG["DEBUG_TAPS"].put(1))
    packets = packing.pack_images(x, model.config, np.arange(len(x)))
    answers = gold.run_images(list(packets))
    if answers is None:
        raise SystemExit("the golden transport refused the batch")
    taps, results, regs = [], [], []
    for outs, values in answers:
        tap, res = outs
        taps.append(tap)
        results.append(res)
        regs.append([int(values[name]) for name in RESULT_REGISTERS])
    ddr = record_ddr(model, packets, out, images, run_on_board)
    np.savez(out / "recording.npz", model_packet=packing.pack_model(model, DEFAULT_LANES), image_packets=packets,
             payloads=packets[:, 2:-1], results=np.stack(results), taps=np.stack(taps),
             registers=np.asarray(regs, dtype=np.int64), numpy_version=np.array(np.__version__), **ddr)
    (out / "manifest.json").write_text(json.dumps(gold.manifest(), indent=1, sort_keys=True) + "\n")
    (out / "dynaspike.bit").write_bytes(b"placeholder: the board lane's fake device does not read it\n")
    (out / "dynaspike.hwh").write_text("<!-- placeholder: the fake device gives pynq the parsed design -->\n")
    return {"images": len(x), "numpy": np.__version__, "out": os.fspath(out)}


def record_ddr(model, packets, out: Path, images: int, run_on_board) -> dict:
    """The same images with the model's weights in DDR (``Driver.load_model(model, weights_in_ddr=True)``):
    ``data_ddr.npz`` (``run_on_board --target board --weights-in-ddr --save-data``: the board's estimate, at
    the assumed DDR latency) and the recording's ``ddr_*`` arrays: the model packet without its weights, the
    weight buffer the golden transport was given, and its RESULT packets and registers (CYCLES at the
    simulated RAM's latency: a board whose DDR answers faster than the estimate assumes)."""
    from sw.driver import Driver

    rc = run_on_board["main"](["--images", str(images), "--save-data", str(out / "data_ddr.npz"), "--threads", "1",
                               "--target", "board", "--weights-in-ddr"])
    if rc:
        raise SystemExit(f"run_on_board.py --weights-in-ddr --save-data failed ({rc})")
    gold = GoldenTransport(model.config, DEFAULT_LANES)
    Driver(gold).load_model(model, weights_in_ddr=True)
    answers = gold.run_images(list(packets))
    if answers is None or len(gold.memory) != 1:
        raise SystemExit("the golden transport refused the batch with the weights in DDR")
    return {"ddr_model_packet": packing.pack_model(model, DEFAULT_LANES, weights_in_ddr=True),
            "ddr_weights": np.frombuffer(next(iter(gold.memory.values())), np.uint8),
            "ddr_results": np.stack([outs[-1] for outs, _ in answers]),
            "ddr_registers": np.asarray([[int(values[name]) for name in RESULT_REGISTERS] for _, values in answers],
                                        dtype=np.int64)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "board-lane"))
    ap.add_argument("--images", type=int, default=24)
    a = ap.parse_args(argv)
    print(f"board lane recording: {record(Path(a.out), a.images)}")


if __name__ == "__main__":
    main()
