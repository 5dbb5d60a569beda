"""The tile loader of DDR mode (issue 11; docs/hardware.md, "DDR mode"): weight tiles read from DDR through
``hw.axi_reader.AxiReader`` and written into the accumulate engine's memories.

A tile (``dynaspike.ddr.tile_bytes``, laid out by ``dynaspike.ddr.pack_weights``) holds what one engine row
of ``A = ACC_ROWS * P`` outputs needs, in this order:

1. its bias row: ``A`` lanes of ``ddr.SIDE_BITS`` (32) bits, little-endian, lane 0 lowest;
2. if the command says so, its ``ACC_ROWS`` threshold rows of ``P`` such lanes (the LIF layer's rows);
3. its ``fan_in`` weight rows of ``A`` int8 lanes.

A command ``(addr, fan_in, thresholds, w_base, b_row, th_row)`` reads the tile at byte address ``addr`` and
writes the bias row to row ``b_row`` of ``b_wr``, the threshold rows to rows ``th_row`` and ``th_row + 1`` of
``th_wr`` (both, also the padding row of a layer's last tile of one chunk: in DDR mode these are the tile
buffer's own rows) and weight row ``i`` to row ``w_base + i`` of ``w_wr``. The write ports have the model
loader's signatures and granules (``hw.loader.ModelLoader``), and every beat is written as that loader
writes it: into the granule of its position in the row (8 weight lanes, or 2 lanes of 32 bits cut to
``FORMATS.acc_bits``), in the cycle it arrives, so the memories never stall the read channel (the engine
keeps a weight row's granules and writes the row with its last: ``hw.accumulate``). ``done`` pulses in the
cycle a tile's last beat is written.

The reader takes the next command as soon as this one's bursts are addressed, so tiles follow each other
on the bus without a gap for the memory's latency; where each tile's rows go waits in a queue for its
first beat. ``busy`` holds from the cycle after a command's acceptance until the last beat of every
command taken is written. ``dynaspike.ddr.read_schedule`` gives each command's acceptance and last beat
against a memory of a fixed latency (``shared_read_beats`` behind a shared port). An AXI error response sets
the reader's sticky ``error`` (``resp``; ``clear`` resets it); the tiles are still read to their end, so the
caller decides what the error means.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import ACC_ROWS
from dynaspike.ddr import BEAT_BYTES, BURST, OUTSTANDING, SIDE_BITS
from dynaspike.formats import FORMATS

from .accumulate import write_signature
from .axi_master import beat_layout, command_layout
from .axi_reader import AxiReader, axi_read_signature
from .params import check_ints

BEAT_BITS = 8 * BEAT_BYTES


def tile_command_layout(max_fan_in: int, weight_rows: int, bias_rows: int, th_rows: int,
                        addr_bits: int = 32) -> data.StructLayout:
    """A tile loader command: the tile's byte address, its weight rows, whether it has threshold rows, and
    where its rows go."""
    return data.StructLayout({"addr": addr_bits, "fan_in": range(max_fan_in + 1), "thresholds": 1,
                              "w_base": range(weight_rows), "b_row": range(bias_rows), "th_row": range(th_rows)})


class TileLoader(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    lanes : int
        P, a multiple of 8 (every row a whole number of beats, every 24-bit row whole triples of beats).
    max_fan_in, weight_rows, bias_rows, th_rows : int
        The largest tile and the depths of the memories it writes.
    own_reader : bool
        True: it reads through its own ``AxiReader`` (ports ``m_axi``, ``error``, ``resp``, ``clear``). False:
        its reads go out as commands on ``rd_cmd`` and their beats come back on ``rd`` (always ready), a client
        of a shared read port (``hw.read_arbiter.SharedReader``, which then has the AXI port and the error).
    """

    def __init__(self, lanes: int, max_fan_in: int, weight_rows: int, bias_rows: int, th_rows: int, *,
                 addr_bits: int = 32, burst: int = BURST, outstanding: int = OUTSTANDING, own_reader: bool = True):
        if not isinstance(lanes, int) or lanes < 8 or lanes % 8:
            raise ValueError(f"TileLoader lanes must be a positive multiple of 8, got {lanes!r}")
        check_ints("TileLoader", max_fan_in=(max_fan_in, 1), weight_rows=(weight_rows, 1), bias_rows=(bias_rows, 1),
                   th_rows=(th_rows, 1))
        if th_rows < ACC_ROWS:
            raise ValueError(f"TileLoader th_rows must be at least {ACC_ROWS} (a tile's threshold rows)")
        self.P, self.A = lanes, ACC_ROWS * lanes
        self.max_fan_in, self.burst, self.outstanding = max_fan_in, burst, outstanding
        acc = signed(FORMATS.acc_bits)
        self.w_beats = self.A * FORMATS.weight_bits // BEAT_BITS          # beats of a weight row
        self.b_beats = self.A * SIDE_BITS // BEAT_BITS                    # of the bias row
        self.th_beats = lanes * SIDE_BITS // BEAT_BITS                    # of one threshold row
        beats = 2 * self.b_beats + max_fan_in * self.w_beats      # the largest tile's
        self.beat_count_bits = beats.bit_length()
        super().__init__({
            "cmd": In(stream.Signature(tile_command_layout(max_fan_in, weight_rows, bias_rows, th_rows,
                                                           addr_bits))),
            "w_wr": Out(write_signature(weight_rows, data.ArrayLayout(signed(FORMATS.weight_bits), self.A),
                                        self.A // 8)),
            "b_wr": Out(write_signature(bias_rows, data.ArrayLayout(acc, self.A), self.A // 2)),
            "th_wr": Out(write_signature(th_rows, data.ArrayLayout(acc, lanes), lanes // 2)),
            "busy": Out(1), "done": Out(1),
            **({"m_axi": Out(axi_read_signature(addr_bits, BEAT_BITS)), "error": Out(1), "resp": Out(2),
                "clear": In(1)} if own_reader else
               {"rd_cmd": Out(stream.Signature(command_layout(addr_bits, self.beat_count_bits))),
                "rd": In(stream.Signature(beat_layout(BEAT_BITS)))}),
        })
        self.addr_bits, self.own_reader = addr_bits, own_reader

    def elaborate(self, platform):
        m = Module()
        if self.own_reader:
            m.submodules.reader = reader = AxiReader(self.addr_bits, BEAT_BITS, burst=self.burst,
                                                     outstanding=self.outstanding,
                                                     beat_count_bits=self.beat_count_bits)
            wiring.connect(m, wiring.flipped(self.m_axi), reader.m_axi)
            m.d.comb += [self.error.eq(reader.error), self.resp.eq(reader.resp), reader.clear.eq(self.clear)]
            rd = SimpleNamespace(cmd=reader.cmd, o=reader.o)
        else:
            rd = SimpleNamespace(cmd=self.rd_cmd, o=self.rd)

        # The command goes straight to the reader; where its rows go waits in `dests` until its first beat
        # (the reader takes the next command while this one's data still comes back).
        c = self.cmd.payload
        dest = data.StructLayout({"thresholds": 1, "w_base": len(c.w_base), "b_row": len(c.b_row),
                                  "th_row": len(c.th_row)})
        m.submodules.dests = dests = SyncFIFO(width=dest.size, depth=self.outstanding + 1)
        beats = Signal(self.beat_count_bits)
        side = Mux(c.thresholds, 2 * self.b_beats, self.b_beats)   # threshold rows: as many bytes as the bias row
        take = self.cmd.valid & self.cmd.ready
        m.d.comb += [beats.eq(c.fan_in * self.w_beats + side),
                     rd.cmd.valid.eq(self.cmd.valid & dests.w_rdy), rd.cmd.payload.addr.eq(c.addr),
                     rd.cmd.payload.beats.eq(beats), self.cmd.ready.eq(rd.cmd.ready & dests.w_rdy),
                     dests.w_en.eq(take),
                     dests.w_data.eq(Cat(c.thresholds, c.w_base, c.b_row, c.th_row))]

        # Where the next beat goes: the bias row, the threshold rows, then the weight rows; `j` is the beat
        # of the row (its granule), `row` the row of the part.
        BIAS, TH, W = range(3)
        cur = Signal(dest)
        have = Signal()                                   # `cur` is the tile whose beats come now
        part = Signal(range(3))
        j = Signal(range(max(self.b_beats, self.w_beats)))
        row = Signal.like(c.w_base)
        # busy: a tile taken whose last beat is still to come (as the reader's busy: from the cycle after the
        # command's acceptance, the tile's destination is in `dests` or `cur`, to the cycle after its last beat)
        m.d.comb += self.busy.eq(have | dests.r_rdy)
        got = rd.o.valid                                  # the memories take a beat every cycle
        tile_end = got & rd.o.payload.last
        beat = rd.o.payload.data
        m.d.comb += rd.o.ready.eq(1)
        lanes = Cat(*(beat.word_select(k, SIDE_BITS)[:FORMATS.acc_bits] for k in range(BEAT_BITS // SIDE_BITS)))
        m.d.comb += [
            self.b_wr.addr.eq(cur.b_row),
            self.b_wr.data.as_value().eq(lanes.replicate(self.b_beats)),
            self.th_wr.addr.eq(cur.th_row + row),
            self.th_wr.data.as_value().eq(lanes.replicate(self.th_beats)),
            self.w_wr.addr.eq(row),
            self.w_wr.data.as_value().eq(beat.replicate(self.w_beats)),
            self.done.eq(tile_end),
        ]
        row_beats = Mux(part == BIAS, self.b_beats, Mux(part == TH, self.th_beats, self.w_beats))
        row_end = j == row_beats - 1
        with m.If(got):
            m.d.sync += j.eq(Mux(row_end, 0, j + 1))
            with m.Switch(part):
                with m.Case(BIAS):
                    m.d.comb += self.b_wr.en.eq(1 << j)
                    with m.If(row_end):
                        m.d.sync += [part.eq(Mux(cur.thresholds, TH, W)), row.eq(Mux(cur.thresholds, 0, cur.w_base))]
                with m.Case(TH):
                    m.d.comb += self.th_wr.en.eq(1 << j)
                    with m.If(row_end):
                        m.d.sync += row.eq(Mux(row == ACC_ROWS - 1, cur.w_base, row + 1))
                        with m.If(row == ACC_ROWS - 1):
                            m.d.sync += part.eq(W)
                with m.Case(W):
                    m.d.comb += self.w_wr.en.eq(1 << j)
                    with m.If(row_end):
                        m.d.sync += row.eq(row + 1)
        # after the beat's own updates, so that a tile's last beat starts the next tile's counters
        with m.If((~have | tile_end) & dests.r_rdy):
            nxt = Signal(dest)
            m.d.comb += [nxt.eq(dests.r_data), dests.r_en.eq(1)]
            m.d.sync += [cur.eq(nxt), have.eq(1), part.eq(BIAS), j.eq(0)]
        with m.Elif(tile_end):
            m.d.sync += have.eq(0)
        return m
