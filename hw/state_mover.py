"""The state mover of DDR mode (issue 11; docs/hardware.md, "DDR mode" item 2): LIF membrane rows between
the DDR state buffer and a staging LIF layer (``hw.lif_layer.LIFLayer(staging=True)``).

A state row is ``P`` membranes of ``FORMATS.acc_bits`` bits, packed little-endian with lane 0 lowest
(``dynaspike.ddr.pack_lanes``): ``RB = P * acc_bits / 64`` beats (12 at P = 32).

- **Fill** ``(addr, row, rows, zero)``: the layer's rows ``row ..`` get ``rows`` state rows.
  With ``zero`` they get rows that read as zero, one a cycle, without a DDR read (a row not yet written in
  this image). Otherwise the mover reads ``rows * RB`` beats from byte address ``addr`` through its read
  client ports (``rd_cmd``, ``rd``: one client of ``hw.read_arbiter.SharedReader``, or an ``AxiReader``)
  and writes each row in the cycle its last beat arrives (the first ``RB - 1`` beats wait in a register),
  so the read channel never waits for the memory. A zero row is written in a cycle without such a row
  write. A read command goes out as soon as it is taken (its rows' destination waits in a queue for its
  beats, as the tile loader's tiles do); a zero command waits until the previous zero command is written.
- **Drain** ``(addr, row, rows)``: the layer's rows ``row ..`` go to byte address ``addr``, through the write
  ports ``wr_cmd`` and ``wr`` (an ``hw.axi_writer.AxiWriter``'s ``cmd`` and ``i``). The command goes to the
  writer when it is taken; the mover reads a row (``drain_en``, in a cycle the layer leaves its port free:
  ``drain_free``), keeps it in a register with the reset of the lanes that fired applied (``v = 0 if fired
  else h``: the membrane the state buffer holds), passes it to a second register that sends its beats one
  a cycle, and reads the next row as soon as the first register is free by the time it comes. The next
  command is taken when every row of this one is read (and the writer takes it). ``wr.last`` marks each
  row's last beat (the writer counts the command's beats itself).

A command of 0 rows is taken and does nothing. ``fill_busy`` holds (from the cycle after a command is
taken) while rows of fill commands taken are still to be written into the layer; ``drain_busy`` while rows
of drain commands taken are still to be read from it (so the layer may write them again once it falls);
``busy`` while anything taken is in the mover (beats not yet given to the writer included; the writer's own
``busy`` says when they are in memory).

Exact timing (``dynaspike.ddr.fill_schedule`` and ``drain_schedule``, against a memory of fixed latencies
and given the cycles the layer's port is not free): a fill's rows are written whatever the layer does (it
waits); a drain's reads wait for the layer, and the writer waits for the drain's beats.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dynaspike.ddr import BEAT_BYTES, OUTSTANDING, lane_row_bytes
from dynaspike.formats import FORMATS

from .axi_master import beat_layout, command_layout
from .lif_layer import staging_signature
from .params import check_ints

BEAT_BITS = 8 * BEAT_BYTES


def move_layout(rows: int, max_rows: int, addr_bits: int = 32, zero: bool = False) -> data.StructLayout:
    """A fill (``zero``: with its ``zero`` flag) or drain command: the DDR byte address, the first staging
    row and the number of rows."""
    return data.StructLayout({"addr": addr_bits, "row": range(rows), "rows": range(max_rows + 1),
                              **({"zero": 1} if zero else {})})


class StateMover(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    lanes : int
        P, a multiple of 8 (a state row is whole beats).
    rows : int
        The staging LIF layer's ``rows``.
    max_rows : int
        The most rows one command moves.
    """

    def __init__(self, lanes: int, rows: int, max_rows: int, acc_bits: int = FORMATS.acc_bits, *,
                 addr_bits: int = 32, outstanding: int = OUTSTANDING):
        check_ints("StateMover", rows=(rows, 2), max_rows=(max_rows, 1), acc_bits=(acc_bits, 2))
        self.P, self.acc_bits, self.rows, self.outstanding = lanes, acc_bits, rows, outstanding
        self.RB = lane_row_bytes(lanes, acc_bits) // BEAT_BYTES      # beats per row (checks lanes)
        self.beat_count_bits = (max_rows * self.RB).bit_length()
        cmd = command_layout(addr_bits, self.beat_count_bits)
        super().__init__({
            "fill": In(stream.Signature(move_layout(rows, max_rows, addr_bits, zero=True))),
            "drain": In(stream.Signature(move_layout(rows, max_rows, addr_bits))),
            "rd_cmd": Out(stream.Signature(cmd)), "rd": In(stream.Signature(beat_layout(BEAT_BITS))),
            "wr_cmd": Out(stream.Signature(cmd)), "wr": Out(stream.Signature(beat_layout(BEAT_BITS))),
            "stage": Out(staging_signature(lanes, rows, acc_bits)),
            "fill_busy": Out(1), "drain_busy": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.busy.eq(self._fill(m) | self._drain(m))
        return m

    def _fill(self, m):
        st, f, RB = self.stage, self.fill.payload, self.RB
        # A read command goes straight to the reader; its first row waits in `dests` until its beats come
        # (the reader takes the next command while this one's data still comes back).
        m.submodules.dests = dests = SyncFIFO(width=len(f.row), depth=self.outstanding + 1)
        zero_left = Signal.like(f.rows)                   # zero rows still to write, from `zero_row` on
        zero_row = Signal.like(f.row)
        empty = f.rows == 0
        m.d.comb += [self.rd_cmd.valid.eq(self.fill.valid & ~f.zero & ~empty & dests.w_rdy),
                     self.rd_cmd.payload.addr.eq(f.addr), self.rd_cmd.payload.beats.eq(f.rows * RB),
                     self.fill.ready.eq(empty | Mux(f.zero, zero_left == 0, self.rd_cmd.ready & dests.w_rdy)),
                     dests.w_en.eq(self.rd_cmd.valid & self.rd_cmd.ready), dests.w_data.eq(f.row)]
        with m.If(self.fill.valid & self.fill.ready & f.zero & ~empty):
            m.d.sync += [zero_left.eq(f.rows), zero_row.eq(f.row)]

        # The beats: the first RB - 1 of a row wait in `gather`; the row is written with its last.
        have = Signal()                                   # `row` is the next row of a command whose beats come
        row = Signal.like(f.row)
        j = Signal(range(RB))
        gather = Signal(BEAT_BITS * (RB - 1))
        beat, got = self.rd.payload.data, self.rd.valid
        row_end = got & (j == RB - 1)
        cmd_end = got & self.rd.payload.last
        m.d.comb += self.rd.ready.eq(1)
        with m.If(got):
            m.d.sync += j.eq(Mux(row_end, 0, j + 1))
            with m.Switch(j):
                for k in range(RB - 1):
                    with m.Case(k):
                        m.d.sync += gather.word_select(k, BEAT_BITS).eq(beat)
        with m.If(row_end):
            m.d.sync += row.eq(row + 1)
        with m.If((~have | cmd_end) & dests.r_rdy):
            m.d.comb += dests.r_en.eq(1)
            m.d.sync += [row.eq(dests.r_data), have.eq(1)]
        with m.Elif(cmd_end):
            m.d.sync += have.eq(0)
        # a DDR row before a zero row: the read channel does not wait
        zero_go = ~row_end & (zero_left != 0)
        m.d.comb += [st.fill_en.eq(row_end | zero_go), st.fill_row.eq(Mux(row_end, row, zero_row)),
                     st.fill_h.as_value().eq(Cat(gather, beat)), st.fill_zero.eq(~row_end)]
        with m.If(zero_go):
            m.d.sync += [zero_left.eq(zero_left - 1), zero_row.eq(zero_row + 1)]
        m.d.comb += self.fill_busy.eq(have | dests.r_rdy | (zero_left != 0))
        return self.fill_busy                             # all of the fill side's work

    def _drain(self, m):
        st, d, RB = self.stage, self.drain.payload, self.RB
        left = Signal.like(d.rows)                        # rows of the command still to read
        at = Signal.like(d.row)
        empty = d.rows == 0
        m.d.comb += [self.wr_cmd.valid.eq(self.drain.valid & (left == 0) & ~empty),
                     self.wr_cmd.payload.addr.eq(d.addr), self.wr_cmd.payload.beats.eq(d.rows * RB),
                     self.drain.ready.eq((left == 0) & (empty | self.wr_cmd.ready))]
        with m.If(self.drain.valid & self.drain.ready):
            m.d.sync += [left.eq(d.rows), at.eq(d.row)]

        # A row read in cycle t is on the layer's port in t + 1 only: it goes into `pend` then, with the reset
        # of the lanes that fired, and from `pend` into `out` when `out` is free; `out` sends it as RB beats.
        # A row is read when `pend` is free by the time it comes, and while the layer's port is free.
        inflight, pend, out_have = Signal(), Signal(), Signal()
        pend_v = Signal(data.ArrayLayout(signed(self.acc_bits), self.P))
        out = Signal(data.ArrayLayout(signed(self.acc_bits), self.P))
        j = Signal(range(RB))
        sent = self.wr.valid & self.wr.ready
        load = pend & (~out_have | (sent & (j == RB - 1)))
        read = (left != 0) & st.drain_free & ~inflight & (~pend | load)
        m.d.comb += [st.drain_en.eq(read), st.drain_row.eq(at),
                     self.wr.valid.eq(out_have), self.wr.payload.data.eq(out.as_value().word_select(j, BEAT_BITS)),
                     self.wr.payload.last.eq(j == RB - 1)]
        with m.If(read):
            m.d.sync += [left.eq(left - 1), at.eq(at + 1)]
        m.d.sync += [inflight.eq(read), pend.eq(inflight | (pend & ~load))]
        for p in range(self.P):   # a reset over the capture: the flip-flops' own synchronous reset, not a LUT a bit
            with m.If(inflight & st.drain_fired[p]):
                m.d.sync += pend_v[p].eq(0)
            with m.Elif(inflight):
                m.d.sync += pend_v[p].eq(st.drain_h[p])
        with m.If(sent):
            m.d.sync += [j.eq(Mux(j == RB - 1, 0, j + 1)), out_have.eq(j != RB - 1)]
        with m.If(load):
            m.d.sync += [out_have.eq(1), out.eq(pend_v)]
        m.d.comb += self.drain_busy.eq(left != 0)
        return inflight | pend | out_have | self.drain_busy   # all of the drain side's work
