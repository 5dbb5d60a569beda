"""The golden transport: a transaction-level model of the core, in Python, behind the register map and
the stream protocol (``dynaspike.regmap``, ``dynaspike.packing``).

It answers exactly what the core answers (docs/hardware.md): model packets are checked as the RTL's
stream parser checks them (``packet_error``: the same ``ErrorCode`` at the same beat index) and rebuilt
with ``packing.model_from_packet``; the sequencer's checks (a model beyond the capacity: EXCEEDS_CAPACITY;
sections whose lengths disagree with the model's config, or an image of the wrong length: BAD_LENGTH; an
image or START without a model: NO_MODEL) report beat 0, as hw/core.py does. A model packet without its
weights, biases and thresholds (STATUS.WEIGHTS_IN_DDR) takes them from the weight buffer at WEIGHTS_ADDR in
the memory ``place`` fills (the RTL reads it tile by tile during each inference: a buffer that is not there
answers AXI_ERROR at the first image, as the core does when its reads fail); its CYCLES are the cycle
model's against ``dynaspike.ddr.SIM_RAM_LATENCY``, the simulated board's RAM. An image packet
plus CTRL.START (either order; with RUN_CONFIG.STREAM the packet alone) runs ``train.golden.GoldenModel`` and queues a TAP packet (if
RUN_CONFIG.DEBUG_TAPS) and the RESULT packet; CYCLES is the cycle model's (``train.cycle_model``, from the
same traced golden run), or 0 with ``cycles=False`` (``cycle_model_available`` says which); the performance
counters are the golden model's operation counts (``counters``); IN_WAIT/OUT_WAIT are 0 (nothing waits).
After an error, input is dropped until SOFT_RESET, as in the RTL.

Speed: the exact CYCLES cost a traced golden run (the cycle model itself is vectorised over the batch);
``cycles=False`` skips the trace for throughput (``make bench`` measures both).

The model is synchronous: nothing is ever in flight, so ``wait_sent`` returns at once and ``recv`` with
nothing queued raises ``DriverTimeout`` at once (nothing could ever arrive). ``run_images`` is the batched
fast path: the same inference (``_infer``) on a whole batch, for >= 2,000 images/s.
"""

from dataclasses import fields

import numpy as np

from dynaspike import ddr, packing, regmap
from dynaspike.artifact import ArtifactError
from dynaspike.config import ModelConfig
from dynaspike.cycles import DEFAULT_LANES
from dynaspike.packing import Kind
from dynaspike.regmap import REG, ErrorCode

from ..driver import BIT, CTRL, RESULT_REGISTERS, RUN_CONFIG
from ..errors import DriverError, DriverTimeout
from .base import Transport

try:  # the cycle model (train/cycle_model.py)
    from train import cycle_model
except ImportError:  # pragma: no cover - a tree without it
    cycle_model = None


def packet_error(beats: np.ndarray, lanes: int):
    """``(ErrorCode, beat index)`` the RTL's stream parser (hw/stream_in.py) reports for this packet (TLAST
    on its last beat), or None if it passes. Image payload lengths are the sequencer's check (see ``send``)."""
    b = np.asarray(beats, dtype=np.uint64)
    n = len(b)
    h0 = int(b[0])
    if h0 & 0xFFFFFFFF != packing.STREAM_MAGIC:
        return ErrorCode.BAD_MAGIC, 0
    if (h0 >> 32) & 0xFF != packing.STREAM_VERSION:
        return ErrorCode.BAD_VERSION, 0
    kind = (h0 >> 40) & 0xFF
    if kind not in (Kind.MODEL, Kind.IMAGE):
        return ErrorCode.BAD_KIND, 0
    if n < 2:
        return ErrorCode.EARLY_TLAST, 0
    h1 = int(b[1])
    if n < 3:
        return ErrorCode.EARLY_TLAST, 1
    if kind == Kind.MODEL and h1 >> 32 != lanes:
        return ErrorCode.LANES_MISMATCH, 1
    length = h1 & 0xFFFFFFFF
    if length > n - 3:
        return ErrorCode.EARLY_TLAST, n - 1           # TLAST arrives inside the payload
    if kind == Kind.MODEL:
        pos, k = 0, 0
        while pos < length:
            head = int(b[2 + pos])
            if k == len(packing.SECTIONS):
                return ErrorCode.BAD_SECTION, 2 + pos
            sid, _, bits = packing.SECTIONS[k]
            if head & 0xFFFF != sid or (head >> 16) & 0xFF != bits or (head >> 24) & 0xFF:
                return ErrorCode.BAD_SECTION, 2 + pos
            if head >> 32 > length - pos - 1:
                return ErrorCode.BAD_LENGTH, 2 + pos
            pos, k = pos + 1 + (head >> 32), k + 1
    trailer = 2 + length
    if trailer != n - 1:
        return ErrorCode.MISSING_TLAST, trailer
    tr = int(b[trailer])
    if tr >> 32 != packing.TRAILER_MAGIC or tr & 0xFFFFFFFF != packing.checksum(b[2:trailer]):
        return ErrorCode.BAD_CHECKSUM, trailer
    if kind == Kind.MODEL and k != len(packing.SECTIONS):
        return ErrorCode.BAD_SECTION, trailer
    return None


