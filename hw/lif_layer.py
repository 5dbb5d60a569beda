"""A LIF layer with its membranes: P-lane LIF updates of rows of a membrane memory (BRAM).

Row ``r`` holds the membranes of P neurons (e.g. one token's channels ``c*P .. c*P+P-1`` of one LIF layer;
the row map is the sequencer's). An update ``(row, x, th)`` applies docs/integer_model.md's
``LIF(state, x, th)`` to that row and writes the new membranes back. ``clear`` (one cycle, while nothing
is in flight) sets every membrane to 0, as at the start of each image: a valid bit per row stands for a
zero row, so clearing costs one cycle instead of ``rows``.

The valid bits live in a small LUT RAM of ``VALID_WORD``-bit words, with a flip-flop per word that says
whether the word itself was written since the clear (a word not written reads as zero), so a clear resets
``rows / VALID_WORD`` flip-flops. A register bit per row, set through a decoder and read through a
``rows``-way select, took about 980 LUTs and 670 flip-flops in the shipped core.

**Staging** (``staging=True``; DDR mode's membranes, issue 11, docs/hardware.md "DDR mode" item 2). The
memory is then a true dual-port one whose other two uses are the ``stage`` port's, for a
``hw.state_mover.StateMover``:

- a row write on the port the layer reads (``fill_*``: a row from DDR, or one that reads as zero,
  ``fill_zero``: written as fired, which the next read resets). The mover comes first: in a cycle with
  ``fill_en`` the layer takes no update (``i.ready`` is low);
- a row read on the port the layer writes (``drain_en`` with ``drain_row``; ``drain_h`` and ``drain_fired``
  in the next cycle only). The layer comes first: the mover may read only while ``drain_free`` (no update
  in stage 1, which writes its row back in this cycle).

Each port is enabled for its own read and for the other use's write, and its output changes with either,
which is what a block RAM port does (the rule of ``hw.accumulate.read_ports_sharing_write``, the engine's
weight memory's; a port whose output held through the other use's write would cost a register and a
multiplexer per bit: yosys adds both, 2,339 LUTs and 1,602 FFs at the core's size). So a row read must be
used in the next cycle: with staging the layer's output is never stalled (``o.ready`` is not used: a spike
row is offered for one cycle, as the core takes them), and ``staged`` makes every row an update reads count
as written (the valid bits are not used: the mover filled it).
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import LIF_LAYER_LATENCY
from dynaspike.formats import FORMATS

from .lif import lif_lane
from .params import check_ints

VALID_WORD = 32   # valid bits per LUT RAM word (the word a row's bit is in: row // VALID_WORD)


def update_layout(lanes: int, rows: int, acc_bits: int = FORMATS.acc_bits, tag_shape=1) -> data.StructLayout:
    """An update: membrane ``row``, input ``x`` and threshold ``th`` per lane, the caller's ``tag``."""
    lane = data.ArrayLayout(signed(acc_bits), lanes)
    return data.StructLayout({"row": range(rows), "x": lane, "th": lane, "tag": tag_shape})


def spikes_layout(lanes: int, rows: int, acc_bits: int = FORMATS.acc_bits, tag_shape=1,
                  membranes: bool = True) -> data.StructLayout:
    """The row, its spikes (lane p = bit p), its new membranes (``v``, with ``membranes``: for tests) and the
    update's ``tag``."""
    fields = {"row": range(rows), "spike": lanes, "tag": tag_shape}
    if membranes:
        fields["v"] = data.ArrayLayout(signed(acc_bits), lanes)
    return data.StructLayout(fields)


def staging_signature(lanes: int, rows: int, acc_bits: int = FORMATS.acc_bits) -> wiring.Signature:
    """The staging port as the mover sees it (``LIFLayer(staging=True).stage`` is its flip): a row write
    (``fill_*``: the row's membranes, or ``fill_zero``: a row that reads as zero) and a row read
    (``drain_row`` when ``drain_en``, only while ``drain_free``; the row's ``h`` and ``fired`` bits in the
    next cycle)."""
    lane = data.ArrayLayout(signed(acc_bits), lanes)
    row = range(rows)
    return wiring.Signature({"fill_en": Out(1), "fill_row": Out(row), "fill_h": Out(lane), "fill_zero": Out(1),
                             "drain_en": Out(1), "drain_row": Out(row), "drain_free": In(1), "drain_h": In(lane),
                             "drain_fired": In(lanes)})


