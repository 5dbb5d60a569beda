"""DDR mode: where a model too large for the core's block RAM keeps its weights and LIF membranes in the
board's DDR, and what an inference moves there (docs/hardware.md, "DDR mode").

The passes are weight-stationary. An event pass streams its layer's weights one *tile* at a time into one of
two tile buffers. A tile holds what one engine row needs: the ``fan_in`` weight rows of ``ACC_ROWS * P``
outputs, their bias row and, for a layer that feeds a LIF layer, their threshold rows. Every active token
walks over the tile while the next tile loads into the other buffer. So a pass reads each weight it needs
once, and a module the time-step mask switches off, or a pass with no active token, reads nothing.

A LIF layer's *row* holds the P membranes of one token and chunk. It moves between DDR and the LIF layer
when the pass reaches it, for active tokens only: halted and merged tokens move no state. A row not yet
written in this image reads as zero without a DDR read (a valid bit per row on chip, cleared per image), and
the last time step writes nothing back (nothing reads it again).

Formats: weights are 8-bit lanes, as in the model packet (``packing.weight_layout``'s rows, ``ACC_ROWS * P``
lanes each). Biases and thresholds are the model packet's 32-bit lanes (``SIDE_BITS``), so the tile loader
writes their beats into the memories exactly as the stream loader does. Membranes are
``FORMATS.acc_bits``-bit lanes (they are most of the state traffic). Lanes are packed little-endian with
lane 0 in the lowest bits; every row is a whole number of 64-bit beats, because P is a multiple of 8.

The driver, the golden transport and the traffic model import it; the buffers' contents
(:func:`pack_weights`, :func:`unpack_weights`, :func:`pack_lanes`) use numpy, as ``packing`` does.
"""

from dataclasses import dataclass

import numpy as np

from .config import ModelConfig
from .cycles import ACC_ROWS, engine_rows
from .formats import FORMATS
from .packing import SECTIONS, SPIKE_LAYERS, PackingError, layer_tensors, memory_images, memory_lanes, weight_layout

#: Bytes per beat of the AXI HP port (64 bits a cycle in each direction).
BEAT_BYTES = 8
#: Beats per burst at most: the Zynq-7000 HP ports are AXI3, whose INCR bursts are 16 beats at most.
BURST = 16
#: Bursts the AXI masters keep in flight (``hw.axi_master``). Membrane runs are short (24 beats: 16 + 8 at
#: the burst blocks), so 4 bursts of 12 beats on average do not cover a 40-cycle read latency (19 % over the
#: run's beats, against 2.7 % with 8; docs/hardware.md, "DDR mode"). 8 is the HP ports' AFI command queue
#: depth as UG1085 gives it for the Zynq UltraScale+; UG585 (Zynq-7000) was not checked for the exact figure.
OUTSTANDING = 8
#: The weight buffer's alignment: every transport places it at a 4 KiB page (``pynq.allocate`` does), so its
#: tiles split into bursts (``BURST`` beats inside aligned blocks) the same way wherever it is, and the cycle
#: model's figure holds for any placed buffer.
BUFFER_ALIGN = 4096
#: The read latency of cocotbext-axi's ``AxiRamRead`` as the simulated board serves the weight buffer: cycles
#: from an AR handshake to its first R beat (tests/test_core_sim.py measures it).
SIM_RAM_LATENCY = 2
#: Bits per lane of a tile's bias and threshold rows: the model packet's (``packing.SECTIONS``)
SIDE_BITS = {name: bits for _, name, bits in SECTIONS}["biases"]
#: The LIF layers of a block whose membranes persist across time steps, as the golden model names them.
BLOCK_STATE = ("ain", "q", "k", "v", "attn", "min", "hid")
#: The readout's LIF layer: one for the whole network.
READOUT_STATE = "out"


def lane_row_bytes(lanes: int, bits: int = FORMATS.acc_bits) -> int:
    """Bytes of one row of ``lanes`` packed ``bits``-bit lanes: a whole number of beats."""
    if lanes < 8 or lanes % 8:
        raise ValueError(f"lanes must be a positive multiple of 8 (whole beats per row), got {lanes!r}")
    size = lanes * bits // 8
    if size % BEAT_BYTES:
        raise ValueError(f"a row of {lanes} lanes of {bits} bits is {size} bytes, not whole {BEAT_BYTES}-byte beats")
    return size


