"""The AXI4-Stream packet format: models, images and results as 64-bit beats (numpy only).

The simulator testbenches, the golden transport and the PYNQ driver all pack and unpack with these
functions; nothing else re-implements the format. docs/hardware.md describes it in prose.

Beats are ``np.uint64`` arrays; byte ``k`` of a little-endian byte buffer is bits ``[8k+7:8k]`` of beat
``k // 8``, which is how the AXI DMA moves a contiguous buffer. Every packet is::

    beat 0            header: [31:0] STREAM_MAGIC, [39:32] STREAM_VERSION, [47:40] kind, [63:48] 0
    beat 1            header: [31:0] payload beats (between the header and the trailer), [63:32] kind-specific
    beats 2 ..        payload
    last beat         trailer: [31:0] checksum (sum of the payload's 32-bit words mod 2**32),
                      [63:32] TRAILER_MAGIC; TLAST is set on this beat and no other

A model payload is a sequence of sections in the order of ``SECTIONS``; each starts with a section header
beat ``[15:0] id, [23:16] element bits, [31:24] 0, [63:32] data beats`` followed by its data, elements packed
little-endian and zero-padded to a whole beat. The weight, bias and threshold sections are images of the
core's memories for a given lane count P (``weight_layout``): the driver reads P from the core's
``LANES`` register and packs for it; the core refuses a model packed for another P.
"""

from dataclasses import fields

import numpy as np

from .artifact import IntModel, IntParams, tensor_specs
from .config import ModelConfig
from .cycles import ACC_ROWS, engine_rows
from .formats import FORMATS
from .regmap import PERF_COUNTERS, Capacity, formats_id

STREAM_VERSION = 4               # 4: DDR_READ_BEATS among the RESULT packet's counters (3: the RESULT
                                 # packet carries the performance counters; 2: windows on a beat; TAP packets)
STREAM_MAGIC = 0x4B505344        # bytes "DSPK" in a little-endian buffer
TRAILER_MAGIC = 0x21444E45       # bytes "END!"
BEAT_BITS = 64                   # the PYNQ-Z2 HP ports and the AXI DMA's stream width
BEAT_BYTES = BEAT_BITS // 8


class Kind:
    """Packet kinds (header beat 0, bits [47:40])."""

    MODEL = 1                    # host -> core; beat 1 [63:32] = lanes P the memories were packed for
    IMAGE = 2                    # host -> core; beat 1 [63:32] = image tag, echoed in the result
    RESULT = 3                   # core -> host; beat 1 [63:32] = the image tag
    TAP = 4                      # core -> host, before RESULT when RUN_CONFIG.DEBUG_TAPS; [63:32] = image tag


# Model sections, in stream order: (id, name, element bits). The spike layers' weights, biases and
# thresholds are memory images (weight_layout); the others are the artifact tensors, row-major.
SECTIONS = (
    (1, "config", 16),           # ModelConfig fields in declaration order
    (2, "params", 32),           # IntParams fields in declaration order
    (3, "emb_w", 16),
    (4, "emb_b", 32),
    (5, "weights", 8),
    (6, "biases", 32),
    (7, "thresholds", 32),
    (8, "head_w", 16),
    (9, "head_b", 32),
    (10, "mask", 8),
    (11, "halt_lut", 8),
)
SECTION_IDS = {name: sid for sid, name, _ in SECTIONS}
#: The sections a model packet leaves empty (0 beats) when its spike layers' weights, biases and thresholds
#: are in DDR (``dynaspike.ddr.pack_weights``; the core's STATUS.WEIGHTS_IN_DDR).
DDR_SECTIONS = ("weights", "biases", "thresholds")

# The spike-fed layers of a block in execution order: (name, has a LIF threshold, out, in) as functions
# of the config. Their memory images are laid out block by block in this order.
SPIKE_LAYERS = ("q", "k", "v", "proj", "fc1", "fc2")
_THRESHOLD_LAYERS = ("q", "k", "v", "fc1")


class PackingError(ValueError):
    """A packet that is not in the format (wrong magic, version, kind, length, checksum...)."""


