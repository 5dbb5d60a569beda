"""The driver: load a model into the core and run images on it, over any transport (``sw.transports``).

The protocol (docs/hardware.md, ``dynaspike.regmap``, ``dynaspike.packing``) lives here and only here; a
transport only moves register words and packets. So the board, the simulated core and the golden model
run exactly this code.

- ``capacity()``: checks ID and VERSION, returns ``regmap.Capacity`` read from the core.
- ``load_model(model)``: refuses, before any transfer, a model that does not fit (``packing.CapacityError``
  naming every exceeded limit) or that disagrees with the bitstream's manifest (``ManifestError``); then
  SOFT_RESET, UNLOAD, streams ``packing.pack_model`` and polls STATUS until MODEL_LOADED; checks that the
  MODEL_* registers read back the model's configuration. ``load_model(model, weights_in_ddr=True)`` first
  places the model's weight buffer (``dynaspike.ddr.pack_weights``) in the memory the core reads
  (``transport.place``: ``pynq.allocate`` on the board) and writes its address to WEIGHTS_ADDR; the model
  packet leaves the weights, biases and thresholds out, and the core reads them tile by tile during each
  inference (docs/hardware.md, "DDR mode"): a failed read ends the inference in AXI_ERROR, a read that never
  returns in the run's DriverTimeout. A model loaded on chip releases an earlier one's weight buffer.
- ``run(images, tags=None, taps=False, dense=False, stream=False) -> RunResult``: refuses wrong shapes or
  dtypes (``ImageError``) before any transfer; per image: send the image packet, CTRL.START, receive the TAP
  packet (if ``taps``) and the RESULT packet, wait for STATUS.DONE, read CYCLES and the performance
  counters (and check that the RESULT packet carries the same). With ``stream``, RUN_CONFIG.STREAM: every
  image packet starts itself, the next one is sent while the core runs this one (its intake, embedding and
  merge overlap this one's blocks), and each image's CYCLES and counters come from its RESULT packet.
- ``read_counters()``, ``soft_reset()``.

Every wait has a deadline (``timeout`` seconds, on the transport's clock) and ends in ``DriverTimeout``
naming its stage; STATUS.ERROR ends in ``CoreError`` naming the ``regmap.ErrorCode``.
"""

import time
from dataclasses import dataclass, field, fields

import numpy as np

from dynaspike import ddr, packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.regmap import REG

from .errors import CoreError, DriverError, DriverTimeout, ImageError

STATUS = REG["STATUS"]
BIT = {f.name: f for f in STATUS.fields}
CTRL = {f.name: f for f in REG["CTRL"].fields}
RUN_CONFIG = {f.name: f for f in REG["RUN_CONFIG"].fields}
COUNTERS = tuple(name for name, _ in regmap.PERF_COUNTERS)
# What the driver reads after each image's DONE: the 64-bit cycle count and every performance counter.
RESULT_REGISTERS = ("CYCLES",) + COUNTERS
DEFAULT_TIMEOUT_S = 5.0


def result_beats(cfg: ModelConfig) -> int:
    """Beats of a RESULT packet: header (2), the payload (``packing.result_payload_beats``), the trailer."""
    return 3 + packing.result_payload_beats(cfg.num_classes)


