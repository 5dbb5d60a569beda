"""The board lane (``make test-board``, .venv-board: pynq 3.1.2, numpy 1.x, no torch): the board-side code
runs on the real pynq classes with only the hardware faked beneath them (tests/board_fakes.py), against
results recorded from the golden transport under numpy 2 (tests/board_record.py):

- the model and image packets packed here are the recorded numpy-2 packets, byte for byte;
- the driver over ``BoardTransport`` loads the model and runs images with and without taps: logits, CYCLES,
  every counter and tap equal the recording; every contiguous buffer is freed;
- a DMA that never finishes ends in ``DriverTimeout`` naming the stage, after a soft reset, never a hang;
- the same with the model's weights in DDR (``load_model(weights_in_ddr=True)``): the buffer from
  ``pynq.allocate``, flushed, at WEIGHTS_ADDR while the model runs, freed after;
- ``sw/run_on_board.py --target board --data F`` end to end: 100 % golden agreement, on chip and with
  ``--weights-in-ddr``;
- the bring-up sequence (``--bring-up``) passes every step.

In the default .venv these skip (no pynq); with ``DYNASPIKE_BOARD_LANE=1`` a missing piece fails instead.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
LANE = Path(os.environ.get("DYNASPIKE_BOARD_LANE_DIR", ROOT / "build" / "board-lane")).resolve()


def lane_or_skip():
    why = None
    if importlib.util.find_spec("pynq") is None:
        why = "pynq is not installed: the board lane (`make test-board`, .venv-board) runs this"
    elif not (LANE / "recording.npz").exists():
        why = f"no recording in {LANE}: `make test-board` makes it (tests/board_record.py in .venv)"
    if why:
        if os.environ.get("DYNASPIKE_BOARD_LANE"):
            pytest.fail(why + " - the board lane must run this test")
        pytest.skip(why)


@pytest.fixture(autouse=True)
def _lane():
    lane_or_skip()


@pytest.fixture(scope="module")
def dma_params():
    """The DMA's CONFIG as build.tcl sets it (recorded through tclsh): what the .hwh gives pynq."""
    if importlib.util.find_spec("pynq") is None:
        pytest.skip("pynq is not installed")
    from tcl_stub import design, run_build_tcl
    import tempfile
    p, calls = run_build_tcl(Path(tempfile.mkdtemp()))
    assert p.returncode == 0, p.stderr
    from sw.transports.board import DMA_CELL
    return design(calls)["config"][DMA_CELL]


@pytest.fixture
def board(dma_params):
    import board_fakes
    zynq = board_fakes.install(LANE, dma_params)
    yield zynq
    board_fakes.uninstall()


def first_difference(what, seen, expected):
    seen, expected = np.asarray(seen), np.asarray(expected)
    assert seen.shape == expected.shape, f"{what}: shape {seen.shape}, expected {expected.shape}"
    bad = np.argwhere(seen != expected)
    assert not len(bad), (f"{what}: {len(bad)} differences, first at index {tuple(bad[0])}: seen "
                          f"{seen[tuple(bad[0])]:#x}, expected {expected[tuple(bad[0])]:#x}")


def recording():
    with np.load(LANE / "recording.npz") as z:
        return {k: z[k] for k in z.files}


def model_and_data():
    from dynaspike.artifact import IntModel
    model = IntModel.load(ROOT / "train" / "shipped" / "digits.npz")
    return model, np.load(LANE / "data.npz")