class CapacityError(ValueError):
    """A model that does not fit a core's capacity (raised before anything is sent)."""


def _layer_shape(cfg: ModelConfig, name: str) -> tuple:
    D, Hd = cfg.dim, cfg.hidden_dim
    return {"q": (D, D), "k": (D, D), "v": (D, D), "proj": (D, D), "fc1": (Hd, D), "fc2": (D, Hd)}[name]


def _chunks(out: int, lanes: int) -> int:
    return -(-out // lanes)


def weight_layout(cfg: ModelConfig, lanes: int) -> dict:
    """Where every spike layer lives in the core's memories, for ``lanes`` P.

    Returns ``{"b{l}.{name}": {"w_base", "b_row", "th_row" (None without threshold), "chunks", "groups",
    "fan_in", "out"}}`` plus totals under ``"_rows"``: ``{"weights", "biases", "thresholds"}``. Output
    channel ``o`` of a layer is lane ``o % P`` of chunk ``o // P``. The accumulate engine computes
    ``cycles.ACC_ROWS`` chunks at once, so weight and bias rows are ``ACC_ROWS * P`` lanes wide: chunk ``c``
    is in group ``g = c // ACC_ROWS``, at lanes ``(c % ACC_ROWS) * P ..``; its weight column for input ``i`` is
    in row ``w_base + g * fan_in + i``, its bias in row ``b_row + g``. Thresholds stay rows of P lanes (the
    LIF layer takes a chunk at a time): chunk ``c``'s are in row ``th_row + c``. Lanes past ``out`` are
    padding (weights and biases 0, thresholds acc_max).
    """
    if not isinstance(lanes, int) or lanes < 8 or lanes % 8:
        raise ValueError(f"lanes must be a positive multiple of 8 (whole beats per row), got {lanes!r}")
    layout, w, b, th = {}, 0, 0, 0
    for l in range(cfg.blocks):
        for name in SPIKE_LAYERS:
            out, fan_in = _layer_shape(cfg, name)
            chunks = _chunks(out, lanes)
            groups = engine_rows(chunks)
            has_th = name in _THRESHOLD_LAYERS
            layout[f"b{l}.{name}"] = {"w_base": w, "b_row": b, "th_row": th if has_th else None,
                                      "chunks": chunks, "groups": groups, "fan_in": fan_in, "out": out}
            w += groups * fan_in
            b += groups
            th += chunks if has_th else 0
    layout["_rows"] = {"weights": w, "biases": b, "thresholds": th}
    return layout


def memory_lanes(lanes: int) -> dict:
    """Lanes per row of each memory image (``weight_layout``): the engine's ``ACC_ROWS * P``, thresholds P."""
    return {"weights": ACC_ROWS * lanes, "biases": ACC_ROWS * lanes, "thresholds": lanes}


def check_capacity(cfg: ModelConfig, cap: Capacity):
    """Raise CapacityError naming every limit the model exceeds on this core; return None if it fits."""
    rows = weight_layout(cfg, cap.lanes)["_rows"]
    need = [("num_tokens", cfg.num_tokens, cap.max_tokens), ("dim", cfg.dim, cap.max_dim),
            ("hidden_dim", cfg.hidden_dim, cap.max_hidden), ("blocks", cfg.blocks, cap.max_blocks),
            ("t_max", cfg.t_max, cap.max_t), ("num_classes", cfg.num_classes, cap.max_classes),
            ("patch_dim", cfg.patch_dim, cap.max_patch_dim), ("weight rows", rows["weights"], cap.weight_rows),
            ("bias rows", rows["biases"], cap.bias_rows), ("threshold rows", rows["thresholds"], cap.threshold_rows)]
    over = [f"{what} {have} > {limit}" for what, have, limit in need if have > limit]
    if cfg.head_dim != cap.head_dim:
        over.append(f"head_dim {cfg.head_dim} != the core's {cap.head_dim} (attention heads are built in)")
    if cap.formats_id != formats_id():
        over.append(f"core formats_id {cap.formats_id:#010x} != this build's {formats_id():#010x}")
    if over:
        raise CapacityError("the model does not fit this core: " + "; ".join(over))


# --------------------------------------------------------------------------------------------- beats
def to_beats(values, bits: int) -> np.ndarray:
    """Pack integers (any shape, row-major) as little-endian ``bits``-bit elements into zero-padded beats."""
    dtype = {8: "<i1", 16: "<i2", 32: "<i4"}[bits]
    a = np.asarray(values)
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > (1 << bits) - 1):
        raise PackingError(f"values {a.min()}..{a.max()} do not fit {bits}-bit elements")
    # Values are stored as their low `bits` bits (two's complement for negatives, plain for unsigned).
    raw = (a.astype(np.int64).ravel() & ((1 << bits) - 1)).astype({8: "<u1", 16: "<u2", 32: "<u4"}[bits])
    buf = raw.tobytes()
    buf += bytes(-len(buf) % BEAT_BYTES)
    return np.frombuffer(buf, dtype="<u8").astype(np.uint64)