def tile_bytes(fan_in: int, lanes: int, thresholds: bool) -> int:
    """Bytes of one weight tile: its bias row (``ACC_ROWS * P`` lanes of ``SIDE_BITS``), its threshold rows
    (``ACC_ROWS`` chunks of P such lanes: as many bytes) when the layer has them, then its ``fan_in`` weight
    rows."""
    side = lane_row_bytes(ACC_ROWS * lanes, SIDE_BITS)
    return side * (2 if thresholds else 1) + fan_in * lane_row_bytes(ACC_ROWS * lanes, FORMATS.weight_bits)


def weight_buffer(cfg: ModelConfig, lanes: int) -> dict:
    """The DDR weight buffer: ``{"b{l}.{name}": {"offset", "tile_bytes", "tiles"}}`` in the order the passes
    read them (per block: q, k, v, proj, fc1, fc2; a layer's tiles are its engine rows in order), and the
    total under ``"_bytes"``. Tile ``g`` of a layer starts at ``offset + g * tile_bytes``."""
    lay, out, pos = weight_layout(cfg, lanes), {}, 0
    for l in range(cfg.blocks):
        for name in SPIKE_LAYERS:
            key = f"b{l}.{name}"
            w = lay[key]
            size = tile_bytes(w["fan_in"], lanes, w["th_row"] is not None)
            out[key] = {"offset": pos, "tile_bytes": size, "tiles": w["groups"]}
            pos += size * w["groups"]
    out["_bytes"] = pos
    return out


