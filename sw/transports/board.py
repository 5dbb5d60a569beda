"""The board transport: the core in the PYNQ-Z2's programmable logic, through pynq.

``BoardTransport(bitstream)`` loads ``<name>.bit`` with ``pynq.Overlay`` (its ``<name>.hwh`` beside it, as
pynq requires) and reads ``manifest.json`` from the same folder (``bitstreams/manifest.py``; the driver
checks it against the model). Registers: ``pynq.MMIO`` on the core's AXI4-Lite window (the block design's
cell ``dynaspike_core_0``, from ``overlay.ip_dict``). Streams: the AXI DMA ``axi_dma_0``; each packet is
copied into a physically contiguous ``pynq.allocate`` buffer of uint64 beats, ``sendchannel.transfer``
(MM2S) moves it to the core, ``recvchannel.transfer`` (S2MM) into a buffer of ``max_beats``, which the
DMA ends at TLAST. Waits poll the channel's ``idle`` flag against a wall-clock deadline, so a DMA that
never finishes raises ``DriverTimeout`` (and the DMA channel is stopped and restarted for the next try).

``pynq`` is imported here, lazily, and nowhere else: the rest of ``sw/`` runs off the board.
"""

import time
from pathlib import Path

import numpy as np

from ..errors import DriverError, DriverTimeout
from .base import Transport

CORE_CELL = "dynaspike_core_0"
DMA_CELL = "axi_dma_0"
POLL_S = 20e-6


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
        if core not in self.overlay.ip_dict:
            raise DriverError(f"the overlay has no IP {core!r}; it has {sorted(self.overlay.ip_dict)}")
        ip = self.overlay.ip_dict[core]
        self.mmio = pynq.MMIO(ip["phys_addr"], ip["addr_range"])
        self.dma = getattr(self.overlay, dma)
        self._send_buf = None

    def read(self, offset: int) -> int:
        return int(self.mmio.read(offset)) & 0xFFFFFFFF

    def write(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value) & 0xFFFFFFFF)

    def _buffer(self, beats: int):
        return self.pynq.allocate(shape=(beats,), dtype=np.uint64)

    def send(self, beats: np.ndarray, stage: str) -> None:
        buf = self._buffer(len(beats))
        buf[:] = beats
        buf.flush()
        self._send_buf = buf          # kept alive until wait_sent: the DMA reads it
        self.dma.sendchannel.transfer(buf)

    def _wait(self, channel, timeout: float, stage: str, what: str):
        deadline = time.monotonic() + timeout
        while not channel.idle:
            if time.monotonic() > deadline:
                channel.stop()        # abandon the transfer; the next transfer restarts the channel
                channel.start()
                raise DriverTimeout(stage, timeout, f"the AXI DMA {what} channel never went idle")
            time.sleep(POLL_S)

    def wait_sent(self, timeout: float, stage: str) -> None:
        if self._send_buf is None:
            return
        self._wait(self.dma.sendchannel, timeout, stage, "MM2S (send)")
        self._send_buf.freebuffer()
        self._send_buf = None

    def recv(self, max_beats: int, timeout: float, stage: str) -> np.ndarray:
        buf = self._buffer(max_beats)
        try:
            self.dma.recvchannel.transfer(buf)
            self._wait(self.dma.recvchannel, timeout, stage, "S2MM (receive)")
            buf.invalidate()
            # The packet's own length (header beat 1) says how many beats the DMA wrote before TLAST.
            n = 3 + (int(buf[1]) & 0xFFFFFFFF)
            if n > max_beats:
                raise DriverError(f"{stage}: header announces {n} beats, the buffer holds {max_beats}")
            return np.array(buf[:n], dtype=np.uint64)
        finally:
            buf.freebuffer()

    def manifest(self) -> dict:
        return self._manifest

    def pause(self) -> None:
        time.sleep(POLL_S)

    def close(self) -> None:
        if self._send_buf is not None:
            self._send_buf.freebuffer()
            self._send_buf = None