def from_beats(beats: np.ndarray, bits: int, count: int, signed: bool = True) -> np.ndarray:
    """The first ``count`` ``bits``-bit elements of ``beats`` as int64 (sign-extended if ``signed``)."""
    dtype = ({8: "<i1", 16: "<i2", 32: "<i4"} if signed else {8: "<u1", 16: "<u2", 32: "<u4"})[bits]
    buf = np.asarray(beats, dtype="<u8").tobytes()
    if count * bits // 8 > len(buf):
        raise PackingError(f"need {count} {bits}-bit elements, the beats hold {len(buf) * 8 // bits}")
    return np.frombuffer(buf, dtype=dtype, count=count).astype(np.int64)


def checksum(payload: np.ndarray) -> int:
    """Sum of the payload's 32-bit words (low word of each beat first) modulo 2**32, as a Python int."""
    words = np.asarray(payload, dtype="<u8").view("<u4")
    # The sum leaves numpy before the mask: numpy 1.x promotes np.uint64 & int to float64 and refuses it.
    return int(words.astype(np.uint64).sum()) & 0xFFFFFFFF


def _packet(kind: int, extra: int, payload: np.ndarray) -> np.ndarray:
    payload = np.asarray(payload, dtype=np.uint64)
    # Header words are built from Python ints (numpy 1.x would turn np.int64/np.uint64 mixes into floats).
    kind, extra = int(kind), int(extra)
    if not 0 <= extra < (1 << 32):
        raise PackingError(f"header beat 1 [63:32] is 32 bits; {extra} does not fit")
    head0 = STREAM_MAGIC | (STREAM_VERSION << 32) | (kind << 40)
    head1 = len(payload) | (extra << 32)
    trailer = checksum(payload) | (TRAILER_MAGIC << 32)
    return np.concatenate([np.array([head0, head1], dtype=np.uint64), payload,
                           np.array([trailer], dtype=np.uint64)])


def parse_packet(beats: np.ndarray, kind: int) -> tuple:
    """Check a packet's header and trailer; return ``(extra, payload)``. Raise PackingError saying why."""
    beats = np.asarray(beats, dtype=np.uint64)
    if len(beats) < 3:
        raise PackingError(f"a packet has at least 3 beats, got {len(beats)}")
    h0, h1, tr = int(beats[0]), int(beats[1]), int(beats[-1])
    if h0 & 0xFFFFFFFF != STREAM_MAGIC:
        raise PackingError(f"beat 0: magic {h0 & 0xFFFFFFFF:#010x}, expected {STREAM_MAGIC:#010x}")
    if (h0 >> 32) & 0xFF != STREAM_VERSION:
        raise PackingError(f"beat 0: stream version {(h0 >> 32) & 0xFF}, this build reads {STREAM_VERSION}")
    if (h0 >> 40) & 0xFF != kind:
        raise PackingError(f"beat 0: packet kind {(h0 >> 40) & 0xFF}, expected {kind}")
    n = h1 & 0xFFFFFFFF
    if n != len(beats) - 3:
        raise PackingError(f"beat 1: payload of {n} beats, the packet has {len(beats) - 3}")
    payload = beats[2:-1]
    if tr >> 32 != TRAILER_MAGIC:
        raise PackingError(f"trailer: magic {tr >> 32:#010x}, expected {TRAILER_MAGIC:#010x}")
    if tr & 0xFFFFFFFF != checksum(payload):
        raise PackingError(f"trailer: checksum {tr & 0xFFFFFFFF:#010x}, payload sums to {checksum(payload):#010x}")
    return h1 >> 32, payload


