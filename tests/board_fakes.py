"""The PYNQ-Z2's hardware, faked beneath the real pynq classes (the board lane: needs pynq, not torch).

What is real: ``pynq.Overlay`` (its constructor, IP-driver binding by VLNV, ``ip_dict``), ``pynq.MMIO``,
``pynq.allocate`` / ``pynq.buffer.PynqBuffer`` and ``pynq.lib.dma.DMA`` with its ``_SDMAChannel``s. What is
fake, below them:

- ``FakeZynq``, a ``pynq.Device``: registers through the REGISTER_RW capability (so every ``MMIO`` access
  reaches ``read_registers`` / ``write_registers``; on the board it is a MEMORY_MAPPED ``/dev/mem`` view,
  the same ``MMIO.read`` with ``write_mm``); DDR is a separate copy of every buffer, so a buffer the
  CPU did not ``flush`` reaches the DMA stale and one it did not ``invalidate`` reads back stale; buffers
  count their frees; ``get_bitfile_metadata`` returns what pynq parses from the ``.hwh`` of
  bitstreams/build.tcl's design (cells, addresses, the DMA's parameters).
- ``FakeAxiDma``: the AXI DMA's simple-mode registers (PG021: DMACR, DMASR, SA/DA, LENGTH per channel;
  RS=0 halts only once a transfer in flight has ended, the soft reset ends it).
- ``FakeCore``: the core's register map and stream protocol (``dynaspike.regmap``, ``dynaspike.packing``):
  it parses model packets (with the board's numpy), and answers each image packet with the results
  recorded from the golden transport under numpy 2 (``tests/board_record.py``), re-tagged. A model packet
  without its weights (STATUS.WEIGHTS_IN_DDR) has it read the weight buffer at WEIGHTS_ADDR from the DDR
  copy at every image, as the RTL's AXI master does: a buffer that is not allocated answers AXI_ERROR, one
  that differs from the recorded (not flushed, moved, freed) gets no answer.
"""

import ctypes
import json
from pathlib import Path

import numpy as np
import pynq
from pynq.buffer import PynqBuffer

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.regmap import REG, ErrorCode
from sw.driver import RESULT_REGISTERS
from sw.transports.board import CORE_CELL, DMA_CELL

CORE_BASE, DMA_BASE = 0x43C0_0000, 0x4040_0000   # GP0 addresses assign_bd_address gives these cells
DMA_RANGE = 0x1_0000
DDR_BASE = 0x1600_0000                            # where the fake's contiguous buffers start
CORE_VLNV = "xilinx.com:module_ref:dynaspike_core_axi:1.0"
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
# The AXI DMA's CONFIG parameters that build.tcl leaves at their defaults (PG021), as the .hwh lists them.
DMA_DEFAULTS = {"c_include_mm2s": "1", "c_include_s2mm": "1", "c_include_mm2s_dre": "0",
                "c_include_s2mm_dre": "0", "c_micro_dma": "0"}
MAX_SPINS = 100_000   # polls of a register that cannot change: a loop in pynq that would spin forever


class HardwareFault(AssertionError):
    """The software did something the hardware would punish (a hang, a stale buffer)."""


