"""The board transport: the core in the PYNQ-Z2's programmable logic, through pynq.

``BoardTransport(bitstream)`` loads ``<name>.bit`` with ``pynq.Overlay`` (its ``<name>.hwh`` beside it, as
pynq requires) and reads ``manifest.json`` from the same folder (``bitstreams/manifest.py``; the driver
checks it against the model). Registers: ``pynq.MMIO`` on the core's AXI4-Lite window (the block design's
cell ``CORE_CELL``, from ``overlay.ip_dict``). Streams: the AXI DMA ``DMA_CELL`` (``pynq.lib.dma.DMA``,
simple mode); each packet is copied into a physically contiguous ``pynq.allocate`` buffer of uint64 beats
and flushed, ``sendchannel.transfer`` (MM2S) moves it to the core, ``recvchannel.transfer`` (S2MM) into a
buffer of ``max_beats``, which the DMA ends at TLAST. Waits poll the channel's ``idle`` and ``error`` flags
against a wall-clock deadline: a DMA error raises ``DriverError`` naming the DMASR bits, a DMA that never
finishes raises ``DriverTimeout`` after a soft reset of the DMA (``DMACR.Reset``; ``channel.stop()`` would
spin forever in pynq while a transfer is in flight) and a restart of both channels, so the next try starts
clean. Every buffer is freed (contiguous memory is scarce on the board), on errors too.

``PYNQ_API`` lists every pynq name and call this module uses; ``tests/test_board_conformance.py`` checks it
against the installed pynq (the board lane, ``make test-board``) and checks that this module uses nothing
else. ``pynq`` is imported here, lazily, and nowhere else: the rest of ``sw/`` runs off the board.
"""

import time
from pathlib import Path

import numpy as np

from dynaspike.ddr import BUFFER_ALIGN

from ..errors import DriverError, DriverTimeout
from .base import Transport

CORE_CELL = "dynaspike_core_0"   # the block design's cell names (bitstreams/build.tcl creates them)
DMA_CELL = "axi_dma_0"
POLL_S = 20e-6
RESET_TIMEOUT_S = 0.1            # PG021: a soft reset ends within a few cycles once AXI traffic has drained

# AXI DMA (PG021) registers the transport touches itself; pynq drives the rest.
DMACR_RESET = 1 << 2             # MM2S_DMACR (0x00) bit 2: soft reset of the whole DMA, self-clearing
DMASR_ERRORS = {4: "DMAIntErr", 5: "DMASlvErr", 6: "DMADecErr"}  # MM2S_DMASR (0x04) / S2MM_DMASR (0x34)

# Every pynq name used below, for the conformance test: (dotted path under the pynq package, kind,
# parameters it is called with, by name). "attribute" is an instance attribute set by the constructor.
PYNQ_API = (
    ("Overlay", "class", ("bitfile_name",)),
    ("Overlay.ip_dict", "attribute", ()),
    ("Overlay.__getattr__", "method", ("key",)),          # overlay.<DMA_CELL>: the IP's driver
    ("MMIO", "class", ("base_addr", "length")),
    ("MMIO.read", "method", ("offset", "length")),
    ("MMIO.write_mm", "method", ("offset", "data")),      # MMIO.write on the board (MEMORY_MAPPED device)
    ("MMIO.write_reg", "method", ("offset", "data")),     # MMIO.write on a REGISTER_RW device
    ("allocate", "function", ("shape", "dtype")),
    ("buffer.PynqBuffer.flush", "method", ()),
    ("buffer.PynqBuffer.physical_address", "property", ()),
    ("buffer.PynqBuffer.invalidate", "method", ()),
    ("buffer.PynqBuffer.freebuffer", "method", ()),
    ("lib.dma.DMA", "class", ("description",)),
    ("lib.dma.DMA.sendchannel", "attribute", ()),
    ("lib.dma.DMA.recvchannel", "attribute", ()),
    ("lib.dma.DMA.mmio", "attribute", ()),
    ("lib.dma._SDMAChannel.transfer", "method", ("array",)),
    ("lib.dma._SDMAChannel.wait", "method", ()),
    ("lib.dma._SDMAChannel.start", "method", ()),
    ("lib.dma._SDMAChannel.idle", "property", ()),
    ("lib.dma._SDMAChannel.error", "property", ()),
    ("lib.dma._SDMAChannel.transferred", "attribute", ()),
)


