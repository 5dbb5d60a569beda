"""The core's AXI4-Lite register map: one definition, read by the RTL, the testbenches and the driver.

Standard library only (the PYNQ board imports it without numpy, torch or Amaranth). All registers are
32 bits wide at 4-byte aligned byte offsets inside a 4 KiB window. A 64-bit counter takes two registers:
``LO`` at its offset and ``HI`` at offset + 4; reading ``LO`` snapshots ``HI`` so a LO-then-HI read pair
is consistent. Writes to read-only registers and to offsets not listed here are ignored (OKAY
response); reads of unlisted offsets return 0. docs/hardware.md describes the registers in prose.

Access kinds: ``ro`` read-only; ``rw`` read/write; ``w1p`` write-one-to-pulse (the bit acts for one
cycle when written as 1 and reads back 0).
"""

import json
import zlib
from dataclasses import asdict, dataclass, fields

from .config import ModelConfig
from .formats import FORMATS

REGMAP_VERSION = 5  # 5: the DDR_READ_BEATS counter (4: WEIGHTS_ADDR, STATUS.WEIGHTS_IN_DDR, AXI_ERROR; 3:
                    # RUN_CONFIG.STREAM; counters per image in the RESULT packet; 2: HEAD_DIM, CYCLES from the
                    # first image beat)
CORE_MAGIC = 0x44594E53          # ID register: "DYNS" as a big-endian 32-bit word
ADDR_BITS = 12                   # 4 KiB AXI4-Lite window
DATA_BITS = 32                   # AXI4-Lite data width


def formats_id(fmt=FORMATS) -> int:
    """A 32-bit fingerprint (CRC-32 of the sorted JSON) of the number formats the core was built with."""
    return zlib.crc32(json.dumps(asdict(fmt), sort_keys=True).encode())


@dataclass(frozen=True)
class Field:
    """A bit field ``[lsb + width - 1 : lsb]`` of a register."""

    name: str
    lsb: int
    width: int = 1
    doc: str = ""

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word: int) -> int:
        return (word >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"field {self.name} is {self.width} bits wide; {value} does not fit")
        return value << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: str                  # "ro", "rw" or "w1p"
    doc: str
    fields: tuple = ()
    bits: int = 32               # 64: a LO/HI pair at offset and offset + 4

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}; it has {[f.name for f in self.fields]}")


class ErrorCode:
    """Values of the ERROR_CODE register. The core stops, sets STATUS.ERROR and waits for SOFT_RESET."""

    NONE = 0
    BAD_MAGIC = 1                # a packet's first beat does not carry STREAM_MAGIC
    BAD_VERSION = 2              # stream format version not supported by this core
    BAD_KIND = 3                 # unknown packet kind
    BAD_LENGTH = 4               # a length field disagrees with the configuration or the section
    EARLY_TLAST = 5              # TLAST before the packet's last beat
    MISSING_TLAST = 6            # no TLAST on the packet's last beat
    BAD_CHECKSUM = 7             # trailer checksum differs from the payload's
    EXCEEDS_CAPACITY = 8         # the model's configuration does not fit this core
    BAD_SECTION = 9              # a model section out of order or with an unknown id
    LANES_MISMATCH = 10          # the model was packed for another lane count
    NO_MODEL = 11                # an image packet or START with no model loaded
    AXI_ERROR = 12               # a DDR read (a weight tile) was answered with an AXI error response

    @classmethod
    def name(cls, code: int) -> str:
        for k, v in vars(cls).items():
            if k.isupper() and v == code:
                return k
        return f"UNKNOWN({code})"