# --------------------------------------------------------------------------------------------- model
def _chunk_place(lay: dict, c: int, lanes: int) -> tuple:
    """Chunk ``c`` of a layer in the weight and bias images: (weight row of input 0, bias row, first lane)."""
    group = c // ACC_ROWS
    return lay["w_base"] + group * lay["fan_in"], lay["b_row"] + group, (c % ACC_ROWS) * lanes


def memory_images(model: IntModel, lanes: int) -> dict:
    """The weight, bias and threshold memory contents for ``lanes`` P: int64 arrays (rows, lanes per row),
    lanes per row as ``memory_lanes`` says."""
    cfg = model.config
    layout = weight_layout(cfg, lanes)
    rows, width = layout["_rows"], memory_lanes(lanes)
    W = np.zeros((rows["weights"], width["weights"]), np.int64)
    B = np.zeros((rows["biases"], width["biases"]), np.int64)
    TH = np.full((rows["thresholds"], width["thresholds"]), FORMATS.acc_max, np.int64)
    for l in range(cfg.blocks):
        for name in SPIKE_LAYERS:
            key = f"b{l}.{name}"
            lay = layout[key]
            w = model[key + "_w"].astype(np.int64)                 # (out, fan_in)
            b = model[key + "_b"].astype(np.int64)
            th = model[key + "_th"].astype(np.int64) if lay["th_row"] is not None else None
            for c in range(lay["chunks"]):
                o0, o1 = c * lanes, min((c + 1) * lanes, lay["out"])
                base, b_row, l0 = _chunk_place(lay, c, lanes)
                W[base:base + lay["fan_in"], l0:l0 + o1 - o0] = w[o0:o1].T
                B[b_row, l0:l0 + o1 - o0] = b[o0:o1]
                if th is not None:
                    TH[lay["th_row"] + c, :o1 - o0] = th[o0:o1]
    return {"weights": W, "biases": B, "thresholds": TH}


def layer_tensors(cfg: ModelConfig, lanes: int, mem: dict) -> dict:
    """The inverse of :func:`memory_images`: the spike layers' tensors from the three memory images.

    ``mem`` holds ``{"weights", "biases", "thresholds"}`` as int arrays (rows, ``memory_lanes``) laid out
    by ``weight_layout(cfg, lanes)``. Returns ``{"b{l}.{name}_w" | "_b" | "_th": array}`` with the artifact's
    dtypes (``tensor_specs``). Padding lanes are not read (the core ignores them too).
    """
    layout = weight_layout(cfg, lanes)
    specs = tensor_specs(cfg)
    width = memory_lanes(lanes)
    for name, rows in layout["_rows"].items():
        if np.shape(mem[name]) != (rows, width[name]):
            raise PackingError(f"memory image {name} has shape {np.shape(mem[name])}, "
                               f"expected {(rows, width[name])}")
    out = {}
    for l in range(cfg.blocks):
        for name in SPIKE_LAYERS:
            key = f"b{l}.{name}"
            lay = layout[key]
            w = np.zeros((lay["out"], lay["fan_in"]), np.int64)
            b = np.zeros(lay["out"], np.int64)
            th = np.zeros(lay["out"], np.int64)
            for c in range(lay["chunks"]):
                o0, o1 = c * lanes, min((c + 1) * lanes, lay["out"])
                base, b_row, l0 = _chunk_place(lay, c, lanes)
                w[o0:o1] = np.asarray(mem["weights"])[base:base + lay["fan_in"], l0:l0 + o1 - o0].T
                b[o0:o1] = np.asarray(mem["biases"])[b_row, l0:l0 + o1 - o0]
                if lay["th_row"] is not None:
                    th[o0:o1] = np.asarray(mem["thresholds"])[lay["th_row"] + c, :o1 - o0]
            parts = {"_w": w, "_b": b, **({"_th": th} if lay["th_row"] is not None else {})}
            for suffix, a in parts.items():
                out[key + suffix] = a.astype(specs[key + suffix][1])
    return out