class FakeCore:
    """The core behind its AXI4-Lite window and two streams, replaying recorded results.

    ``recording``: ``{"model_packet", "payloads" (N, beats), "results" (N, rb), "taps" (N, tb),
    "registers" (N, len(RESULT_REGISTERS))}`` (``tests/board_record.py``); ``capacity``: a
    ``regmap.Capacity``. Input packets arrive whole (``take``); output packets leave whole (``out``).
    ``complaints`` lists what the fake refused, for the test's message.
    """

    def __init__(self, capacity, recording: dict):
        self.cap, self.rec = capacity, recording
        self.keys = {np.asarray(p, dtype="<u8").tobytes(): i for i, p in enumerate(recording["payloads"])}
        self.complaints, self.out = [], []
        self.model_cfg = None
        self.run_config = self.images_done = 0
        self.pending = None            # an image packet waiting for START (RUN_CONFIG.STREAM: none waits)
        self.started = False
        self.error = (ErrorCode.NONE, 0)
        self.done, self.regs = False, {}
        self.in_ddr, self.weights_addr = False, 0
        self.ddr_read = None           # FakeZynq.ddr_read: what the core's AXI4 master m_axi reads

    # registers
    def read(self, offset: int) -> int:
        cap = self.cap.register_values()
        if offset in cap:
            return cap[offset]
        if offset == REG["ID"].offset:
            return regmap.CORE_MAGIC
        if offset == REG["VERSION"].offset:
            return regmap.REGMAP_VERSION | packing.STREAM_VERSION << 16
        if offset == REG["STATUS"].offset:
            st = {f.name: f for f in REG["STATUS"].fields}
            loaded = self.model_cfg is not None
            return (st["DONE"].put(int(self.done)) | st["ERROR"].put(int(self.error[0] != 0))
                    | st["MODEL_LOADED"].put(int(loaded)) | st["WEIGHTS_IN_DDR"].put(int(loaded and self.in_ddr)))
        if offset == REG["WEIGHTS_ADDR"].offset:
            return self.weights_addr
        if offset == REG["ERROR_CODE"].offset:
            return self.error[0]
        if offset == REG["ERROR_BEAT"].offset:
            return self.error[1]
        if offset == REG["RUN_CONFIG"].offset:
            return self.run_config
        if offset == REG["IMAGES_DONE"].offset:
            return self.images_done & 0xFFFFFFFF
        for name in RESULT_REGISTERS:
            r = REG[name]
            if offset in ((r.offset, r.offset + 4) if r.bits == 64 else (r.offset,)) and self.regs:
                v = int(self.regs[name])
                return v & 0xFFFFFFFF if offset == r.offset else v >> 32
        for f in ModelConfig.__dataclass_fields__:
            if offset == REG[f"MODEL_{f.upper()}"].offset:
                return getattr(self.model_cfg, f) if self.model_cfg else 0
        return 0

    def write(self, offset: int, value: int):
        if offset == REG["RUN_CONFIG"].offset:
            self.run_config = value & sum(f.mask for f in REG["RUN_CONFIG"].fields)
        elif offset == REG["WEIGHTS_ADDR"].offset:
            self.weights_addr = value & 0xFFFF_FFF8                 # bits 2:0 read as zero (a beat's address)
        elif offset == REG["CTRL"].offset:
            ctrl = {f.name: f for f in REG["CTRL"].fields}
            if ctrl["SOFT_RESET"].get(value):
                self.error, self.done, self.pending, self.started, self.out = (0, 0), False, None, False, []
            if ctrl["UNLOAD"].get(value):
                self.model_cfg, self.in_ddr = None, False
            if ctrl["START"].get(value):
                self.started, self.done = True, False
                self._maybe_run()

    # streams
    def take(self, beats: np.ndarray):
        """One whole input packet (TLAST on its last beat)."""
        if self.error[0]:
            return                                              # dropped until SOFT_RESET, as in the RTL
        beats = np.asarray(beats, dtype=np.uint64)
        try:
            kind = (int(beats[0]) >> 40) & 0xFF
            if kind == packing.Kind.MODEL:
                # the packet with its weights, or (WEIGHTS_IN_DDR) without: the one whose length it has
                ddr = len(beats) == len(self.rec["ddr_model_packet"])
                want = np.asarray(self.rec["ddr_model_packet" if ddr else "model_packet"], dtype=np.uint64)
                if len(beats) != len(want) or (beats != want).any():
                    bad = int(np.flatnonzero(beats[:len(want)] != want[:len(beats)])[0]) \
                        if (beats[:len(want)] != want[:len(beats)]).any() else min(len(beats), len(want))
                    self.complaints.append(f"model packet differs from the recorded one at beat {bad}: "
                                           f"{len(beats)} beats, recorded {len(want)}")
                    self.error = (ErrorCode.BAD_LENGTH, bad)
                    return
                cfg, _, lanes, _ = packing.unpack_model(beats)
                if lanes != self.cap.lanes:
                    self.error = (ErrorCode.LANES_MISMATCH, 1)
                    return
                self.model_cfg, self.in_ddr = cfg, ddr
            elif kind == packing.Kind.IMAGE:
                if self.model_cfg is None:
                    self.error = (ErrorCode.NO_MODEL, 0)
                    return
                self.pending = beats
                if REG["RUN_CONFIG"].field("STREAM").get(self.run_config):   # the packet starts itself
                    self.started, self.done = True, False
                self._maybe_run()
            else:
                self.error = (ErrorCode.BAD_KIND, 0)
        except packing.PackingError as e:
            self.complaints.append(f"input packet refused: {e}")
            self.error = (ErrorCode.BAD_CHECKSUM if "checksum" in str(e) else ErrorCode.BAD_MAGIC, 0)

    def _maybe_run(self):
        if not (self.started and self.pending is not None):
            return
        tag, payload = packing.parse_packet(self.pending, packing.Kind.IMAGE)
        self.pending, self.started = None, False
        i = self.keys.get(np.asarray(payload, dtype="<u8").tobytes())
        if i is None:
            self.complaints.append(f"image packet (tag {tag}) is not in the recording: no answer")
            return                                              # like a core that never finishes
        cfg = self.model_cfg
        if self.in_ddr and not self._weights_ok():
            return
        if self.run_config & 1:                                 # RUN_CONFIG.DEBUG_TAPS
            _, taps = packing.unpack_taps(self.rec["taps"][i], cfg)
            self.out.append(packing.pack_taps(taps, cfg, tag))
        ddr = "ddr_" if self.in_ddr else ""
        _, logits, cycles, counts = packing.unpack_result(self.rec[ddr + "results"][i], cfg.num_classes)
        self.out.append(packing.pack_result(logits, cycles, counts, tag))
        self.regs = dict(zip(RESULT_REGISTERS, (int(v) for v in self.rec[ddr + "registers"][i])))
        self.images_done += 1
        self.done = True

    def _weights_ok(self) -> bool:
        """Read the weight buffer as the core's tiles do: AXI_ERROR where it is not in DDR; False (no
        answer, as a core computing from other weights would give a wrong one) where it is not the recorded."""
        want = np.asarray(self.rec["ddr_weights"], dtype=np.uint8)
        try:
            got = np.frombuffer(self.ddr_read(self.weights_addr, len(want)), np.uint8)
        except HardwareFault as e:
            self.complaints.append(f"weight buffer: {e}")
            self.error = (ErrorCode.AXI_ERROR, 0)
            return False
        if (got != want).any():
            self.complaints.append(f"weight buffer at {self.weights_addr:#x} differs from the recorded one at byte "
                                   f"{int(np.flatnonzero(got != want)[0])} (not flushed?)")
            return False
        return True