# Performance counters, in register order. Each counts over one image: the registers show the image the
# sequencer has (they change when it takes the next one from the front), and every image's RESULT packet carries
# its own (``packing.unpack_result``), so a stream of images (RUN_CONFIG.STREAM) keeps each image's counts.
# The AC counters follow docs/integer_model.md "Operation counts" exactly (the golden model's counts).
PERF_COUNTERS = (
    ("AC_QKV", "accumulates of the q, k, v projections: 3 * D * nnz(S)"),
    ("AC_KV", "accumulates of K^T V: dh * sum_j sum_h nnz(K_jh) * [V_jh != 0]"),
    ("AC_Y", "accumulates of Q (K^T V): dh * nnz(Q)"),
    ("AC_PROJ", "accumulates of the attention output projection: D * nnz(A)"),
    ("AC_FC1", "accumulates of the first MLP layer: Hd * nnz(S2)"),
    ("AC_FC2", "accumulates of the second MLP layer: D * nnz(Z)"),
    ("AC_READOUT", "accumulates of the readout counts: nnz(O) per counted token"),
    ("SKIPPED_MODULE_STEPS", "(module, step) pairs skipped by the time-step mask"),
    ("PROCESSED_UNITS", "token-block-step units processed (active tokens at the start of a block)"),
    ("MERGED_TOKENS", "tokens merged into a representative at the embedding"),
    ("HALTED_TOKENS", "tokens halted before the final (step, block)"),
    ("IN_WAIT_CYCLES", "cycles the inference was held up waiting for input stream data (CYCLES - IN_WAIT_CYCLES "
                       "is the cycle model's count)"),
    ("OUT_WAIT_CYCLES", "cycles of the inference spent waiting on output stream backpressure (in the RESULT "
                        "packet: those before its last payload beat)"),
    ("EMB_PIXELS", "non-zero pixels of the image's embedding windows: the embedding multiplies only these "
                   "(D multiply-accumulates each; zero pixels are skipped)"),
    ("DDR_READ_BEATS", "64-bit beats the AXI4 master m_axi read for the image (its weight tiles: 0 with the "
                       "weights on chip), the image's DDR read traffic in 8-byte units"),
)

# Capacity and build configuration, read-only, in register order (docs/hardware.md).
CAPACITY = (
    ("LANES", "accumulator lanes P"),
    ("MAX_TOKENS", "largest num_tokens N"),
    ("MAX_DIM", "largest dim D"),
    ("MAX_HIDDEN", "largest hidden_dim (mlp_ratio * D)"),
    ("MAX_BLOCKS", "largest blocks L"),
    ("MAX_T", "largest t_max"),
    ("MAX_CLASSES", "largest num_classes"),
    ("MAX_PATCH_DIM", "largest patch_dim"),
    ("WEIGHT_ROWS", "weight memory rows (P int8 lanes each)"),
    ("BIAS_ROWS", "bias memory rows (P acc_bits lanes each)"),
    ("THRESHOLD_ROWS", "threshold memory rows (P acc_bits lanes each)"),
    ("FORMATS_ID", "formats_id() of the number formats the core was built with"),
    ("CLOCK_HZ", "the clock the design was built for"),
    ("HEAD_DIM", "attention head width dh the core is built for (models must match it)"),
)

_MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig))

PERF_BASE = 0x040
CAPACITY_BASE = 0x100
MODEL_BASE = 0x180

