"""The transport interface the driver talks through (``sw.driver.Driver``).

A transport moves 32-bit register words over AXI4-Lite and whole packets of 64-bit beats over the two
AXI4-Streams; it knows nothing of the protocol (that is the driver's). Contract:

- ``read(offset) -> int`` / ``write(offset, value)``: one AXI4-Lite access at a byte offset of the
  register window (``dynaspike.regmap``).
- ``send(beats, stage)``: start moving one packet (``np.uint64`` beats, TLAST on the last one) to the core's
  input stream; it may return before the core has taken every beat. ``wait_sent(timeout, stage)`` blocks
  until it has, or raises ``DriverTimeout(stage)``.
- ``recv(max_beats, timeout, stage) -> np.ndarray``: the next packet from the core's output stream (beats up
  to and including TLAST), or ``DriverTimeout(stage)``.
- ``now() -> float``: seconds on the transport's clock, used for the driver's polling deadlines (wall clock
  on the board and the golden model, simulated time in simulation); ``pause()`` is called between polls.
- ``manifest() -> dict``: the bitstream manifest (``bitstreams.manifest``) of the core behind it.
- ``place(data, stage) -> int``: copy ``data`` (bytes) into a buffer of the memory the core's AXI master reads
  (the board's DDR) at a ``dynaspike.ddr.BUFFER_ALIGN`` boundary and return its byte address; the buffer
  lives until ``close``, the next ``place`` (one weight buffer at a time) or ``release()``, which frees it
  (the driver's on-chip model loads: nothing is left for the core to read).
- ``limit(timeout) -> float``: the time-out actually applied (the simulation caps waits in simulated time).
- Optional ``run_images(packets) -> [(out_packets, regs)]``: a batched fast path for a transport whose core
  is a model (the golden one): for each image packet exactly what the per-image transaction would give:
  the output packets (TAP if RUN_CONFIG.DEBUG_TAPS, then RESULT) and the registers read after DONE
  (``sw.driver.RESULT_REGISTERS``), or None when it cannot answer exactly that (no model, an error state, a
  malformed packet): the driver then runs the per-image protocol. The driver parses both with the same code.
"""

import time

import numpy as np


class Transport:
    """Base class: wall-clock timing, no fast path. Subclasses implement the five transfer methods."""

    name = "abstract"
    run_images = None

    def read(self, offset: int) -> int:
        raise NotImplementedError

    def write(self, offset: int, value: int) -> None:
        raise NotImplementedError

    def send(self, beats: np.ndarray, stage: str) -> None:
        raise NotImplementedError

    def wait_sent(self, timeout: float, stage: str) -> None:
        raise NotImplementedError

    def recv(self, max_beats: int, timeout: float, stage: str) -> np.ndarray:
        raise NotImplementedError

    def manifest(self) -> dict:
        raise NotImplementedError

    def place(self, data: bytes, stage: str) -> int:
        from ..errors import DriverError
        raise DriverError(f"{stage}: the {self.name} transport has no memory for the core to read")

    def release(self) -> None:
        pass

    def now(self) -> float:
        return time.monotonic()

    def pause(self) -> None:
        pass

    def limit(self, timeout: float) -> float:
        return timeout

    def close(self) -> None:
        pass