def model_from_packet(beats: np.ndarray, layers: dict | None = None) -> tuple:
    """``(IntModel, lanes)`` rebuilt from a model packet (:func:`unpack_model` + :func:`layer_tensors`); a
    packet with its weights in DDR (``pack_model(..., weights_in_ddr=True)``) needs the spike layers'
    tensors as ``layers`` (``dynaspike.ddr.unpack_weights`` of its weight buffer).

    The model is validated (``IntModel.validate``); an inconsistent packet raises PackingError or
    ``artifact.ArtifactError``. ``info`` is empty: provenance does not travel on the stream.
    """
    cfg, params, lanes, sections = unpack_model(beats)
    in_ddr = not len(sections["weights"])
    if in_ddr and layers is None:
        raise PackingError("the model packet keeps its weights, biases and thresholds in DDR: the model is the "
                           "packet and its weight buffer (dynaspike.ddr.unpack_weights)")
    specs = tensor_specs(cfg)
    tensors = dict(layers) if in_ddr else layer_tensors(cfg, lanes, sections)
    for name in ("emb_w", "emb_b", "head_w", "head_b", "mask", "halt_lut"):
        tensors[name] = sections[name].astype(specs[name][1])
    return IntModel(cfg, params, tensors).validate(), lanes


def pack_model(model: IntModel, lanes: int, weights_in_ddr: bool = False) -> np.ndarray:
    """The model packet for a core with ``lanes`` P (validates the model first). With ``weights_in_ddr`` its
    ``DDR_SECTIONS`` are empty: the core reads them from the weight buffer ``dynaspike.ddr.pack_weights``
    gives, at the address in its WEIGHTS_ADDR register."""
    model.validate()
    cfg = model.config
    data = {
        "config": [getattr(cfg, f.name) for f in fields(ModelConfig)],
        "params": [getattr(model.params, f.name) for f in fields(IntParams)],
    }
    if weights_in_ddr:
        data.update({name: np.zeros((0,), np.int64) for name in DDR_SECTIONS})
    else:
        data.update(memory_images(model, lanes))
    parts = []
    for sid, name, bits in SECTIONS:
        beats = to_beats(data[name] if name in data else model[name], bits)
        parts.append(np.array([sid | (bits << 16) | (len(beats) << 32)], dtype=np.uint64))
        parts.append(beats)
    return _packet(Kind.MODEL, lanes, np.concatenate(parts))


def unpack_model(beats: np.ndarray) -> tuple:
    """Parse a model packet back into ``(config, params, lanes, sections)``; sections are int64 arrays.

    The inverse of :func:`pack_model` (used by tests and by the simulated core's checks): ``sections``
    holds every tensor of the artifact that is streamed as such, and the three memory images.
    """
    lanes, payload = parse_packet(beats, Kind.MODEL)
    sections, pos = {}, 0
    cfg = params = None
    for sid, name, bits in SECTIONS:
        if pos >= len(payload):
            raise PackingError(f"section {name} missing: payload ends at beat {pos}")
        head = int(payload[pos])
        if head & 0xFFFF != sid or (head >> 16) & 0xFF != bits:
            raise PackingError(f"payload beat {pos}: section header {head:#018x}, expected id {sid} ({name}) "
                               f"with {bits}-bit elements")
        n = head >> 32
        body = payload[pos + 1:pos + 1 + n]
        if len(body) != n:
            raise PackingError(f"section {name}: header says {n} beats, only {len(body)} remain")
        pos += 1 + n
        if name == "config":
            cfg = ModelConfig(*(int(v) for v in from_beats(body, bits, len(fields(ModelConfig)))))
        elif name == "params":
            params = IntParams(*(int(v) for v in from_beats(body, bits, len(fields(IntParams)))))
        elif name in DDR_SECTIONS and n == 0:   # weights in DDR (pack_model(..., weights_in_ddr=True))
            sections[name] = np.zeros((0, _section_shape(cfg, lanes, name)[1]), np.int64)
        else:
            shape = _section_shape(cfg, lanes, name)
            signed = name not in ("mask", "halt_lut")
            sections[name] = from_beats(body, bits, int(np.prod(shape)), signed).reshape(shape)
    if pos != len(payload):
        raise PackingError(f"{len(payload) - pos} beats after the last section")
    return cfg, params, lanes, sections