def tap_beats(cfg: ModelConfig) -> int:
    """Beats of a TAP packet: header (2), each ``packing.TAP_FIELDS`` entry on whole beats, the trailer."""
    per_beat = packing.BEAT_BITS // packing.TAP_BITS
    return 3 + sum(-(-int(np.prod(shape(cfg))) // per_beat) for _, shape, _ in packing.TAP_FIELDS)


@dataclass
class RunResult:
    """Per image (B of them): what the core answered and what the driver measured."""

    tags: np.ndarray                 # (B,) the image tags sent, echoed by the core
    logits: np.ndarray               # (B, classes) int64
    cycles: np.ndarray               # (B,) int64, the CYCLES register (the RESULT packet's in a stream)
    result_cycles: np.ndarray        # (B,) int64, the cycle count inside the RESULT packet
    counters: dict                   # name -> (B,) int64, every regmap.PERF_COUNTERS entry (registers, or
                                     # the RESULT packet's in a stream)
    wall_s: np.ndarray               # (B,) seconds of wall clock per image (batch time / B when batched)
    batched: bool = False            # the transport's batched fast path ran (wall_s is a batch average)
    taps: dict = field(default_factory=dict)  # name -> (B, ...) int64 when run(taps=True)

    @property
    def pred(self) -> np.ndarray:
        return self.logits.argmax(axis=1)  # ties go to the lowest index, as in the golden model

    def to_dict(self) -> dict:
        """JSON-serialisable (lists); :meth:`from_dict` restores it exactly."""
        arr = lambda a: np.asarray(a).tolist()  # noqa: E731
        return {"tags": arr(self.tags), "logits": arr(self.logits), "cycles": arr(self.cycles),
                "result_cycles": arr(self.result_cycles), "counters": {k: arr(v) for k, v in self.counters.items()},
                "wall_s": arr(self.wall_s), "batched": self.batched, "taps": {k: arr(v) for k, v in self.taps.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        i64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
        return cls(tags=i64(d["tags"]), logits=i64(d["logits"]).reshape(len(d["tags"]), -1),
                   cycles=i64(d["cycles"]), result_cycles=i64(d["result_cycles"]),
                   counters={k: i64(v) for k, v in d["counters"].items()},
                   wall_s=np.asarray(d["wall_s"], dtype=float), batched=d["batched"],
                   taps={k: i64(v) for k, v in d["taps"].items()})


class Driver:
    """One core behind one transport. Not thread-safe: one call at a time."""

    def __init__(self, transport, timeout: float = DEFAULT_TIMEOUT_S):
        self.transport = transport
        self.timeout = timeout
        self.model = None
        self._cap = None

    # ---------------------------------------------------------------------------------------- registers
    def _read(self, name: str) -> int:
        reg = REG[name]
        lo = self.transport.read(reg.offset)
        if reg.bits == 64:
            return lo | (self.transport.read(reg.offset + 4) << 32)  # LO first: it snapshots HI
        return lo

    def _command(self, name: str):
        self.transport.write(REG["CTRL"].offset, CTRL[name].put(1))

    def read_counters(self) -> dict:
        """``{name: value}`` of CYCLES and every performance counter (the last inference's)."""
        return {name: self._read(name) for name in RESULT_REGISTERS}

    def soft_reset(self):
        """CTRL.SOFT_RESET: abort any transfer or inference, clear ERROR and DONE; the model stays loaded."""
        self._command("SOFT_RESET")

    def capacity(self) -> regmap.Capacity:
        """Check the ID and VERSION registers; return the capacity the core reports."""
        ident = self._read("ID")
        if ident != regmap.CORE_MAGIC:
            raise DriverError(f"ID register reads {ident:#010x}, not the core's {regmap.CORE_MAGIC:#010x}: "
                              "wrong bitstream or address")
        ver = self._read("VERSION")
        rm, st = REG["VERSION"].field("REGMAP").get(ver), REG["VERSION"].field("STREAM").get(ver)
        if (rm, st) != (regmap.REGMAP_VERSION, packing.STREAM_VERSION):
            raise DriverError(f"the core speaks register map v{rm} / stream v{st}; this driver "
                              f"v{regmap.REGMAP_VERSION} / v{packing.STREAM_VERSION}")
        self._cap = regmap.Capacity.from_registers(self.transport.read)
        return self._cap

    # ---------------------------------------------------------------------------------------- waiting
    def _wait_status(self, bit: str, stage: str, timeout: float | None = None):
        """Poll STATUS until ``bit`` is set; ERROR -> CoreError; the deadline -> DriverTimeout(stage)."""
        t = self.transport
        limit = t.limit(self.timeout if timeout is None else timeout)
        deadline = t.now() + limit
        while True:
            s = self.transport.read(STATUS.offset)
            if BIT["ERROR"].get(s):
                raise self._core_error(stage)
            if BIT[bit].get(s):
                return s
            if t.now() > deadline:
                raise DriverTimeout(stage, limit, f"STATUS {s:#x} never showed {bit}")
            t.pause()

    def _core_error(self, stage: str) -> CoreError:
        return CoreError(stage, self._read("ERROR_CODE"), self._read("ERROR_BEAT"))

    def _checked(self, stage: str, fn, *args):
        """Run a transport wait; a time-out while the core is in ERROR becomes the CoreError it is."""
        try:
            return fn(*args)
        except DriverTimeout:
            if BIT["ERROR"].get(self.transport.read(STATUS.offset)):
                raise self._core_error(stage) from None
            raise

    # ---------------------------------------------------------------------------------------- model
    def load_model(self, model, weights_in_ddr: bool = False) -> regmap.Capacity:
        """Load ``model`` (an ``IntModel``; with ``weights_in_ddr`` its weights in the memory the core reads);
        return the core's capacity. See the module docstring."""
        from bitstreams import manifest

        cap = self.capacity()
        packing.check_capacity(model.config, cap)                    # before anything is sent
        manifest.check(self.transport.manifest(), model.config, cap)
        beats = packing.pack_model(model, cap.lanes, weights_in_ddr)
        self.soft_reset()
        self._command("UNLOAD")
        self.model = None
        t = self.transport
        if weights_in_ddr:
            stage = "model load: weight buffer"
            addr = t.place(ddr.pack_weights(model, cap.lanes), stage)
            if addr % ddr.BUFFER_ALIGN or not 0 <= addr < 1 << 32:
                raise DriverError(f"{stage}: placed at {addr:#x}, not a {ddr.BUFFER_ALIGN}-byte boundary under 4 GiB")
            self.transport.write(REG["WEIGHTS_ADDR"].offset, addr)
            if self._read("WEIGHTS_ADDR") != addr:
                raise DriverError(f"{stage}: WEIGHTS_ADDR reads {self._read('WEIGHTS_ADDR'):#x}, not {addr:#x}")
        else:
            t.release()                          # an earlier model's weight buffer: unloaded, nothing reads it
        t.send(beats, "model load: send")
        self._checked("model load: send", t.wait_sent, t.limit(self.timeout), "model load: send")
        status = self._wait_status("MODEL_LOADED", "model load: wait MODEL_LOADED")
        if BIT["WEIGHTS_IN_DDR"].get(status) != weights_in_ddr:
            raise DriverError(f"STATUS.WEIGHTS_IN_DDR reads {BIT['WEIGHTS_IN_DDR'].get(status)} after loading a "
                              f"model {'with' if weights_in_ddr else 'without'} its weights in DDR")
        got = {f.name: self._read(f"MODEL_{f.name.upper()}") for f in fields(ModelConfig)}
        if got != model.config.to_dict():
            raise DriverError(f"MODEL_* registers read back {got}, the model is {model.config.to_dict()}")
        self.model = model
        return cap

    # ---------------------------------------------------------------------------------------- images
    def _packets(self, images, tags) -> tuple:
        """``(packets (B, beats), tags)``: every image packet built, so checked, before anything is sent
        (``packing.pack_images``: shape, dtype and tag checks with their messages)."""
        try:
            arr = np.asarray(images)
        except Exception as e:  # noqa: BLE001 - anything numpy cannot turn into an array
            raise ImageError(f"images cannot be read as an array: {e}") from None
        if arr.ndim == 0 or len(arr) == 0:
            raise ImageError(f"no images given (shape {arr.shape})")
        tags = np.arange(len(arr)) if tags is None else np.asarray(tags)
        try:
            return packing.pack_images(arr, self.model.config, tags), tags
        except ValueError as e:
            raise ImageError(str(e)) from None

    def _receive(self, i: int, taps: bool) -> list:
        """Image ``i``'s output packets: its TAP packet (if ``taps``), its RESULT packet."""
        cfg, t, to = self.model.config, self.transport, self.transport.limit(self.timeout)
        outs = []
        if taps:
            outs.append(self._checked(f"image {i}: receive TAP", t.recv, tap_beats(cfg), to,
                                      f"image {i}: receive TAP"))
        outs.append(self._checked(f"image {i}: receive RESULT", t.recv, result_beats(cfg), to,
                                  f"image {i}: receive RESULT"))
        return outs

    def _transaction(self, i: int, packet: np.ndarray, taps: bool) -> tuple:
        """One image on the core: ``(output packets, {register: value})``."""
        t, to = self.transport, self.transport.limit(self.timeout)
        t.send(packet, f"image {i}: send")                           # before START: no idle input cycles
        self._command("START")
        outs = self._receive(i, taps)
        self._checked(f"image {i}: send", t.wait_sent, to, f"image {i}: send")
        self._wait_status("DONE", f"image {i}: wait DONE")
        return outs, self.read_counters()

    def _stream(self, packets, taps: bool, progress) -> list:
        """RUN_CONFIG.STREAM: ``[(output packets, None)]``. Image ``i + 1`` is sent (one transfer per packet:
        each ends with TLAST) before image ``i``'s answers are awaited, so the core takes it in while it runs
        image ``i``; the registers are not read (they already belong to the next image)."""
        t, to = self.transport, self.transport.limit(self.timeout)
        t.send(packets[0], "image 0: send")
        answers = []
        for i in range(len(packets)):
            self._checked(f"image {i}: send", t.wait_sent, to, f"image {i}: send")
            if i + 1 < len(packets):
                t.send(packets[i + 1], f"image {i + 1}: send")
            answers.append((self._receive(i, taps), None))
            if progress:
                progress(i + 1)
        self._wait_status("DONE", f"image {len(packets) - 1}: wait DONE")
        return answers

    def run(self, images, *, tags=None, taps: bool = False, dense: bool = False, stream: bool = False,
            progress=None) -> RunResult:
        """Run ``images`` ((B, C, H, W) uint8, or (B, H, W) for one channel) on the loaded model.

        ``tags`` (default ``0..B-1``) travel with the images and are checked in the answers; ``taps`` asks
        for the TAP packets (RunResult.taps); ``dense`` sets RUN_CONFIG.FORCE_DENSE; ``stream`` sets
        RUN_CONFIG.STREAM and sends the images back to back; ``progress(n)`` is called with the number of
        images done after each image (once, after the batch, when batched)."""
        if self.model is None:
            raise DriverError("no model loaded: call load_model first")
        cfg = self.model.config
        packets, tags = self._packets(images, tags)
        self.transport.write(REG["RUN_CONFIG"].offset,
                             RUN_CONFIG["DEBUG_TAPS"].put(int(taps)) | RUN_CONFIG["FORCE_DENSE"].put(int(dense))
                             | RUN_CONFIG["STREAM"].put(int(stream)))
        t0 = time.perf_counter()
        # The batched fast path answers None when it cannot give exactly what the transactions would
        # (no model, an error state, a malformed packet): the per-image protocol then runs and reports it.
        answers = self.transport.run_images(packets) if self.transport.run_images is not None else None
        batched = answers is not None
        if batched or stream:
            answers = answers if batched else self._stream(packets, taps, progress)
            wall = np.full(len(packets), (time.perf_counter() - t0) / len(packets))
            if progress and batched:
                progress(len(packets))
        else:
            answers, wall = [], []
            for i, p in enumerate(packets):
                t1 = time.perf_counter()
                answers.append(self._transaction(i, p, taps))
                wall.append(time.perf_counter() - t1)
                if progress:
                    progress(i + 1)
        return self._parse(answers, tags, taps, np.asarray(wall, dtype=float), cfg, batched)

    def _parse(self, answers, tags, taps, wall, cfg, batched) -> RunResult:
        B = len(answers)
        logits = np.zeros((B, cfg.num_classes), np.int64)
        rcycles = np.zeros(B, np.int64)
        regs = {name: np.zeros(B, np.int64) for name in RESULT_REGISTERS}
        tap_out = {}
        for i, (outs, values) in enumerate(answers):
            if len(outs) != 1 + bool(taps):
                raise DriverError(f"image {i}: {len(outs)} output packets, expected {1 + bool(taps)}")
            if taps:
                tag_t, tp = packing.unpack_taps(outs[0], cfg)
                if tag_t != tags[i]:
                    raise DriverError(f"image {i}: TAP packet tag {tag_t}, sent {tags[i]}")
                for k, v in tp.items():
                    tap_out.setdefault(k, np.zeros((B,) + v.shape, np.int64))[i] = v
            tag, logits[i], rcycles[i], counts = packing.unpack_result(outs[-1], cfg.num_classes)
            if tag != tags[i]:
                raise DriverError(f"image {i}: RESULT packet tag {tag}, sent {tags[i]}")
            if values is None:   # a stream: the packet's own
                values = {"CYCLES": rcycles[i], **counts}
            # the packet and the registers must agree (OUT_WAIT_CYCLES: the packet has the waits before its end)
            differ = [n for n in COUNTERS if n != "OUT_WAIT_CYCLES" and counts[n] != values[n]]
            if differ:
                raise DriverError(f"image {i}: the RESULT packet's counters disagree with the registers: "
                                  + ", ".join(f"{n} {counts[n]} != {values[n]}" for n in differ))
            for name in RESULT_REGISTERS:
                regs[name][i] = values[name]
        return RunResult(tags=np.asarray(tags, np.int64), logits=logits, cycles=regs.pop("CYCLES"),
                         result_cycles=rcycles, counters=regs, wall_s=wall,
                         batched=batched, taps=tap_out)