class FakeAxiDma:
    """PG021 simple mode, both channels: what pynq's ``_SDMAChannel`` and the transport's reset touch."""

    def __init__(self, zynq, core: FakeCore, stuck: str | None = None):
        self.zynq, self.core, self.stuck = zynq, core, stuck
        self.ch = {0x00: self._channel(), 0x30: self._channel()}
        self.resets = 0

    @staticmethod
    def _channel():
        return {"rs": False, "halted": True, "idle": False, "err": 0, "addr": 0, "length": 0,
                "inflight": False, "spins": 0}

    def read(self, off: int) -> int:
        base, reg = (0x30, off - 0x30) if off >= 0x30 else (0x00, off)
        c = self.ch[base]
        if reg == 0x00:
            return int(c["rs"])
        if reg == 0x04:
            if base == 0x30 and c["inflight"]:
                self._s2mm()
            c["spins"] += 1
            if c["spins"] > MAX_SPINS:
                raise HardwareFault(f"DMASR at {off:#x} polled {MAX_SPINS} times without a change: a loop that "
                                    "spins forever on the board (e.g. channel.stop() with a transfer in flight)")
            return int(c["halted"]) | int(c["idle"]) << 1 | c["err"]
        if reg == 0x28:
            return c["length"]
        return 0

    def write(self, off: int, value: int):
        base, reg = (0x30, off - 0x30) if off >= 0x30 else (0x00, off)
        c = self.ch[base]
        c["spins"] = 0
        if reg == 0x00:
            if value & 0x4:                                     # soft reset: both channels, transfers dropped
                self.resets += 1
                self.ch = {0x00: self._channel(), 0x30: self._channel()}
                return
            c["rs"] = bool(value & 1)
            if c["rs"]:
                c["halted"] = False
            elif not c["inflight"]:
                c["halted"] = True                              # else: halts when the transfer ends (never)
        elif reg == 0x04:
            c["err"] &= ~(value & 0x7000)
        elif reg == 0x18:
            c["addr"] = (c["addr"] & ~0xFFFFFFFF) | value
        elif reg == 0x1C:
            c["addr"] = (c["addr"] & 0xFFFFFFFF) | value << 32
        elif reg == 0x28:
            if not c["rs"]:
                raise HardwareFault(f"LENGTH written to a halted channel at {off:#x}")
            c["length"], c["idle"], c["inflight"] = value, False, True
            if base == 0x00:
                self._mm2s()
            else:
                self._s2mm()

    def _mm2s(self):
        c = self.ch[0x00]
        if self.stuck == "send":
            return
        data = self.zynq.ddr_read(c["addr"], c["length"])
        self.core.take(np.frombuffer(data, dtype="<u8").astype(np.uint64))
        c["idle"], c["inflight"] = True, False

    def _s2mm(self):
        c = self.ch[0x30]
        if self.stuck == "recv" or not self.core.out:
            return                                              # waits for TLAST
        pkt = np.asarray(self.core.out.pop(0), dtype="<u8").tobytes()
        if len(pkt) > c["length"]:
            raise HardwareFault(f"S2MM buffer of {c['length']} bytes, the packet has {len(pkt)}")
        self.zynq.ddr_write(c["addr"], pkt)
        c["length"], c["idle"], c["inflight"] = len(pkt), True, False