def _section_shape(cfg: ModelConfig, lanes: int, name: str) -> tuple:
    rows, width = weight_layout(cfg, lanes)["_rows"], memory_lanes(lanes)
    return {"emb_w": (cfg.dim, cfg.patch_dim), "emb_b": (cfg.num_tokens, cfg.dim),
            **{k: (rows[k], width[k]) for k in ("weights", "biases", "thresholds")}, "head_w": (cfg.num_classes, cfg.dim),
            "head_b": (cfg.num_classes,), "mask": (cfg.num_modules, cfg.t_max),
            "halt_lut": (FORMATS.halt_lut_size,)}[name]


def section_beats(cfg: ModelConfig, lanes: int) -> dict:
    """``{section name: data beats}`` of a model packet of this configuration for ``lanes`` P (what
    :func:`pack_model` writes in each section header)."""
    counts = {"config": len(fields(ModelConfig)), "params": len(fields(IntParams))}
    return {name: -(-(counts[name] if name in counts else int(np.prod(_section_shape(cfg, lanes, name)))) * bits
                    // BEAT_BITS) for _, name, bits in SECTIONS}


# --------------------------------------------------------------------------------------------- images
def image_to_patches(image: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` uint8 image -> ``(N, patch_dim)`` embedding windows (integer model step 1).

    Token k's window is the ``embed_kernel``-square window centred on its patch (stride ``patch_size``, the
    image zero-padded by ``embed_pad`` on each side); tokens row-major over the patch grid, channel-major
    then row-major pixels inside a window. The host does the windowing: the core receives each token's
    window as it multiplies it, so no line buffer is needed and overlapping windows cost only stream bytes.
    """
    img = np.asarray(image)
    want = (cfg.in_channels, cfg.img_size, cfg.img_size)
    if (img.shape if img.ndim != 2 else (1,) + img.shape) != want:
        raise ValueError(f"image shape {img.shape}, expected {want} (or {want[1:]} for one channel)")
    return images_to_patches(img[None], cfg)[0]


def images_to_patches(images: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """A batch ``(B, C, H, W)`` (or ``(B, H, W)`` for one channel) of uint8 images -> ``(B, N, patch_dim)``
    windows, each as :func:`image_to_patches` makes them."""
    x = np.asarray(images)
    want = (cfg.in_channels, cfg.img_size, cfg.img_size)
    if x.ndim == 3 and cfg.in_channels == 1:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != want:
        raise ValueError(f"images shape {np.asarray(images).shape}, expected (B, {', '.join(map(str, want))})"
                         + (f" or (B, {want[1]}, {want[2]})" if cfg.in_channels == 1 else ""))
    if x.dtype != np.uint8:
        raise ValueError(f"image dtype {x.dtype}, expected uint8")
    k, p, pad = cfg.embed_kernel, cfg.patch_size, cfg.embed_pad
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    g = cfg.img_size // p
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::p, ::p]  # (B, C, g, g, k, k)
    win = win[:, :, :g, :g].transpose(0, 2, 3, 1, 4, 5)
    return np.ascontiguousarray(win).reshape(len(x), g * g, cfg.in_channels * k * k)


def beats_per_token(cfg: ModelConfig) -> int:
    """Beats of one token's window in an image packet: ``patch_dim`` bytes rounded up to whole beats."""
    return -(-cfg.patch_dim // BEAT_BYTES)


def pack_image(image: np.ndarray, cfg: ModelConfig, tag: int = 0) -> np.ndarray:
    """The image packet: token after token, each window's ``patch_dim`` bytes zero-padded to whole beats
    (``beats_per_token``), so the core fills one window from whole beats; ``tag`` (32 bits) comes back in
    the result."""
    image_to_patches(image, cfg)  # the single-image shape check and its message
    img = np.asarray(image)
    return pack_images(img[None] if img.ndim == 3 or cfg.in_channels > 1 else img[None, None], cfg, [tag])[0]


def pack_images(images: np.ndarray, cfg: ModelConfig, tags) -> np.ndarray:
    """The image packets of a batch (:func:`images_to_patches` shapes), one per row: ``(B, beats)``
    uint64, row ``i`` equal to ``pack_image(images[i], cfg, tags[i])``."""
    tags = np.asarray(tags, dtype=np.int64)
    win = images_to_patches(images, cfg)
    B = len(win)
    if tags.shape != (B,):
        raise ValueError(f"tags must have shape ({B},), got {tags.shape}")
    if B and (tags.min() < 0 or tags.max() >= (1 << 32)):
        raise ValueError(f"image tags must fit 32 bits, got {tags.min()}..{tags.max()}")
    bpt = beats_per_token(cfg)
    padded = np.zeros((B, cfg.num_tokens, bpt * BEAT_BYTES), np.uint8)
    padded[:, :, :cfg.patch_dim] = win
    payload = padded.reshape(B, -1).view("<u8").astype(np.uint64)          # (B, N * bpt)
    # Every operand of a mask or shift on beats is np.uint64 (numpy 1.x makes uint64 op int64 a float64).
    csum = payload.view("<u4").astype(np.uint64).sum(axis=1) & np.uint64(0xFFFFFFFF)
    head0 = np.uint64(STREAM_MAGIC | (STREAM_VERSION << 32) | (Kind.IMAGE << 40))
    out = np.empty((B, payload.shape[1] + 3), np.uint64)
    out[:, 0] = head0
    out[:, 1] = np.uint64(payload.shape[1]) | (tags.astype(np.uint64) << np.uint64(32))
    out[:, 2:-1] = payload
    out[:, -1] = csum | np.uint64(TRAILER_MAGIC << 32)
    return out


def unpack_image(beats: np.ndarray, cfg: ModelConfig) -> tuple:
    """``(tag, patches (N, patch_dim) uint8)`` from an image packet."""
    tag, payload = parse_packet(beats, Kind.IMAGE)
    bpt = beats_per_token(cfg)
    if len(payload) != cfg.num_tokens * bpt:
        raise PackingError(f"image payload of {len(payload)} beats, expected {cfg.num_tokens * bpt} "
                           f"({cfg.num_tokens} tokens x {bpt} beats)")
    raw = from_beats(payload, 8, len(payload) * BEAT_BYTES, signed=False).reshape(cfg.num_tokens, bpt * BEAT_BYTES)
    return tag, raw[:, :cfg.patch_dim].astype(np.uint8)


# --------------------------------------------------------------------------------------------- results
COUNTER_NAMES = tuple(name for name, _ in PERF_COUNTERS)


def result_payload_beats(num_classes: int) -> int:
    """Payload beats of a result packet: the logits (two per beat), the cycle count, the counters (two per beat)."""
    return -(-num_classes // 2) + 1 + -(-len(COUNTER_NAMES) // 2)


def pack_result(logits: np.ndarray, cycles: int, counters: dict, tag: int = 0) -> np.ndarray:
    """The result packet: logits as int32 (two per beat), one beat with the 64-bit cycle count, then the
    image's performance counters (``regmap.PERF_COUNTERS`` order, uint32, two per beat); ``counters`` maps
    every counter name to its value."""
    missing = set(COUNTER_NAMES) - set(counters)
    if missing:
        raise PackingError(f"result counters missing: {sorted(missing)}")
    payload = np.concatenate([to_beats(np.asarray(logits, np.int64), 32),
                              np.array([cycles], dtype=np.uint64),
                              to_beats(np.array([counters[n] for n in COUNTER_NAMES], np.int64), 32)])
    return _packet(Kind.RESULT, tag, payload)


def unpack_result(beats: np.ndarray, num_classes: int) -> tuple:
    """``(tag, logits int64 (num_classes,), cycles, counters {name: int})`` from a result packet."""
    tag, payload = parse_packet(beats, Kind.RESULT)
    want = result_payload_beats(num_classes)
    if len(payload) != want:
        raise PackingError(f"result payload of {len(payload)} beats, expected {want} for {num_classes} classes")
    nl = -(-num_classes // 2)
    counts = from_beats(payload[nl + 1:], 32, len(COUNTER_NAMES), signed=False)
    return (tag, from_beats(payload[:nl], 32, num_classes), int(payload[nl]),
            {name: int(v) for name, v in zip(COUNTER_NAMES, counts)})


# --------------------------------------------------------------------------------------------- taps
# Debug taps (RUN_CONFIG.DEBUG_TAPS): the core's state at the end of an inference, one TAP packet before
# the result. Fields in this order, 16-bit elements, each field starting on a beat:
# (name, shape as a function of the config, signed).
TAP_FIELDS = (
    ("counts", lambda c: (c.dim,), False),              # readout counts C
    ("rep", lambda c: (c.num_tokens,), False),           # each token's representative
    ("size", lambda c: (c.num_tokens,), False),          # merge sizes (0 if merged away)
    ("halt_t", lambda c: (c.num_tokens,), True),         # step each token halted at (-1: merged away)
    ("halt_l", lambda c: (c.num_tokens,), True),         # block it halted after (-1: merged away)
    ("hacc", lambda c: (c.num_tokens,), False),          # cumulative halting score
    ("x", lambda c: (c.num_tokens, c.dim), True),        # the residual stream X at the end
)
TAP_BITS = 16


def pack_taps(taps: dict, cfg: ModelConfig, tag: int = 0) -> np.ndarray:
    """The TAP packet of ``taps`` (``{name: int array}`` for every ``TAP_FIELDS`` entry)."""
    parts = []
    for name, shape, _ in TAP_FIELDS:
        a = np.asarray(taps[name], np.int64)
        if a.shape != shape(cfg):
            raise PackingError(f"tap {name} has shape {a.shape}, expected {shape(cfg)}")
        parts.append(to_beats(a, TAP_BITS))
    return _packet(Kind.TAP, tag, np.concatenate(parts))


def unpack_taps(beats: np.ndarray, cfg: ModelConfig) -> tuple:
    """``(tag, {name: int64 array})`` from a TAP packet."""
    tag, payload = parse_packet(beats, Kind.TAP)
    out, pos = {}, 0
    for name, shape, signed in TAP_FIELDS:
        n = int(np.prod(shape(cfg)))
        nb = -(-n * TAP_BITS // BEAT_BITS)
        if pos + nb > len(payload):
            raise PackingError(f"TAP payload of {len(payload)} beats ends inside field {name}")
        out[name] = from_beats(payload[pos:pos + nb], TAP_BITS, n, signed).reshape(shape(cfg))
        pos += nb
    if pos != len(payload):
        raise PackingError(f"TAP payload of {len(payload)} beats, expected {pos}")
    return tag, out


def capacity_for(cfg: ModelConfig, lanes: int, clock_hz: int = 100_000_000) -> Capacity:
    """The smallest capacity that holds models of this configuration on a core with ``lanes`` P."""
    rows = weight_layout(cfg, lanes)["_rows"]
    return Capacity(lanes=lanes, max_tokens=cfg.num_tokens, max_dim=cfg.dim, max_hidden=cfg.hidden_dim,
                    max_blocks=cfg.blocks, max_t=cfg.t_max, max_classes=cfg.num_classes,
                    max_patch_dim=cfg.patch_dim, weight_rows=rows["weights"], bias_rows=rows["biases"],
                    threshold_rows=rows["thresholds"], formats_id=formats_id(), clock_hz=clock_hz,
                    head_dim=cfg.head_dim)