def test_packets_are_byte_identical_to_the_numpy2_recording():
    from dynaspike import packing
    from dynaspike.cycles import DEFAULT_LANES
    rec = recording()
    model, data = model_and_data()
    assert np.__version__.startswith("1.") or not os.environ.get("DYNASPIKE_BOARD_LANE"), np.__version__
    assert str(rec["numpy_version"]).startswith("2."), f"recorded under numpy {rec['numpy_version']}"
    first_difference("model packet", packing.pack_model(model, DEFAULT_LANES), rec["model_packet"])
    imgs = data["images"]
    first_difference("image packets", packing.pack_images(imgs, model.config, np.arange(len(imgs))),
                     rec["image_packets"])
    for i in range(len(imgs)):
        first_difference(f"image {i} alone", packing.pack_image(imgs[i], model.config, i), rec["image_packets"][i])
    # and back: the parsers read the numpy-2 packets under this numpy
    cfg, params, lanes, _ = packing.unpack_model(rec["model_packet"])
    assert (cfg, params, lanes) == (model.config, model.params, DEFAULT_LANES)
    for i, (res, tap) in enumerate(zip(rec["results"], rec["taps"])):
        tag, logits, cycles, counts = packing.unpack_result(res, cfg.num_classes)
        first_difference(f"result {i} repacked", packing.pack_result(logits, cycles, counts, tag), res)
        tag_t, taps = packing.unpack_taps(tap, cfg)
        first_difference(f"taps {i} repacked", packing.pack_taps(taps, cfg, tag_t), tap)


def test_driver_on_the_real_pynq_classes_gives_the_recorded_answers(board):
    import pynq
    from pynq.lib.dma import DMA
    from sw.driver import RESULT_REGISTERS, Driver
    from sw.transports.board import BoardTransport
    rec = recording()
    model, data = model_and_data()
    t = BoardTransport(LANE / "dynaspike.bit")
    assert isinstance(t.overlay, pynq.Overlay) and isinstance(t.dma, DMA) and isinstance(t.mmio, pynq.MMIO)
    assert board.downloaded == [str(LANE / "dynaspike.bit")]
    d = Driver(t, timeout=2.0)
    cap = d.load_model(model)
    assert cap.lanes == board.core.cap.lanes
    n = 6
    for taps, stream in ((False, False), (True, False), (False, True)):   # stream: counters from the packets
        r = d.run(data["images"][:n], tags=np.arange(n) + 100, taps=taps, stream=stream)
        assert not board.core.complaints, board.core.complaints
        first_difference("tags", r.tags, np.arange(n) + 100)
        first_difference("logits", r.logits, data["logits"][:n])
        want_regs = rec["registers"][:n]
        for j, name in enumerate(RESULT_REGISTERS):
            got = r.cycles if name == "CYCLES" else r.counters[name]
            first_difference(name, got, want_regs[:, j])
        first_difference("CYCLES in RESULT", r.result_cycles, r.cycles)
        if taps:
            from dynaspike import packing
            for i in range(n):
                _, want = packing.unpack_taps(rec["taps"][i], model.config)
                for k, v in want.items():
                    first_difference(f"image {i} tap {k}", r.taps[k][i], v)
    t.close()
    # one buffer for the model; per image one to send and one per packet received (RESULT, + TAP with taps)
    want = 1 + n * (1 + 1) + n * (1 + 2) + n * (1 + 1)
    assert board.allocated == board.freed == want, (board.allocated, board.freed, want)


def test_driver_with_the_weights_in_ddr_on_the_real_pynq_classes(board):
    """load_model(weights_in_ddr=True): the weight buffer from pynq.allocate, flushed, page-aligned, its
    physical address in WEIGHTS_ADDR, alive while the model runs (the fake core reads it at every image,
    as the RTL's tiles do) and freed at close; the answers are the DDR-mode recording's."""
    from dynaspike import regmap
    from sw.driver import RESULT_REGISTERS, Driver
    from sw.transports.board import BoardTransport
    rec = recording()
    model, data = model_and_data()
    t = BoardTransport(LANE / "dynaspike.bit")
    d = Driver(t, timeout=2.0)
    d.load_model(model, weights_in_ddr=True)
    addr = board.core.weights_addr
    assert board.core.in_ddr and addr % 4096 == 0 and addr in board.ddr, (addr, sorted(board.ddr))
    assert regmap.REG["STATUS"].field("WEIGHTS_IN_DDR").get(t.read(regmap.REG["STATUS"].offset)) == 1
    n = 5
    for taps in (False, True):
        r = d.run(data["images"][:n], taps=taps)
        assert not board.core.complaints, board.core.complaints
        first_difference("logits", r.logits, data["logits"][:n])
        for j, name in enumerate(RESULT_REGISTERS):
            first_difference(name, r.cycles if name == "CYCLES" else r.counters[name], rec["ddr_registers"][:n, j])
    d.load_model(model)                               # back on chip: the weight buffer is freed
    assert not board.core.in_ddr and addr not in board.ddr
    r = d.run(data["images"][:2])
    first_difference("CYCLES on chip", r.cycles, rec["registers"][:2, RESULT_REGISTERS.index("CYCLES")])
    t.close()
    assert board.allocated == board.freed, (board.allocated, board.freed)