def pack_lanes(values, bits: int = FORMATS.acc_bits) -> bytes:
    """Signed integers (any shape, row-major) as packed little-endian ``bits``-bit lanes (8, 16, 24 or 32)."""
    if bits not in (8, 16, 24, 32):
        raise ValueError(f"lanes of 8, 16, 24 or 32 bits, not {bits}")
    a = np.asarray(values, np.int64).ravel()
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        raise PackingError(f"values {a.min()}..{a.max()} do not fit {bits}-bit lanes")
    return np.stack([(a >> (8 * k)) & 0xFF for k in range(bits // 8)], -1).astype(np.uint8).tobytes()


def unpack_lanes(buf: bytes, count: int, bits: int = FORMATS.acc_bits) -> np.ndarray:
    """The first ``count`` signed ``bits``-bit lanes of ``buf`` (:func:`pack_lanes`' inverse), as int64."""
    n = bits // 8
    if count * n > len(buf):
        raise PackingError(f"need {count} lanes of {bits} bits ({count * n} bytes), the buffer has {len(buf)}")
    b = np.frombuffer(buf, np.uint8, count * n).reshape(count, n).astype(np.int64)
    v = sum(b[:, k] << (8 * k) for k in range(n))
    return v - ((v >> (bits - 1)) << bits)


def tiles(cfg: ModelConfig, lanes: int) -> list:
    """Every weight tile of :func:`weight_buffer`, in buffer order: ``{"key", "g", "offset", "bytes",
    "fan_in", "chunks", "thresholds", "w_base", "b_row", "th_row"}`` (``chunks``: the tile's chunks of P
    outputs, ``ACC_ROWS`` or, in a layer's last tile, fewer). ``w_base``, ``b_row`` and ``th_row`` are where
    the on-chip layout (``packing.weight_layout``) keeps the tile's rows (``th_row`` is None without
    thresholds): the rows ``hw.tile_loader.TileLoader`` writes to rebuild the on-chip memories."""
    lay, buf, out = weight_layout(cfg, lanes), weight_buffer(cfg, lanes), []
    for key, t in buf.items():
        if key.startswith("_"):
            continue
        w = lay[key]
        for g in range(t["tiles"]):
            out.append({"key": key, "g": g, "offset": t["offset"] + g * t["tile_bytes"], "bytes": t["tile_bytes"],
                        "fan_in": w["fan_in"],
                        "chunks": min(ACC_ROWS, w["chunks"] - ACC_ROWS * g), "thresholds": w["th_row"] is not None,
                        "w_base": w["w_base"] + g * w["fan_in"], "b_row": w["b_row"] + g,
                        "th_row": None if w["th_row"] is None else w["th_row"] + ACC_ROWS * g})
    return out


def pack_weights(model, lanes: int) -> bytes:
    """The DDR weight buffer of ``model`` (an IntModel) for ``lanes`` P: every tile of :func:`weight_buffer`,
    its rows taken from ``packing.memory_images`` (padding lanes as there: weights and biases 0,
    thresholds ``acc_max``)."""
    mem = memory_images(model, lanes)
    out = bytearray(weight_buffer(model.config, lanes)["_bytes"])
    for t in tiles(model.config, lanes):
        parts = [pack_lanes(mem["biases"][t["b_row"]], SIDE_BITS)]
        if t["thresholds"]:   # a layer's last tile may have one chunk: its second row is padding
            parts.append(pack_lanes([mem["thresholds"][t["th_row"] + c] if c < t["chunks"] else
                                     np.full(lanes, FORMATS.acc_max) for c in range(ACC_ROWS)], SIDE_BITS))
        parts.append(pack_lanes(mem["weights"][t["w_base"]:t["w_base"] + t["fan_in"]], FORMATS.weight_bits))
        tile = b"".join(parts)
        out[t["offset"]:t["offset"] + len(tile)] = tile
    return bytes(out)


def unpack_weights(buf: bytes, cfg: ModelConfig, lanes: int) -> dict:
    """The spike layers' tensors (``packing.layer_tensors``: ``"b{l}.{name}_w" | "_b" | "_th"``) from a DDR
    weight buffer (:func:`pack_weights`' inverse); PackingError if ``buf`` is not the layout's size."""
    size = weight_buffer(cfg, lanes)["_bytes"]
    if len(buf) != size:
        raise PackingError(f"a weight buffer for this model at P = {lanes} is {size} bytes, got {len(buf)}")
    rows, width = weight_layout(cfg, lanes)["_rows"], memory_lanes(lanes)
    mem = {k: np.zeros((rows[k], width[k]), np.int64) for k in rows}
    side = lane_row_bytes(ACC_ROWS * lanes, SIDE_BITS)
    for t in tiles(cfg, lanes):
        pos = t["offset"]
        mem["biases"][t["b_row"]] = unpack_lanes(buf[pos:pos + side], ACC_ROWS * lanes, SIDE_BITS)
        pos += side
        if t["thresholds"]:
            th = unpack_lanes(buf[pos:pos + side], ACC_ROWS * lanes, SIDE_BITS).reshape(ACC_ROWS, lanes)
            mem["thresholds"][t["th_row"]:t["th_row"] + t["chunks"]] = th[:t["chunks"]]
            pos += side
        n = t["fan_in"] * ACC_ROWS * lanes
        mem["weights"][t["w_base"]:t["w_base"] + t["fan_in"]] = unpack_lanes(
            buf[pos:pos + n], n, FORMATS.weight_bits).reshape(t["fan_in"], ACC_ROWS * lanes)
    return layer_tensors(cfg, lanes, mem)


def state_width(cfg: ModelConfig, kind: str) -> int:
    """Membranes per token of a state layer (``BLOCK_STATE`` or ``READOUT_STATE``)."""
    if kind not in BLOCK_STATE + (READOUT_STATE,):
        raise ValueError(f"unknown state layer {kind!r}; one of {BLOCK_STATE + (READOUT_STATE,)}")
    return cfg.hidden_dim if kind == "hid" else cfg.dim


def state_buffer(cfg: ModelConfig, lanes: int) -> dict:
    """The DDR state buffer: ``{"b{l}.{kind}" or "out": {"offset", "chunks"}}``, ``"_row_bytes"`` and the
    total under ``"_bytes"``. The row of chunk ``c`` of token ``n`` is :func:`state_row`: a token's
    ``ACC_ROWS`` chunks of one engine row lie side by side, so an event pass reads them as one run."""
    out, pos, row = {}, 0, lane_row_bytes(lanes)
    keys = [(f"b{l}.{k}", k) for l in range(cfg.blocks) for k in BLOCK_STATE] + [(READOUT_STATE, READOUT_STATE)]
    for key, kind in keys:
        chunks = -(-state_width(cfg, kind) // lanes)
        out[key] = {"offset": pos, "chunks": chunks}
        pos += engine_rows(chunks) * ACC_ROWS * cfg.num_tokens * row
    out["_row_bytes"], out["_bytes"] = row, pos
    return out


def state_row(layout: dict, cfg: ModelConfig, key: str, chunk: int, token: int) -> int:
    """Byte offset of the row of ``chunk`` of ``token`` in state layer ``key`` of ``layout``
    (:func:`state_buffer`)."""
    s = layout[key]
    if not (0 <= chunk < s["chunks"] and 0 <= token < cfg.num_tokens):
        raise ValueError(f"{key}: chunk {chunk} of {s['chunks']}, token {token} of {cfg.num_tokens}")
    g, half = divmod(chunk, ACC_ROWS)
    return s["offset"] + ((g * cfg.num_tokens + token) * ACC_ROWS + half) * layout["_row_bytes"]


@dataclass(frozen=True)
class Memory:
    """The DDR as the traffic model sees it.

    - ``ports``: AXI HP ports, each one beat per cycle on its read and its write channel (64 bits at the
      core's clock). With one, weights and membranes share its read channel; with two, the membranes use
      the second.
    - ``read_latency``: cycles from a burst's address handshake to its first beat on R (:func:`read_schedule`
      is exact for a memory of such a fixed latency).
    - ``bytes_per_cycle``: what the DDR itself gives, reads and writes together.

    The defaults are assumptions for the PYNQ-Z2 at 100 MHz, not measurements; the board's cycle counter
    shows the difference. The latency is about 400 ns to its DDR3 through an HP port. Its 16-bit DDR3 at
    1,050 MT/s gives about 1.6 GB/s usable (ANCHORS.md): 16 bytes a cycle."""

    read_latency: int = 40
    ports: int = 1
    bytes_per_cycle: int = 16

    def __post_init__(self):
        for name, lo in (("read_latency", 0), ("ports", 1), ("bytes_per_cycle", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"Memory.{name} must be an int >= {lo}, got {v!r}")
        if self.ports > 2:
            raise ValueError(f"Memory.ports is 1 (shared) or 2 (membranes on their own), not {self.ports}")


def bursts(addr: int, beats: int, burst: int = BURST) -> list:
    """The burst lengths ``hw.axi_master`` splits a read or write of ``beats`` beats at byte address
    ``addr`` into: each up to the end of its aligned block of ``burst`` beats."""
    out, beat = [], addr // BEAT_BYTES
    while beats:
        n = min(beats, burst - beat % burst)
        out.append(n)
        beat, beats = beat + n, beats - n
    return out


class _Bursts:
    """What :func:`read_schedule` and :func:`write_schedule` share (``hw.axi_master``'s rules), one command
    at a time (:meth:`add`): the master accepts a command when it is offered and it has addressed the
    command before (``ready``: the first cycle it can accept the next); addresses its first burst the cycle
    after accepting it, then one burst a cycle while fewer than ``outstanding`` are open (a burst closes
    the cycle after it is done), and can accept the next command the cycle after addressing this one's last
    burst. A burst's data starts ``data_after`` cycles after its address, or right after the burst before;
    it is done ``done_after`` cycles after its last beat."""

    def __init__(self, data_after: int, done_after: int, burst: int, outstanding: int, ready: int = 0):
        self.data_after, self.done_after, self.burst, self.outstanding = data_after, done_after, burst, outstanding
        self.ready, self.last, self.done = ready, [], []

    def add(self, addr: int, beats: int, offer: int = 0) -> tuple:
        """Accept the command ``(addr, beats)`` offered from cycle ``offer`` on: ``(accepted, [(first data
        cycle, beats, done)] per burst)``."""
        last, done = self.last, self.done
        a = accept = max(self.ready, offer)
        runs = []
        for n in bursts(addr, beats, self.burst):
            i = len(done)
            a = max(a + 1, done[i - self.outstanding] + 1) if i >= self.outstanding else a + 1
            first = max(a + self.data_after, last[-1] + 1) if last else a + self.data_after
            last.append(first + n - 1)
            done.append(last[-1] + self.done_after)
            runs.append((first, n, done[-1]))
        self.ready = a + 1
        return accept, runs


def _bursts_schedule(commands, data_after: int, done_after: int, burst: int, outstanding: int,
                     offers=None) -> list:
    """:class:`_Bursts` over ``commands`` in order, command ``k`` offered from ``offers[k]`` (back to back
    from cycle 0 if None); the master is idle until the first offer (which may be negative: a pass's tiles
    can start in the pass before, ``tile_pass_schedule``). Per command ``(accepted, runs)``."""
    m = _Bursts(data_after, done_after, burst, outstanding, offers[0] if offers is not None and len(offers) else 0)
    return [m.add(addr, beats, offers[k] if offers is not None else 0) for k, (addr, beats) in enumerate(commands)]


def _ends(schedule) -> list:
    """``(accepted, done)`` of each command of a :func:`_bursts_schedule` (0 beats: its acceptance)."""
    return [(accept, runs[-1][2] if runs else accept) for accept, runs in schedule]


def read_schedule(commands, read_latency: int, burst: int = BURST, outstanding: int = OUTSTANDING,
                  offers=None) -> list:
    """``(accepted, last)`` cycles of each ``(byte address, beats)`` command that ``hw.axi_reader.AxiReader``
    is offered back to back from cycle 0 (or command ``i`` from cycle ``offers[i]`` on, in order): the cycle
    it is accepted and the cycle of its last beat (a command of 0 beats: its acceptance). Exact for a memory
    that puts a burst's first beat on R ``read_latency`` (>= 1) cycles after the burst's address handshake,
    the bursts' beats in order, one a cycle, and takes every address at once.

    The reader addresses a command's first burst the cycle after accepting it, then one burst a cycle
    while fewer than ``outstanding`` are in flight (a burst leaves the count the cycle after its last
    beat), and accepts the next command the cycle after addressing this one's last burst."""
    return _ends(_read_bursts(commands, read_latency, burst, outstanding, offers))


def _check_latency(name: str, value):
    """A memory latency of the schedules: an int of at least one cycle."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 cycle, got {value!r}")


def _read_bursts(commands, read_latency: int, burst: int, outstanding: int, offers) -> list:
    _check_latency("read_latency", read_latency)
    return _bursts_schedule(commands, read_latency, 0, burst, outstanding, offers)


def read_beats(commands, read_latency: int, burst: int = BURST, outstanding: int = OUTSTANDING,
               offers=None) -> list:
    """As :func:`read_schedule`, with every beat: ``(accepted, [cycle of each beat])`` per command."""
    return [(accept, [first + k for first, n, _ in runs for k in range(n)])
            for accept, runs in _read_bursts(commands, read_latency, burst, outstanding, offers)]


def shared_read_beats(clients, read_latency: int, burst: int = BURST, outstanding: int = OUTSTANDING) -> list:
    """The reads of several clients through ``hw.read_arbiter.ReadArbiter`` and one ``hw.axi_reader.AxiReader``
    (as :func:`read_beats`, exact for the same memory, with every client always ready for its beats).
    ``clients[k]``: client ``k``'s commands ``(byte address, beats, offer)`` in its order, each offered from
    cycle ``offer`` on and not before the cycle after its previous command was accepted. The reader takes a
    command when it is ready; of the clients offering then, the first after the one granted last (client 0
    first). Returns, per client and command, ``(accepted, [cycle of each beat])``."""
    _check_latency("read_latency", read_latency)
    n = len(clients)
    firsts = [c[0][2] for c in clients if c]
    reader = _Bursts(read_latency, 0, burst, outstanding, min(firsts) if firsts else 0)
    out = [[] for _ in clients]
    offer = [c[0][2] if c else None for c in clients]     # each client's next command is offered from then
    last = n - 1
    while any(o is not None for o in offer):
        t = max(reader.ready, min(o for o in offer if o is not None))
        k = next(k for k in ((last + j) % n for j in range(1, n + 1)) if offer[k] is not None and offer[k] <= t)
        addr, beats, _ = clients[k][len(out[k])]
        accept, runs = reader.add(addr, beats, t)
        out[k].append((accept, [first + i for first, m, _ in runs for i in range(m)]))
        last = k
        nxt = len(out[k])
        offer[k] = max(clients[k][nxt][2], accept + 1) if nxt < len(clients[k]) else None
    return out


def write_schedule(commands, response_latency: int, burst: int = BURST, outstanding: int = OUTSTANDING) -> list:
    """``(accepted, response)`` cycles of each ``(byte address, beats)`` command that ``hw.axi_writer.AxiWriter``
    is offered back to back from cycle 0, with its data beats always offered: the cycle it is accepted and
    the cycle of its last burst's write response (a command of 0 beats: its acceptance). Exact for a memory
    that takes every address and beat at once and answers a burst ``response_latency`` (>= 1) cycles after
    its last beat.

    The writer addresses a command's first burst the cycle after accepting it, then one burst a cycle
    while fewer than ``outstanding`` wait for their response (a burst leaves the count the cycle after its
    response); a burst's data starts two cycles after its address (its length passes a FIFO) or right after
    the burst before; the next command is accepted the cycle after this one's last burst is addressed."""
    _check_latency("response_latency", response_latency)
    return _ends(_bursts_schedule(commands, 2, response_latency, burst, outstanding))


def fill_schedule(commands, row_beats: int, read_latency: int, offers=None, burst: int = BURST,
                  outstanding: int = OUTSTANDING) -> list:
    """The cycles of ``hw.state_mover.StateMover``'s fill commands ``(byte address, rows, zero)`` with an
    ``hw.axi_reader.AxiReader`` of its own, against a memory of fixed ``read_latency`` (as
    :func:`read_schedule`): command ``k`` is offered from cycle ``offers[k]`` on (back to back from cycle 0
    if None), and not before the cycle after command ``k - 1`` is taken. A read command is taken when the
    reader takes it and writes each row in the cycle of its last beat (``row_beats`` a row); a zero command
    is taken when the zero command before has written its last row, and writes a row a cycle from the next
    cycle on, skipping the cycles in which a read row is written. Returns per command ``(taken, [cycle each
    row is written])``."""
    _check_latency("read_latency", read_latency)
    reader, writes, out, zero_end, waiting = None, set(), [], -1, None

    def place(k, taken, rows):     # a zero command's rows, once every read taken before the next is known
        cycles, c = [], taken + 1
        while len(cycles) < rows:
            if c not in writes:
                cycles.append(c)
            c += 1
        out[k] = (taken, cycles)
        return cycles[-1]

    for k, (addr, rows, zero) in enumerate(commands):
        offer = offers[k] if offers is not None else 0
        if out:
            offer = max(offer, out[-1][0] + 1)
        if not rows:
            out.append((offer, []))
        elif zero:
            if waiting:
                zero_end = place(*waiting)
            waiting = (k, max(offer, zero_end + 1), rows)
            out.append((waiting[1], None))
        else:
            if reader is None:
                reader = _Bursts(read_latency, 0, burst, outstanding, offer)
            taken, runs = reader.add(addr, rows * row_beats, offer)
            beats = [first + i for first, n, _ in runs for i in range(n)]
            rows_at = beats[row_beats - 1::row_beats]
            writes.update(rows_at)
            out.append((taken, rows_at))
    if waiting:
        place(*waiting)
    return out


def drain_schedule(commands, row_beats: int, response_latency: int, offers=None, busy=frozenset(),
                   burst: int = BURST, outstanding: int = OUTSTANDING) -> list:
    """The cycles of ``hw.state_mover.StateMover``'s drain commands ``(byte address, rows)`` through an
    ``hw.axi_writer.AxiWriter`` against a memory that takes every address and beat at once and answers a
    burst ``response_latency`` (>= 1) cycles after its last beat (as :func:`write_schedule`), command ``k``
    offered from ``offers[k]`` on (back to back from cycle 0 if None), the layer's port not free in the
    cycles ``busy`` (its updates' write-backs).

    The mover takes a command when the writer takes it and every row of the one before is read; it reads a
    row in the first free cycle from the cycle after (the first row) or from the cycle the row before moves
    on to the register that sends the beats; that happens two cycles after the row's read, or, if the
    register is still sending, with its last beat. The writer addresses a command's bursts from the cycle
    after taking it (one a cycle while fewer than ``outstanding`` wait for their response) and takes a
    burst's beats from two cycles after its address, after the burst before, one a cycle as the mover has
    them. Returns per command ``{"taken", "reads" (the cycle each row is read), "beats" (each beat's cycle on
    W), "done" (the last write response)}``."""
    _check_latency("response_latency", response_latency)
    out, done, issued = [], [], None              # every burst's response; the last burst's address cycle
    ready = rows_free = moved = last_beat = None  # the writer's next command; the mover's last row
    for k, (addr, rows) in enumerate(commands):
        offer = offers[k] if offers is not None else 0
        for earliest in (out[-1]["taken"] + 1 if out else None, rows_free):
            offer = offer if earliest is None else max(offer, earliest)
        if not rows:
            out.append({"taken": offer, "reads": [], "beats": [], "done": offer})
            continue
        taken = offer if ready is None else max(offer, ready)
        lengths = bursts(addr, rows * row_beats, burst)
        reads, beats, b, left = [], [], -1, 0
        for r in range(rows):
            read = max(taken + 1, moved) if moved is not None else taken + 1
            while read in busy:
                read += 1
            reads.append(read)
            moved = read + 2 if last_beat is None else max(read + 2, last_beat)
            t = moved + 1                            # the row's first beat is there from then on
            for _ in range(row_beats):
                if not left:                         # the next burst: addressed, then its data
                    b, left = b + 1, lengths[b + 1]
                    g = len(done)
                    issued = max(taken if b == 0 else issued, done[g - outstanding] if g >= outstanding else -1) + 1
                    t = max(t, issued + 2)
                t = max(t, last_beat + 1) if last_beat is not None else t
                beats.append(t)
                last_beat, left = t, left - 1
                if not left:
                    done.append(t + response_latency)
                t += 1
        # the writer takes the next command the cycle after addressing this one's last burst
        ready, rows_free = issued + 1, reads[-1] + 1
        out.append({"taken": taken, "reads": reads, "beats": beats, "done": done[-1]})
    return out


def read_cycles(addr: int, beats: int, read_latency: int, burst: int = BURST, outstanding: int = OUTSTANDING) -> int:
    """Cycles one command of :func:`read_schedule` takes on an idle reader, from its acceptance to its last
    beat, both counted (1 for a command of 0 beats)."""
    (accepted, last), = read_schedule([(addr, beats)], read_latency, burst, outstanding)
    return last - accepted + 1


def tile_pass_schedule(addr: int, fan_in: int, thresholds: bool, work, lanes: int, read_latency: int,
                       start: int = 0, lead: int = 0, begin: int | None = None, burst: int = BURST,
                       outstanding: int = OUTSTANDING) -> list:
    """The cycles of one DDR event pass's tiles through ``hw.tile_pass.TilePass`` and
    ``hw.tile_loader.TileLoader`` against a memory of fixed ``read_latency`` (as :func:`read_schedule`).
    The pass has ``len(work)`` tiles of ``fan_in`` weight rows from byte address ``addr`` on, taken in cycle
    ``start``; its consumer spends ``work[i]`` (>= 1) event cycles on tile ``i``, one a cycle from ``lead``
    cycles after the tile is ready (the core loads its event generator first: 1), except in the cycles the
    loader writes a weight row (the engine accepts no event then), and raises ``next`` with its last event; with
    ``begin``, not before that cycle (the core starts a pass's tiles in the pass in front of it).

    Returns, per tile, ``{"offered", "accepted", "last_beat", "ready", "done"}``: the first cycle its
    command is offered, accepted, its last beat (and ``done`` pulse), the first cycle it is ready, the cycle
    of its last event. The pass's ``busy`` falls the cycle after the last tile's ``done``."""
    if any(not isinstance(w, int) or w < 1 for w in work):
        raise ValueError(f"every tile needs at least one event cycle, got {list(work)}")
    size = tile_bytes(fan_in, lanes, thresholds)
    side = (size - fan_in * lane_row_bytes(ACC_ROWS * lanes, FORMATS.weight_bits)) // BEAT_BYTES
    w_beats = lane_row_bytes(ACC_ROWS * lanes, FORMATS.weight_bits) // BEAT_BYTES
    commands = [(addr + i * size, size // BEAT_BYTES) for i in range(len(work))]
    out, offers = [], []
    for i in range(len(work)):
        offers.append(start + 1 + i if i < 2 else out[i - 2]["done"] + 1)
        accepted, beats = read_beats(commands[:i + 1], read_latency, burst, outstanding, offers)[i]
        if i:   # tile i - 1's events run while tile i's weight rows are written (each write takes a cycle)
            _schedule_events(out[i - 1], work[i - 1], {beats[side + (r + 1) * w_beats - 1] for r in range(fan_in)},
                             lead, begin)
        out.append({"offered": offers[i], "accepted": accepted, "last_beat": beats[-1],
                    "ready": max(beats[-1], out[i - 1]["done"] if i else start) + 1})
    _schedule_events(out[-1], work[-1], set(), lead, begin)
    return out


def _schedule_events(tile: dict, work: int, writes: set, lead: int, begin):
    """``tile["done"]``: the ``work``-th cycle from ``max(tile["ready"], begin) + lead`` on that is not a
    write."""
    cycle, left = (tile["ready"] if begin is None else max(tile["ready"], begin)) + lead, work
    while True:
        if cycle not in writes:
            left -= 1
            if not left:
                tile["done"] = cycle
                return
        cycle += 1
