"""sw/transports/board.py against a fake ``pynq`` module (the board lane, tests/test_board_lane.py, runs it
on the real pynq classes with only the hardware faked) (Overlay, MMIO, allocate, AXI DMA channels) whose
programmable logic is the golden transport: the driver runs unchanged and gets the golden answers; a DMA
that never finishes ends in a time-out naming the stage; pynq is imported only by the board transport."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from dynaspike.artifact import IntModel
from sw.driver import Driver
from sw.errors import DriverError, DriverTimeout
from sw.transports.golden import GoldenTransport
from train import evaluate


class FakeBuffer(np.ndarray):
    """``pynq.allocate``'s result: an ndarray with cache maintenance calls (recorded)."""

    def flush(self):
        self.flushed = True

    def invalidate(self):
        self.invalidated = True

    def freebuffer(self):
        self.freed = True


class FakeChannel:
    def __init__(self, fpga, direction, stuck=False):
        self.fpga, self.direction, self.stuck = fpga, direction, stuck
        self.idle, self.error, self.transfers, self.restarts, self.transferred = True, False, 0, 0, 0

    def transfer(self, buf):
        self.transfers += 1
        if self.stuck:
            self.idle = False
            return
        if self.direction == "send":
            assert getattr(buf, "flushed", False), "the buffer was not flushed before the DMA read it"
            self.fpga.send(np.array(buf), "fake DMA")
            self.transferred = buf.nbytes
        else:
            pkt = self.fpga.out.pop(0) if self.fpga.out else None
            if pkt is None:
                self.idle = False        # waits for a TLAST that never comes
                return
            buf[:len(pkt)] = pkt
            self.transferred = len(pkt) * 8

    def wait(self):
        assert self.idle, "pynq's wait() spins until idle: call it only once the channel is idle"

    def start(self):
        self.restarts += 1
        self.idle = True


class FakeDmaRegisters:
    """MM2S_DMACR's soft-reset bit (self-clearing at once)."""

    def __init__(self):
        self.resets = 0

    def write(self, offset, value):
        assert offset == 0x00 and value == 0x4, (offset, value)
        self.resets += 1

    def read(self, offset):
        return 0


def fake_pynq(fpga, stuck=None):
    mod = types.ModuleType("pynq")
    mod.opened = []

    class Overlay:
        def __init__(self, path):
            mod.opened.append(path)
            self.ip_dict = {"dynaspike_core_0": {"phys_addr": 0x43C00000, "addr_range": 0x1000},
                            "axi_dma_0": {"phys_addr": 0x40400000, "addr_range": 0x10000}}
            self.axi_dma_0 = types.SimpleNamespace(sendchannel=FakeChannel(fpga, "send", stuck == "send"),
                                                   recvchannel=FakeChannel(fpga, "recv", stuck == "recv"),
                                                   mmio=FakeDmaRegisters())

    class MMIO:
        def __init__(self, base, length):
            assert (base, length) == (0x43C00000, 0x1000)

        def read(self, offset):
            return fpga.read(offset)

        def write(self, offset, value):
            fpga.write(offset, value)

    def allocate(shape, dtype):
        return np.zeros(shape, dtype).view(FakeBuffer)

    mod.Overlay, mod.MMIO, mod.allocate = Overlay, MMIO, allocate
    return mod


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    model = IntModel.load(evaluate.SHIPPED_MODEL)
    return model, evaluate.test_split(model)[0]


@pytest.fixture
def board_files(tmp_path, shipped):
    fpga = GoldenTransport(shipped[0].config, 64)
    (tmp_path / "dynaspike.bit").write_bytes(b"bit")
    (tmp_path / "dynaspike.hwh").write_text("<hwh/>")
    (tmp_path / "manifest.json").write_text(json.dumps(fpga.manifest()))
    return tmp_path, fpga


def board(monkeypatch, board_files, stuck=None):
    from sw.transports.board import BoardTransport
    path, fpga = board_files
    fpga.run_images = None
    mod = fake_pynq(fpga, stuck)
    monkeypatch.setitem(sys.modules, "pynq", mod)
    return BoardTransport(path / "dynaspike.bit"), mod


def test_driver_on_the_fake_board_gives_the_golden_answers(monkeypatch, board_files, shipped):
    model, x = shipped
    t, mod = board(monkeypatch, board_files)
    assert mod.opened == [str(board_files[0] / "dynaspike.bit")]
    d = Driver(t, timeout=0.5)
    d.load_model(model)
    r = d.run(x[:6], tags=np.arange(6) + 40)
    ref = Driver(GoldenTransport(model.config, 64))
    ref.load_model(model)
    want = ref.run(x[:6], tags=np.arange(6) + 40)
    assert not r.batched
    for f in ("tags", "logits", "cycles"):
        np.testing.assert_array_equal(getattr(r, f), getattr(want, f), err_msg=f)
    for k in want.counters:
        np.testing.assert_array_equal(r.counters[k], want.counters[k], err_msg=k)
    dma = t.dma
    assert dma.sendchannel.transfers == 1 + 6 and dma.recvchannel.transfers == 6
    assert (r.wall_s > 0).all()


@pytest.mark.parametrize("stuck,stage", [("send", "model load: send"), ("recv", "image 0: receive RESULT")])
def test_a_dma_that_never_finishes_times_out_naming_the_stage(monkeypatch, board_files, shipped, stuck, stage):
    model, x = shipped
    t, _ = board(monkeypatch, board_files, stuck=stuck)
    d = Driver(t, timeout=0.05)
    with pytest.raises(DriverTimeout, match=f"stage '{stage}'.*never went idle"):
        d.load_model(model)
        d.run(x[:1])
    assert t.dma.mmio.resets == 1                        # a soft reset, then both channels started again
    assert t.dma.sendchannel.restarts == t.dma.recvchannel.restarts == 1
    channel = t.dma.sendchannel if stuck == "send" else t.dma.recvchannel
    assert channel.idle


def test_missing_hwh_or_manifest_is_refused(monkeypatch, board_files):
    path, fpga = board_files
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq(fpga))
    from sw.transports.board import BoardTransport
    (path / "manifest.json").unlink()
    with pytest.raises(DriverError, match="cannot read the bitstream manifest"):
        BoardTransport(path / "dynaspike.bit")
    (path / "dynaspike.hwh").unlink()
    with pytest.raises(DriverError, match=r"dynaspike.hwh not found: pynq needs the .hwh"):
        BoardTransport(path / "dynaspike.bit")


def test_board_side_modules_need_no_torch_amaranth_cocotb_or_pynq():
    code = ("import sys; import sw.driver, sw.transports.board, bitstreams.manifest; "
            "bad = [m for m in ('torch', 'amaranth', 'cocotb', 'pynq') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=evaluate.SHIPPED_MODEL.rsplit("/train/", 1)[0])