REGISTERS = (
    Register("ID", 0x000, "ro", f"constant CORE_MAGIC = {CORE_MAGIC:#010x}"),
    Register("VERSION", 0x004, "ro", "register map and stream format versions", (
        Field("REGMAP", 0, 16, "REGMAP_VERSION"),
        Field("STREAM", 16, 16, "packing.STREAM_VERSION"),
    )),
    Register("CTRL", 0x008, "w1p", "commands", (
        Field("START", 0, doc="run the image waiting on the input stream (needs a loaded model; ignored while "
                              "the front holds an image)"),
        Field("SOFT_RESET", 1, doc="abort any transfer or inference, clear ERROR and DONE; keeps the model"),
        Field("UNLOAD", 2, doc="forget the loaded model (MODEL_LOADED reads 0)"),
    )),
    Register("RUN_CONFIG", 0x00C, "rw", "options of the next inference", (
        Field("DEBUG_TAPS", 0, doc="also stream intermediate spike maps (tap packets) before the result"),
        Field("FORCE_DENSE", 1, doc="ignore the time-step mask and token skip (the dense reference run)"),
        Field("STREAM", 2, doc="every image packet starts its own inference (no START): images sent back to back "
                              "overlap, the next one's intake, embedding and merge with this one's blocks"),
    )),
    Register("STATUS", 0x010, "ro", "state of the core", (
        Field("BUSY", 0, doc="an inference (its front or its blocks) or a model load is in progress"),
        Field("DONE", 1, doc="the last inference finished and its result packet was sent; cleared when an image "
                             "starts"),
        Field("ERROR", 2, doc="stopped on an error (ERROR_CODE); only SOFT_RESET leaves this state"),
        Field("MODEL_LOADED", 3, doc="a complete, checked model is in the core's memories"),
        Field("LOADING", 4, doc="a model packet is being received"),
        Field("WEIGHTS_IN_DDR", 5, doc="the loaded model's packet left the weights, biases and thresholds out: "
                                       "its event passes read them, tile by tile, from the weight buffer at "
                                       "WEIGHTS_ADDR (dynaspike.ddr.pack_weights)"),
    )),
    Register("ERROR_CODE", 0x014, "ro", "ErrorCode of the first error since the last SOFT_RESET"),
    Register("ERROR_BEAT", 0x018, "ro", "index of the input beat (within its packet) where the error was seen"),
    Register("IMAGES_DONE", 0x01C, "ro", "inferences completed since reset (wraps at 2**32)"),
    Register("CYCLES", 0x020, "ro", "clock cycles of the image the sequencer has: from the cycle its first "
             "payload beat is taken (after START) to the cycle its last logit is computed, both included, less "
             "the cycles it waited, embedded, for the previous image's blocks (RUN_CONFIG.STREAM); the result "
             "packet (and taps) follow", bits=64),
    Register("WEIGHTS_ADDR", 0x028, "rw", "byte address of the weight buffer in DDR (dynaspike.ddr.pack_weights) "
             "for a model with STATUS.WEIGHTS_IN_DDR; read through the AXI4 master m_axi. A beat's address: "
             "bits 2:0 read 0 and ignore writes"),
    *(Register(name, PERF_BASE + 4 * i, "ro", doc) for i, (name, doc) in enumerate(PERF_COUNTERS)),
    *(Register(name, CAPACITY_BASE + 4 * i, "ro", doc) for i, (name, doc) in enumerate(CAPACITY)),
    *(Register(f"MODEL_{name.upper()}", MODEL_BASE + 4 * i, "ro", f"loaded model's ModelConfig.{name}")
      for i, name in enumerate(_MODEL_FIELDS)),
)

REG = {r.name: r for r in REGISTERS}


def _check():
    seen = {}
    for r in REGISTERS:
        if r.offset % 4 or not 0 <= r.offset < (1 << ADDR_BITS):
            raise AssertionError(f"register {r.name} offset {r.offset:#x} is not a word inside the window")
        for off in range(r.offset, r.offset + r.bits // 8, 4):
            if off in seen:
                raise AssertionError(f"registers {seen[off]} and {r.name} overlap at {off:#x}")
            seen[off] = r.name
        used = 0
        for f in r.fields:
            if f.mask & used or f.lsb + f.width > DATA_BITS:
                raise AssertionError(f"field {r.name}.{f.name} overlaps another or leaves the word")
            used |= f.mask
    if len(PERF_COUNTERS) * 4 > CAPACITY_BASE - PERF_BASE or len(CAPACITY) * 4 > MODEL_BASE - CAPACITY_BASE:
        raise AssertionError("a register group overflows into the next")


_check()


@dataclass(frozen=True)
class Capacity:
    """What one built core can hold: the CAPACITY registers as a value (read back by the driver)."""

    lanes: int
    max_tokens: int
    max_dim: int
    max_hidden: int
    max_blocks: int
    max_t: int
    max_classes: int
    max_patch_dim: int
    weight_rows: int
    bias_rows: int
    threshold_rows: int
    formats_id: int
    clock_hz: int
    head_dim: int

    @classmethod
    def from_registers(cls, read) -> "Capacity":
        """Build from a ``read(offset) -> int`` function (MMIO on the board, AXI4-Lite in simulation)."""
        return cls(*(read(REG[name].offset) for name, _ in CAPACITY))

    def register_values(self) -> dict:
        """``{offset: value}`` of the CAPACITY registers (what the RTL returns)."""
        return {REG[name].offset: getattr(self, name.lower()) for name, _ in CAPACITY}