def counters(res, cfg: ModelConfig) -> dict:
    """The performance counters of a golden run, ``{name: (B,) int64}`` (docs/hardware.md)."""
    L, T, N = cfg.blocks, cfg.t_max, cfg.num_tokens
    ac = lambda kind: sum(res.acs[f"b{l}.{kind}"].sum(1) for l in range(L)).numpy()  # noqa: E731
    B = len(res.logits)
    unit = res.halt_t * L + res.halt_l
    out = {"AC_QKV": ac("qkv"), "AC_KV": ac("kv"), "AC_Y": ac("y"), "AC_PROJ": ac("proj"),
           "AC_FC1": ac("fc1"), "AC_FC2": ac("fc2"), "AC_READOUT": res.acs["readout"].sum(1).numpy(),
           "SKIPPED_MODULE_STEPS": np.full(B, int((res.mask == 0).sum())),
           "PROCESSED_UNITS": res.units.sum((1, 2)).numpy(),
           "MERGED_TOKENS": N - (res.rep == np.arange(N)).sum(1).numpy(),
           "HALTED_TOKENS": ((res.halt_t >= 0) & (unit < T * L - 1)).sum(1).numpy(),
           "IN_WAIT_CYCLES": np.zeros(B, np.int64), "OUT_WAIT_CYCLES": np.zeros(B, np.int64),
           "EMB_PIXELS": res.emb_nonzero.sum(1).numpy(),
           "DDR_READ_BEATS": np.zeros(B, np.int64)}    # the cycle model's, where the weights are in DDR (_infer)
    assert set(out) == {name for name, _ in regmap.PERF_COUNTERS}
    return {k: np.asarray(v, np.int64) & 0xFFFFFFFF for k, v in out.items()}


def taps_of(res) -> dict:
    """The TAP packet fields (``packing.TAP_FIELDS``) of a traced golden run, ``{name: (B, ...) array}``."""
    missing = [k for k in ("hacc", "x_final") if k not in res.trace]
    if missing:
        raise DriverError(f"debug taps need the golden trace entries {missing} (train/golden.py)")
    return {"counts": res.counts.numpy(), "rep": res.rep.numpy(), "size": res.size.numpy(),
            "halt_t": res.halt_t.numpy(), "halt_l": res.halt_l.numpy(),
            "hacc": res.trace["hacc"].numpy(), "x": res.trace["x_final"].numpy()}