class LIFLayer(wiring.Component):
    """Update rows of stored membranes, one row per cycle.

    Contract (``dynaspike.cycles.lif_layer_cycles``): latency ``LIF_LAYER_LATENCY`` (2) cycles (membrane
    read, LIF and write-back into the output register), one update per cycle. Stalls only on backpressure.
    With ``transparent`` (the default) rows come in any order: an update of the row written by the previous
    update sees the new membranes (the read port is transparent to the write port, a bypass multiplexer per
    bit). Without it, two consecutive updates must not name the same row; the core never does (each pass
    updates a (token, layer, chunk) row once, and passes are separated by their drain cycles), and it saves
    the bypass, a 24-bit multiplexer per lane.

    The memory holds each neuron's ``h`` before the reset and whether it fired: the reset to zero is applied
    when the row is next read, by the same gate that returns zero for a row not written since ``clear``, so
    the write-back needs no reset multiplexer (one bit per lane more of block RAM instead of 24 LUTs).

    ``membranes_out`` (the default) adds the new membranes to the output (``v``), for tests; the core leaves
    them out: synthesis would remove the unread registers, but an RTL simulation's switching activity (``make
    power``) would count their toggles.

    ``staging`` adds the ports ``staged`` and ``stage`` (module docstring); it needs ``transparent=False``
    (the core's layer, which never updates a row twice in a row).
    """

    def __init__(self, lanes: int, rows: int, acc_bits: int = FORMATS.acc_bits, tag_shape=1, *,
                 transparent: bool = True, membranes_out: bool = True, staging: bool = False):
        check_ints("LIFLayer", lanes=(lanes, 1), rows=(rows, 2), acc_bits=(acc_bits, 2))
        if staging and transparent:
            raise ValueError("LIFLayer with staging must be built with transparent=False")
        self.lanes, self.rows, self.acc_bits, self.latency = lanes, rows, acc_bits, LIF_LAYER_LATENCY
        self.tag_shape, self.transparent, self.membranes_out = tag_shape, transparent, membranes_out
        self.staging = staging
        super().__init__({
            "i": In(stream.Signature(update_layout(lanes, rows, acc_bits, tag_shape))),
            "o": Out(stream.Signature(spikes_layout(lanes, rows, acc_bits, tag_shape, membranes_out))),
            "clear": In(1),
            **({"staged": In(1), "stage": In(staging_signature(lanes, rows, acc_bits))} if staging else {}),
        })

    def elaborate(self, platform):
        m = Module()
        row = data.StructLayout({"h": data.ArrayLayout(signed(self.acc_bits), self.lanes), "fired": self.lanes})
        # row r holds membranes written since the last clear (else: zeros): bit r % VALID_WORD of word
        # r // VALID_WORD, a word that counts only if its own bit in `word_ok` is set
        words = -(-self.rows // VALID_WORD)
        m.submodules.valid = vmem = Memory(shape=VALID_WORD, depth=words, init=[])
        v_rd, v_wr = vmem.read_port(domain="comb"), vmem.write_port()
        word_ok = Signal(words)

        # a fill takes the read port (staging): no update in its cycle
        fill = self.stage.fill_en if self.staging else Const(0, 1)
        advance = Const(1, 1) if self.staging else ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance & ~fill)
        take = self.i.ready & self.i.valid
        s1_valid = Signal()
        s1 = Signal(update_layout(self.lanes, self.rows, self.acc_bits, self.tag_shape))
        with m.If(advance):
            m.d.sync += [s1_valid.eq(take), self.o.valid.eq(s1_valid)]
            # the update's operands only with an update (a clock enable): the input buses carry the
            # accumulators as they count, and stage 1's lanes would follow them every cycle (issue 12)
            with m.If(take):
                m.d.sync += s1.eq(self.i.payload)
        go = advance & s1_valid
        # the membrane row is read only for an update (block RAM read power follows the work)
        m.submodules.mem = memory = Memory(shape=row, depth=self.rows, init=[])
        wr = memory.write_port()
        rd = memory.read_port(transparent_for=(wr,) if self.transparent else ())
        new = Signal(row)                                 # stage 1's row to write back
        m.d.comb += [wr.en.eq(go), wr.data.eq(new)]
        self.read_enables = take    # for tests: a membrane row read this cycle for an update
        if not self.staging:
            m.d.comb += [rd.en.eq(take), rd.addr.eq(self.i.payload.row), wr.addr.eq(s1.row)]
            staged = 0
        else:   # true dual port: the fill shares the layer's read port, the drain its write port. (The ports
            # are made in this order: with the order hw.accumulate.read_ports_sharing_write makes them in,
            # yosys maps the same memory with 817 more LUTs.)
            st, staged = self.stage, self.staged
            fill, drain = memory.write_port(), memory.read_port()
            m.d.comb += [rd.en.eq(take | st.fill_en), rd.addr.eq(Mux(st.fill_en, st.fill_row, self.i.payload.row)),
                         fill.addr.eq(rd.addr), fill.en.eq(st.fill_en), fill.data.h.eq(st.fill_h),
                         fill.data.fired.eq(Mux(st.fill_zero, (1 << self.lanes) - 1, 0)),
                         wr.addr.eq(Mux(st.drain_en, st.drain_row, s1.row)), drain.addr.eq(wr.addr),
                         drain.en.eq(st.drain_en | go), st.drain_free.eq(~s1_valid),
                         st.drain_h.eq(drain.data.h), st.drain_fired.eq(drain.data.fired)]

        # Stage 1: the row's membranes are on rd.data (or zero); update, write back, offer the spikes.
        word_at, bit_at = s1.row // VALID_WORD, s1.row % VALID_WORD
        word = Mux(word_ok.bit_select(word_at, 1), v_rd.data, 0)
        row_valid = word.bit_select(bit_at, 1) | staged
        m.d.comb += [v_rd.addr.eq(word_at), v_wr.addr.eq(word_at), v_wr.data.eq(word | (1 << bit_at)),
                     v_wr.en.eq(go)]
        for p in range(self.lanes):
            v = Mux(row_valid & ~rd.data.fired[p], rd.data.h[p], 0)
            spike, v_next, h = lif_lane(m, v, s1.x[p], s1.th[p], self.acc_bits, f"{p}")
            m.d.comb += [new.h[p].eq(h), new.fired[p].eq(spike)]
            with m.If(go):
                m.d.sync += self.o.payload.spike[p].eq(spike)
                if self.membranes_out:
                    m.d.sync += self.o.payload.v[p].eq(v_next)
        with m.If(go):
            m.d.sync += [self.o.payload.row.eq(s1.row), self.o.payload.tag.eq(s1.tag),
                         word_ok.bit_select(word_at, 1).eq(1)]
        with m.If(self.clear):
            m.d.sync += word_ok.eq(0)
        return m