class FakeHwh:
    """What pynq's hwh parser gives for bitstreams/build.tcl's design (``dma_params`` from its CONFIG)."""

    def __init__(self, dma_params: dict):
        ip = lambda name, vlnv, base, rng, params: {  # noqa: E731
            "fullpath": name, "type": vlnv, "bdtype": None, "state": None, "phys_addr": base,
            "addr_range": rng, "mem_id": f"SEG_{name}_Reg", "memtype": "REGISTER", "gpio": {},
            "interrupts": {}, "parameters": params, "registers": {}}
        self.ip_dict = {CORE_CELL: ip(CORE_CELL, CORE_VLNV, CORE_BASE, 1 << regmap.ADDR_BITS, {}),
                        DMA_CELL: ip(DMA_CELL, DMA_VLNV, DMA_BASE, DMA_RANGE, {**DMA_DEFAULTS, **dma_params})}
        self.mem_dict, self.gpio_dict, self.interrupt_pins = {}, {}, {}
        self.interrupt_controllers, self.hierarchy_dict, self.clock_dict = {}, {}, {}
        self.systemgraph = None


class FakeZynq(pynq.Device):
    """The PYNQ-Z2's PS as pynq sees it: register access, contiguous DDR buffers, bitstream download."""

    def __init__(self, core: FakeCore, dma_params: dict, stuck: str | None = None):
        super().__init__("fake-pynq-z2")
        self.capabilities = {"REGISTER_RW": True}
        self.core, self.hwh = core, FakeHwh(dma_params)
        self.dma = FakeAxiDma(self, core, stuck)
        core.ddr_read = self.ddr_read
        self.ddr, self.next_addr = {}, DDR_BASE
        self.allocated = self.freed = 0
        self.downloaded = []

    # pynq.Device interface
    def get_bitfile_metadata(self, bitfile_name):
        return self.hwh

    def download(self, bitstream, parser=None):
        self.downloaded.append(bitstream.bitfile_name)

    def read_registers(self, address: int, length: int) -> bytes:
        return self._target(address)[0].read(self._target(address)[1]).to_bytes(length, "little")

    def write_registers(self, address: int, data: bytes):
        dev, off = self._target(address)
        dev.write(off, int.from_bytes(data, "little"))

    def _target(self, address: int):
        if CORE_BASE <= address < CORE_BASE + (1 << regmap.ADDR_BITS):
            return self.core, address - CORE_BASE
        if DMA_BASE <= address < DMA_BASE + DMA_RANGE:
            return self.dma, address - DMA_BASE
        raise HardwareFault(f"register access at {address:#010x}: no IP there (a decode error on the board)")

    def allocate(self, shape, dtype, **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        addr = self.next_addr
        self.next_addr += -(-nbytes // 4096) * 4096
        self.ddr[addr] = bytearray(nbytes)                      # what the DMA sees
        buf = PynqBuffer(shape, dtype, device=self, device_address=addr, bo=addr, coherent=False)
        buf[...] = 0
        # freebuffer() -> return_pointer(addr) once (pynq's pointer-pool path); freed=True keeps pynq's
        # munmap branch, for buffers it mapped itself, from running when the pointer is already returned.
        buf.memory, buf.pointer, buf.return_to, buf.freed = self, addr, self, True
        self.allocated += 1
        return buf

    def return_pointer(self, pointer):
        if pointer not in self.ddr:
            raise HardwareFault(f"buffer at {pointer:#x} freed twice")
        del self.ddr[pointer]
        self.freed += 1

    def flush(self, bo, offset, vaddr, nbytes):
        self._region(bo)[offset:offset + nbytes] = bytes((ctypes.c_uint8 * nbytes).from_address(vaddr))

    def invalidate(self, bo, offset, vaddr, nbytes):
        ctypes.memmove(vaddr, bytes(self._region(bo)[offset:offset + nbytes]), nbytes)

    def _region(self, bo):
        if bo not in self.ddr:
            raise HardwareFault(f"buffer at {bo:#x} used after freebuffer")
        return self.ddr[bo]

    def ddr_read(self, addr: int, n: int) -> bytes:
        for base, mem in self.ddr.items():
            if base <= addr and addr + n <= base + len(mem):
                return bytes(mem[addr - base:addr - base + n])
        raise HardwareFault(f"DMA read of {n} bytes at {addr:#x}: not an allocated buffer")

    def ddr_write(self, addr: int, data: bytes):
        for base, mem in self.ddr.items():
            if base <= addr and addr + len(data) <= base + len(mem):
                mem[addr - base:addr - base + len(data)] = data
                return
        raise HardwareFault(f"DMA write of {len(data)} bytes at {addr:#x}: not an allocated buffer")


def load_lane(folder) -> tuple:
    """``(capacity, recording dict, manifest dict)`` from the board lane's folder (tests/board_record.py)."""
    folder = Path(folder)
    man = json.loads((folder / "manifest.json").read_text())
    with np.load(folder / "recording.npz") as z:
        rec = {k: z[k] for k in z.files}
    return regmap.Capacity(**man["capacity"]), rec, man


def install(folder, dma_params: dict, stuck: str | None = None) -> FakeZynq:
    """A FakeZynq over the lane's recording, made pynq's active device (undo with ``uninstall``)."""
    cap, rec, _ = load_lane(folder)
    zynq = FakeZynq(FakeCore(cap, rec), dma_params, stuck)
    pynq.Device.active_device = zynq
    return zynq


def uninstall():
    if hasattr(pynq.Device, "_active_device"):
        del pynq.Device._active_device