@pytest.mark.parametrize("stuck,stage", [("send", "model load: send"), ("recv", "image 0: receive RESULT")])
def test_a_dma_that_never_finishes_is_reset_and_times_out_naming_the_stage(dma_params, stuck, stage):
    import board_fakes
    from sw.driver import Driver
    from sw.errors import DriverTimeout
    from sw.transports.board import BoardTransport
    zynq = board_fakes.install(LANE, dma_params, stuck=stuck)
    try:
        model, data = model_and_data()
        t = BoardTransport(LANE / "dynaspike.bit")
        d = Driver(t, timeout=0.05)
        with pytest.raises(DriverTimeout, match=f"stage '{stage}'.*never went idle"):
            d.load_model(model)
            d.run(data["images"][:1])
        assert zynq.dma.resets == 1, zynq.dma.resets
        assert all(not c["halted"] for c in zynq.dma.ch.values()), "both channels run again after the reset"
        t.close()
        assert zynq.allocated == zynq.freed, (zynq.allocated, zynq.freed)
    finally:
        board_fakes.uninstall()


def run_script(args, capsys):
    import runpy
    mod = runpy.run_path(str(ROOT / "sw" / "run_on_board.py"))
    rc = mod["main"](args)
    return rc, capsys.readouterr().out


def test_run_on_board_end_to_end_with_data_file(board, tmp_path, capsys):
    out = tmp_path / "board.json"
    rc, text = run_script(["--target", "board", "--bitstream", str(LANE / "dynaspike.bit"), "--data",
                           str(LANE / "data.npz"), "--images", "10", "--json", str(out)], capsys)
    assert rc == 0, text
    assert "torch" not in sys.modules and "amaranth" not in sys.modules
    r = json.loads(out.read_text())
    assert (r["target"], r["images"], r["golden_agreement"], r["logits_bit_exact"]) == ("board", 10, 1.0, 1.0), r
    assert r["cycles_measured_mean"] == r["cycles_estimated_mean"], r
    assert "golden agreement 100.00 % (bit-exact logits 100.00 %)" in text


def test_run_on_board_with_the_weights_in_ddr_end_to_end(board, tmp_path, capsys):
    """--weights-in-ddr on the board from a data file written for it (estimates at the assumed DDR latency):
    exact logits; the recorded core's DDR answers faster than assumed, and the report says by how much."""
    out = tmp_path / "board.json"
    rc, text = run_script(["--target", "board", "--bitstream", str(LANE / "dynaspike.bit"), "--data",
                           str(LANE / "data_ddr.npz"), "--images", "6", "--weights-in-ddr", "--json", str(out)], capsys)
    assert rc == 0, text
    assert not board.core.complaints, board.core.complaints
    r = json.loads(out.read_text())
    assert (r["images"], r["golden_agreement"], r["logits_bit_exact"]) == (6, 1.0, 1.0), r
    assert 0 < r["cycles_measured_mean"] < r["cycles_estimated_mean"], r
    with pytest.raises(SystemExit, match="weights on chip"):          # a file written for the other memory
        run_script(["--target", "board", "--bitstream", str(LANE / "dynaspike.bit"), "--data",
                    str(LANE / "data.npz"), "--weights-in-ddr"], capsys)


def test_bring_up_passes_every_step(board, capsys):
    rc, text = run_script(["--target", "board", "--bring-up", "--bitstream", str(LANE / "dynaspike.bit"),
                           "--data", str(LANE / "data.npz"), "--images", "8"], capsys)
    assert rc == 0, text
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert f"[{step}]" in text and "FAIL" not in text, text