class BoardTransport(Transport):
    name = "board"

    def __init__(self, bitstream, *, core: str = CORE_CELL, dma: str = DMA_CELL, manifest=None):
        import pynq  # the board's package; absent elsewhere (see ../shared/TOOLCHAIN.md)

        self.pynq = pynq
        path = Path(bitstream)
        if not path.exists():
            raise DriverError(f"bitstream {path} not found")
        if not path.with_suffix(".hwh").exists():
            raise DriverError(f"{path.with_suffix('.hwh')} not found: pynq needs the .hwh beside the .bit")
        man = Path(manifest) if manifest else path.parent / "manifest.json"
        from bitstreams import manifest as mf

        self._manifest = mf.load(man)
        self.overlay = pynq.Overlay(str(path))
        for cell in (core, dma):
            if cell not in self.overlay.ip_dict:
                raise DriverError(f"the overlay has no IP {cell!r}; it has {sorted(self.overlay.ip_dict)}")
        ip = self.overlay.ip_dict[core]
        self.mmio = pynq.MMIO(ip["phys_addr"], ip["addr_range"])
        self.dma = getattr(self.overlay, dma)
        self._send_buf = self._weights_buf = None

    def read(self, offset: int) -> int:
        return int(self.mmio.read(offset)) & 0xFFFFFFFF

    def write(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value) & 0xFFFFFFFF)  # a Python int: pynq refuses numpy integers

    def _buffer(self, beats: int):
        return self.pynq.allocate(shape=(beats,), dtype=np.uint64)

    def send(self, beats: np.ndarray, stage: str) -> None:
        self._free_send()
        buf = self._buffer(len(beats))
        buf[:] = beats
        buf.flush()
        self._send_buf = buf          # kept alive until wait_sent: the DMA reads it
        self.dma.sendchannel.transfer(buf)

    def _reset_dma(self, stage: str, timeout: float):
        """Soft-reset the DMA (both channels) and start both channels again; DriverTimeout if it stays in reset."""
        self.dma.mmio.write(0x00, DMACR_RESET)
        deadline = time.monotonic() + RESET_TIMEOUT_S
        while self.dma.mmio.read(0x00) & DMACR_RESET:
            if time.monotonic() > deadline:
                raise DriverTimeout(stage, timeout, "the AXI DMA never went idle, and stayed in soft reset: "
                                    "load the overlay again")
            time.sleep(POLL_S)
        self.dma.sendchannel.start()
        self.dma.recvchannel.start()

    def _wait(self, channel, timeout: float, stage: str, what: str, status: int):
        """Poll ``channel`` until idle, then ``channel.wait()`` (pynq's bookkeeping: ``transferred``, the S2MM
        invalidate). DMASR error bits -> DriverError; the deadline -> soft reset, then DriverTimeout."""
        deadline = time.monotonic() + timeout
        while True:
            if channel.error:
                bits = self.dma.mmio.read(status)
                names = [n for b, n in DMASR_ERRORS.items() if bits >> b & 1]
                self._reset_dma(stage, timeout)
                raise DriverError(f"{stage}: the AXI DMA {what} channel reports {'+'.join(names)} "
                                  f"(DMASR {bits:#010x})")
            if channel.idle:
                channel.wait()
                return
            if time.monotonic() > deadline:
                self._reset_dma(stage, timeout)
                raise DriverTimeout(stage, timeout, f"the AXI DMA {what} channel never went idle")
            time.sleep(POLL_S)

    def wait_sent(self, timeout: float, stage: str) -> None:
        if self._send_buf is None:
            return
        try:
            self._wait(self.dma.sendchannel, timeout, stage, "MM2S (send)", 0x04)
        finally:
            self._free_send()

    def recv(self, max_beats: int, timeout: float, stage: str) -> np.ndarray:
        buf = self._buffer(max_beats)
        try:
            self.dma.recvchannel.transfer(buf)
            self._wait(self.dma.recvchannel, timeout, stage, "S2MM (receive)", 0x34)
            buf.invalidate()
            # The packet's own length (header beat 1) says how many beats the DMA wrote before TLAST; the
            # S2MM length register (``transferred``, bytes) must agree.
            n = 3 + (int(buf[1]) & 0xFFFFFFFF)
            got = int(self.dma.recvchannel.transferred)
            if n > max_beats:
                raise DriverError(f"{stage}: header announces {n} beats, the buffer holds {max_beats}")
            if got != n * 8:
                raise DriverError(f"{stage}: the DMA wrote {got} bytes, the packet header announces {n} beats "
                                  f"({n * 8} bytes)")
            return np.array(buf[:n], dtype=np.uint64)
        finally:
            buf.freebuffer()

    def place(self, data: bytes, stage: str) -> int:
        self.release()
        buf = self.pynq.allocate(shape=(len(data),), dtype=np.uint8)   # page-aligned
        self._weights_buf = buf
        buf[:] = np.frombuffer(data, np.uint8)
        buf.flush()
        addr = int(buf.physical_address)
        if addr % BUFFER_ALIGN:
            raise DriverError(f"{stage}: pynq.allocate gave {addr:#x}, not a {BUFFER_ALIGN}-byte boundary")
        return addr

    def _free_send(self):
        if self._send_buf is not None:
            self._send_buf.freebuffer()
            self._send_buf = None

    def manifest(self) -> dict:
        return self._manifest

    def pause(self) -> None:
        time.sleep(POLL_S)

    def release(self) -> None:
        if self._weights_buf is not None:
            self._weights_buf.freebuffer()
            self._weights_buf = None

    def close(self) -> None:
        self._free_send()
        self.release()