def images_from_windows(windows: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """(B, N, patch_dim) embedding windows -> (B, C, H, W) images: each token's patch is the centre of its
    window. Raises DriverError if the windows are not those of one image (``packing.image_to_patches``)."""
    B, k, p, pad, g, C = len(windows), cfg.embed_kernel, cfg.patch_size, cfg.embed_pad, cfg.img_size // cfg.patch_size, cfg.in_channels
    w = windows.reshape(B, g, g, C, k, k)[..., pad:pad + p, pad:pad + p]        # (B, gy, gx, C, p, p)
    img = np.ascontiguousarray(w.transpose(0, 3, 1, 4, 2, 5).reshape(B, C, g * p, g * p))
    if not np.array_equal(_windows(img, cfg), windows):
        raise DriverError("the golden transport models windows cut from one image (packing.pack_image); "
                          "these windows disagree with each other")
    return img


def _windows(img: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    import torch
    from train.golden import patches
    return patches(torch.from_numpy(img), cfg).numpy()


class GoldenTransport(Transport):
    """The golden model as a core of capacity ``capacity`` (default: ``packing.capacity_for(cfg, lanes)``)."""

    name = "golden"

    def __init__(self, cfg: ModelConfig, lanes: int = DEFAULT_LANES, *, capacity=None, manifest=None, batch: int = 512,
                 cycles: bool = True):
        from bitstreams import manifest as mf

        self.cap = capacity or packing.capacity_for(cfg, lanes)
        self._manifest = manifest or mf.make(self.cap, cfg, tool=None, utilization=None, timing=None)
        self.batch = batch
        self.cycle_model_available = cycles and cycle_model is not None
        self.model = self.golden = None
        self.status = self.run_config = self.error_code = self.error_beat = self.images_done = 0
        self.weights_addr, self.memory, self.model_cfg, self.ddr_fault = 0, {}, None, False   # DDR mode
        self.regs = {name: 0 for name in RESULT_REGISTERS}
        self.queued_image, self.start_pending, self.out = None, False, []
        self._const = {REG["ID"].offset: regmap.CORE_MAGIC,
                       REG["VERSION"].offset: regmap.REGMAP_VERSION | (packing.STREAM_VERSION << 16),
                       **self.cap.register_values()}

    # ------------------------------------------------------------------------------------ registers
    def _set(self, bit: str, on: bool):
        self.status = (self.status | BIT[bit].mask) if on else (self.status & ~BIT[bit].mask)

    def read(self, offset: int) -> int:
        if offset in self._const:
            return self._const[offset]
        simple = {"STATUS": self.status, "RUN_CONFIG": self.run_config, "WEIGHTS_ADDR": self.weights_addr,
                  "ERROR_CODE": self.error_code,
                  "ERROR_BEAT": self.error_beat, "IMAGES_DONE": self.images_done & 0xFFFFFFFF}
        for name, value in simple.items():
            if offset == REG[name].offset:
                return value
        if offset in (REG["CYCLES"].offset, REG["CYCLES"].offset + 4):
            return (self.regs["CYCLES"] >> (32 * (offset != REG["CYCLES"].offset))) & 0xFFFFFFFF
        for name in RESULT_REGISTERS[1:]:
            if offset == REG[name].offset:
                return self.regs[name]
        if self.model_cfg is not None and REG["MODEL_IMG_SIZE"].offset <= offset < REG["MODEL_IMG_SIZE"].offset + 0x80:
            values = list(self.model_cfg.to_dict().values())
            k = (offset - REG["MODEL_IMG_SIZE"].offset) // 4
            return values[k] if k < len(values) else 0
        return 0

    def write(self, offset: int, value: int):
        if offset == REG["RUN_CONFIG"].offset:
            self.run_config = value & sum(f.mask for f in RUN_CONFIG.values())
        elif offset == REG["WEIGHTS_ADDR"].offset:
            self.weights_addr = value & 0xFFFFFFF8
        elif offset == REG["CTRL"].offset:
            if CTRL["SOFT_RESET"].get(value):
                self.error_code = self.error_beat = 0
                self.queued_image, self.start_pending, self.out = None, False, []
                for bit in ("ERROR", "DONE", "BUSY", "LOADING"):
                    self._set(bit, False)
            if CTRL["UNLOAD"].get(value):
                self.model = self.golden = self.model_cfg = None
                self._set("MODEL_LOADED", False)
                self._set("WEIGHTS_IN_DDR", False)
            if CTRL["START"].get(value) and not BIT["ERROR"].get(self.status):
                if self.model is None:
                    return self._error(self._no_model(), 0)
                self.start_pending = True
                self._set("DONE", False)
                self._maybe_run()

    def _no_model(self) -> int:
        """What a START or an image meets without a runnable model: the reads of a weight buffer that is not
        in memory fail (AXI_ERROR); else there is no model."""
        return ErrorCode.AXI_ERROR if self.ddr_fault else ErrorCode.NO_MODEL

    def place(self, data: bytes, stage: str) -> int:
        addr = max([a + -(-len(b) // ddr.BUFFER_ALIGN) * ddr.BUFFER_ALIGN for a, b in self.memory.items()],
                   default=0x1000_0000)
        self.memory = {addr: bytes(data)}                  # one buffer at a time (base.Transport)
        return addr

    def release(self) -> None:
        self.memory = {}

    def _memory_read(self, addr: int, n: int):
        for base, data in self.memory.items():
            if base <= addr and addr + n <= base + len(data):
                return data[addr - base:addr - base + n]
        return None

    def _error(self, code: int, beat: int):
        self.error_code, self.error_beat = code, beat
        self._set("ERROR", True)
        self._set("BUSY", False)

    # ------------------------------------------------------------------------------------ streams
    def send(self, beats: np.ndarray, stage: str):
        if BIT["ERROR"].get(self.status):
            return                                          # dropped until SOFT_RESET
        beats = np.asarray(beats, dtype=np.uint64)
        err = packet_error(beats, self.cap.lanes)
        if err:
            return self._error(*err)
        # The sequencer's own errors (hw/core.py) carry ERROR_BEAT 0.
        if (int(beats[0]) >> 40) & 0xFF == Kind.MODEL:
            if self.start_pending:                          # a model where START expects an image
                return self._error(ErrorCode.BAD_KIND, 0)
            return self._load(beats)
        if self.model is None:
            return self._error(self._no_model(), 0)
        cfg = self.model.config
        if int(beats[1]) & 0xFFFFFFFF != cfg.num_tokens * packing.beats_per_token(cfg):
            return self._error(ErrorCode.BAD_LENGTH, 0)
        tag, win = packing.unpack_image(beats, cfg)
        self.queued_image = (tag, win)
        if RUN_CONFIG["STREAM"].get(self.run_config):   # the packet starts itself
            self.start_pending = True
            self._set("DONE", False)
        self._maybe_run()

    def _load(self, beats):
        """After the trailer, as hw/core.py: the config must fit (else EXCEEDS_CAPACITY), every section
        must have exactly the beats the config implies (else BAD_LENGTH); then the model is loaded."""
        n = int(beats[2]) >> 32                             # the config section, first (packet_error)
        try:
            cfg = ModelConfig(*(int(v) for v in packing.from_beats(beats[3:3 + n], 16, len(fields(ModelConfig)))))
            packing.check_capacity(cfg, self.cap)
        except (ValueError, packing.PackingError):          # CapacityError, or no valid config at all
            return self._error(ErrorCode.EXCEEDS_CAPACITY, 0)
        want, pos, seen = packing.section_beats(cfg, self.cap.lanes), 2, {}
        for _, name, _ in packing.SECTIONS:
            seen[name] = int(beats[pos]) >> 32
            pos += 1 + seen[name]
        in_ddr = all(seen[name] == 0 for name in packing.DDR_SECTIONS)
        if any(seen[name] != want[name] and not (in_ddr and name in packing.DDR_SECTIONS) for name in want):
            return self._error(ErrorCode.BAD_LENGTH, 0)
        from train.golden import GoldenModel

        layers, self.ddr_fault = None, False
        if in_ddr:
            size = ddr.weight_buffer(cfg, self.cap.lanes)["_bytes"]
            buf = self._memory_read(self.weights_addr, size)
            if buf is None:   # loads like the RTL; its first inference's reads fail
                self.model = self.golden = None
                self.model_cfg, self.ddr_fault = cfg, True
                self._set("MODEL_LOADED", True)
                self._set("WEIGHTS_IN_DDR", True)
                return None
            layers = ddr.unpack_weights(buf, cfg, self.cap.lanes)
        try:
            self.model = packing.model_from_packet(beats, layers)[0]
        except ArtifactError as e:  # the RTL would load it; the golden model cannot run it
            raise DriverError(f"the golden transport cannot run this model packet: {e}") from None
        self.golden, self.model_cfg = GoldenModel(self.model), cfg
        self._set("MODEL_LOADED", True)
        self._set("WEIGHTS_IN_DDR", in_ddr)

    def _maybe_run(self):
        if not (self.start_pending and self.queued_image is not None):
            return
        (tag, win), self.queued_image, self.start_pending = self.queued_image, None, False
        img = images_from_windows(win[None], self.model.config)
        outs, regs = self._infer(img, [tag])[0]
        self.out.extend(outs)
        self._finish(regs, 1)

    def _finish(self, regs: dict, n: int):
        self.regs = regs
        self.images_done += n
        self._set("DONE", True)

    def wait_sent(self, timeout: float, stage: str):
        return None                                         # the model takes every beat at once

    def recv(self, max_beats: int, timeout: float, stage: str) -> np.ndarray:
        if not self.out:
            raise DriverTimeout(stage, timeout, "the golden core has no packet to send")
        pkt = self.out.pop(0)
        if len(pkt) > max_beats:
            raise DriverError(f"{stage}: a packet of {len(pkt)} beats does not fit the {max_beats}-beat buffer")
        return pkt

    def manifest(self) -> dict:
        return self._manifest

    # ------------------------------------------------------------------------------------ inference
    def _infer(self, images: np.ndarray, tags) -> list:
        """``[(output packets, registers)]`` of each image run as the core runs it (RUN_CONFIG applies)."""
        cfg = self.model.config
        taps, dense = RUN_CONFIG["DEBUG_TAPS"].get(self.run_config), RUN_CONFIG["FORCE_DENSE"].get(self.run_config)
        exact = self.cycle_model_available
        res = self.golden.run(images, dense=bool(dense), trace=bool(taps) or exact)
        memory = ddr.Memory(read_latency=ddr.SIM_RAM_LATENCY) if BIT["WEIGHTS_IN_DDR"].get(self.status) else None
        pred = (cycle_model.predict(self.model, images, self.cap.lanes, dense=bool(dense), golden=res, gm=self.golden,
                                    memory=memory, weights_at=self.weights_addr) if exact else None)
        cyc = np.asarray(pred.cycles, np.int64) if exact else np.zeros(len(images), np.int64)
        cnt = counters(res, cfg)
        if exact and memory is not None:
            cnt["DDR_READ_BEATS"] = np.asarray(pred.ddr_read_bytes, np.int64) // ddr.BEAT_BYTES
        logits = res.logits.numpy()
        tap = taps_of(res) if taps else None
        out = []
        for i, tag in enumerate(tags):
            pk = [packing.pack_taps({k: v[i] for k, v in tap.items()}, cfg, int(tag))] if taps else []
            regs = {k: int(v[i]) for k, v in cnt.items()}
            pk.append(packing.pack_result(logits[i], int(cyc[i]), regs, int(tag)))
            out.append((pk, {"CYCLES": int(cyc[i]), **regs}))
        return out

    def run_images(self, packets: list):
        """The batched fast path (see ``base``): None unless every packet is a clean image for the loaded
        model and the core is idle without error, so that the per-image protocol reports anything else."""
        if self.model is None or BIT["ERROR"].get(self.status) or self.queued_image or self.start_pending:
            return None
        cfg = self.model.config
        bpt = packing.beats_per_token(cfg)
        if len({len(p) for p in packets}) != 1 or len(packets[0]) != 3 + cfg.num_tokens * bpt:
            return None
        if any(packet_error(p, self.cap.lanes) for p in packets):
            return None
        beats = np.stack(packets)
        if np.any((beats[:, 0] >> np.uint64(40)) & np.uint64(0xFF) != Kind.IMAGE):
            return None
        tags = (beats[:, 1] >> np.uint64(32)).astype(np.int64)
        raw = beats[:, 2:-1].astype("<u8").view(np.uint8).reshape(len(packets), cfg.num_tokens, bpt * 8)
        images = images_from_windows(np.ascontiguousarray(raw[:, :, :cfg.patch_dim]), cfg)
        traced = RUN_CONFIG["DEBUG_TAPS"].get(self.run_config) or self.cycle_model_available
        step = 64 if traced else self.batch                  # traces hold every spike map: smaller batches
        answers = []
        for i in range(0, len(images), step):
            answers += self._infer(images[i:i + step], tags[i:i + step])
        self._finish(answers[-1][1], len(answers))
        return answers
