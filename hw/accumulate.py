"""Event-driven accumulate engine: add the int8 weight rows of the present spikes into P lanes.

For one output row (P output channels of one token) the caller sends a packet of spike events, one per
present input spike. The engine starts the P accumulators from a bias row and adds, per event, the weight
row at ``w_base + index``: ``acc[p] = bias[b_row][p] + sum_events W[w_base + index][p]``
(docs/integer_model.md: ``w . S`` adds the weight columns of present spikes; the weight memory stores
those columns as rows of P lanes). Absent spikes are never sent, so they cost nothing; a row without any
spike is a single event with ``present = 0`` and ``last = 1`` that emits the bias.

Weights (block RAM) and biases (distributed RAM: a shallow, wide memory) live in memories owned by the
engine and written at run time through ``w_wr`` / ``b_wr`` (one row per cycle, no backpressure); nothing is
baked into the bitstream. A weight row written in parts (``w_granules`` > 1, a beat at a time as the stream
loader and the tile loader write) must come in order, its last part last: the engine keeps the parts
before it in a register and writes the row with its last part, in one cycle. That write takes the weight
memory's port A, which the first spike slot reads, so the engine accepts no event in that cycle: DDR
mode's tile loader (``hw.tile_loader``) writes the next tile's rows into one bank while the engine reads the
other, and costs it one cycle per weight row, not one per beat.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import ACC_LATENCY, ACC_SPIKES
from dynaspike.formats import FORMATS

#: Memory attributes for a shallow, wide memory with a synchronous read port that must go to block RAM.
#: Synthesis would put it in distributed RAM (LUTs) because it is shallow; on the XC7Z020 LUTs are the
#: scarce resource and BRAM is not (README, "Benchmarks"), so these memories ask for BRAM.
BLOCK_RAM = {"ram_style": "block"}


def event_layout(weight_rows: int, bias_rows: int, tag_shape=1, spikes: int = ACC_SPIKES) -> data.StructLayout:
    """Payload of one spike event (``spikes`` slots).

    ``index[k]``: slot k's spiking input (added to ``w_base`` to address its weight row);
    ``present[k]``: 1 to add slot k's row; all 0 for the empty-row marker (adds nothing);
    ``last``: 1 on the final event of an output row;
    ``w_base``, ``b_row``: the weight-row base and the bias row, sampled on the first event of a row;
    ``tag``: the caller's label of the row (sampled on its first event, returned on ``o_tag`` with it).
    """
    return data.StructLayout({
        "index": data.ArrayLayout(range(weight_rows), spikes),
        "w_base": range(weight_rows),
        "b_row": range(bias_rows),
        "present": spikes,
        "last": 1,
        "tag": tag_shape,
    })


def write_signature(depth: int, shape, granules: int = 1) -> wiring.Signature:
    """A memory write port seen from the writer: ``en``, ``addr``, ``data``; one row per cycle, no stall.

    With ``granules > 1`` the row is written in that many equal parts, ``en`` has one bit per part (the
    stream loader writes a row a beat or an element at a time).
    """
    return wiring.Signature({"en": Out(granules), "addr": Out(range(depth)), "data": Out(shape)})


def connect_write(m, mem, wr, addr=None):
    """Give memory ``mem`` a write port driven by the ``write_signature`` port ``wr`` (at ``addr`` if given,
    see :func:`read_ports_sharing_write`)."""
    granules = len(wr.en)
    if granules == 1:
        port = mem.write_port()
    else:
        shape = mem.shape
        size = shape.length if isinstance(shape, data.ArrayLayout) else shape.width
        if size % granules:
            raise ValueError(f"a row of {size} cannot be written in {granules} equal parts")
        port = mem.write_port(granularity=size // granules)
    m.d.comb += [port.en.eq(wr.en), port.addr.eq(wr.addr if addr is None else addr), port.data.eq(wr.data)]
    return port


def read_ports_sharing_write(m, mem, wr, addrs, ens) -> list:
    """Synchronous read ports of ``mem`` at ``addrs``, enabled by ``ens`` (one each), and its write port
    from ``wr``.

    The write and the first read share one address (the write's while ``wr`` writes), so two read ports
    need only the two ports a block RAM has, not a second copy of the memory; reads during a write read
    the written row, so write only while nothing reads. The first read port is also enabled while ``wr``
    writes: a block RAM port's one enable serves its read and its write, so a read port that held its
    data through a write would need a copy of it outside the block RAM.
    """
    rds = [mem.read_port() for _ in addrs]
    port_a = Signal.like(rds[0].addr)
    connect_write(m, mem, wr, port_a)
    m.d.comb += port_a.eq(Mux(wr.en.any(), wr.addr, addrs[0]))
    m.d.comb += [rd.addr.eq(port_a if k == 0 else a) for k, (rd, a) in enumerate(zip(rds, addrs))]
    m.d.comb += [rd.en.eq(en | wr.en.any() if k == 0 else en) for k, (rd, en) in enumerate(zip(rds, ens))]
    return rds


class AccumulateEngine(wiring.Component):
    """Accumulate weight rows selected by spike events into ``lanes`` signed accumulators.

    Contract (``dynaspike.cycles``): one cycle per event (up to ``spikes`` present spikes, or an empty row);
    the result of a row is valid ``ACC_LATENCY`` (3) cycles after its last event's transfer; rows follow
    each other with no bubble, so ``R`` rows take ``acc_cycles(spike_counts)`` cycles. It stalls on
    backpressure (while a result waits on ``o.ready``, the next event that needs the accumulators waits) and
    in the cycle of a weight row's write (its last part: the write takes the read port of slot 0). A row
    must not be written while a result waits on ``o.ready`` (it would replace the row read for the event
    held in stage 1); the core takes every result at once.

    The sum is exact as long as it fits ``acc_bits``, which the artifact loader guarantees for every layer
    (``|bias| + sum|w| <= acc_max``); beyond that it wraps modulo ``2**acc_bits``.

    Parameters
    ----------
    lanes : int
        Accumulators P (output channels per row).
    spikes : int
        Spike slots K per event: weight rows read and added per cycle (read ports of the weight memory).
    weight_rows, bias_rows : int
        Depths of the weight memory (rows of P ``weight_bits`` lanes) and the bias memory (rows of P
        ``acc_bits`` lanes).
    weight_bits, acc_bits : int
        Widths, defaulting to the shared formats.
    """

    def __init__(self, lanes: int, weight_rows: int, bias_rows: int, *,
                 weight_bits: int = FORMATS.weight_bits, acc_bits: int = FORMATS.acc_bits,
                 tag_shape=1, w_granules: int = 1, b_granules: int = 1, spikes: int = ACC_SPIKES):
        for name, value, lo in (("lanes", lanes, 1), ("weight_rows", weight_rows, 2), ("spikes", spikes, 1),
                                ("bias_rows", bias_rows, 1), ("weight_bits", weight_bits, 2)):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"AccumulateEngine {name} must be an integer >= {lo}, got {value!r}")
        if not isinstance(acc_bits, int) or acc_bits < weight_bits:
            raise ValueError(f"AccumulateEngine acc_bits must be an integer >= weight_bits={weight_bits}, "
                             f"got {acc_bits!r}")
        self.latency = ACC_LATENCY
        self.lanes, self.weight_rows, self.bias_rows, self.spikes = lanes, weight_rows, bias_rows, spikes
        self.weight_bits, self.acc_bits = weight_bits, acc_bits
        self.w_shape = data.ArrayLayout(signed(weight_bits), lanes)
        self.acc_shape = data.ArrayLayout(signed(acc_bits), lanes)
        self.tag_shape = tag_shape
        super().__init__({
            "i": In(stream.Signature(event_layout(weight_rows, bias_rows, tag_shape, spikes))),
            "o": Out(stream.Signature(self.acc_shape)),
            "o_tag": Out(tag_shape),  # the row's tag, valid with o
            "w_wr": In(write_signature(weight_rows, self.w_shape, w_granules)),
            "b_wr": In(write_signature(bias_rows, self.acc_shape, b_granules)),
        })

    def _whole_rows(self, m):
        """The weight memory's write: ``w_wr`` as whole rows (each written with its last part)."""
        parts = len(self.w_wr.en)
        if parts == 1:
            return self.w_wr
        row = SimpleNamespace(en=Signal(), addr=Signal.like(self.w_wr.addr), data=Signal(self.w_shape))
        bits = self.w_shape.size // parts
        kept = Signal(bits * (parts - 1))   # the row's parts before its last
        data = self.w_wr.data.as_value()
        for k in range(parts - 1):
            with m.If(self.w_wr.en[k]):
                m.d.sync += kept.word_select(k, bits).eq(data.word_select(k, bits))
        m.d.comb += [row.en.eq(self.w_wr.en[-1]), row.addr.eq(self.w_wr.addr),
                     row.data.eq(Cat(kept, data.word_select(parts - 1, bits)))]
        return row

    def elaborate(self, platform):
        m = Module()
        K = self.spikes
        m.submodules.wmem = wmem = Memory(shape=self.w_shape, depth=self.weight_rows, init=[])
        # The bias memory is a few dozen rows deep and ACC_ROWS * P * 24 bits wide: in block RAM (72 bits a port)
        # that is 24 RAMB36 holding under 5 % of their bits at 64 lanes; in distributed RAM it is about 1 k LUTs.
        # BRAM is the tighter budget here (README, "Benchmarks"), so it stays in LUTs.
        m.submodules.bmem = bmem = Memory(shape=self.acc_shape, depth=self.bias_rows, init=[])
        connect_write(m, bmem, self.b_wr)
        ev = self.i.payload
        b_rd = bmem.read_port()

        # Stage 1 holds the event whose weight rows are being read (the read takes one cycle); stage 2 its
        # slots' rows added lane by lane (a narrow sum, registered), which stage 3 adds into the accumulators.
        # Two adds in two cycles, not one three-input add in one: each maps onto one carry chain per lane (a
        # three-input add made yosys build a compressor tree of twice the LUTs) and halves the logic depth.
        flags = data.StructLayout({"present": K, "last": 1, "first": 1, "tag": self.tag_shape})
        s1_valid, s2_valid = Signal(), Signal()
        s1, s2 = Signal(flags), Signal(flags)
        pair_bits = self.weight_bits + (K - 1).bit_length()
        pair = Signal(data.ArrayLayout(signed(pair_bits), self.lanes))
        row_tag = Signal(self.tag_shape)  # the tag of the row being accumulated
        first = Signal(init=1)  # the next event starts a row (after reset and after every `last`)
        acc = self.o.payload

        # The accumulators double as the output register, so the pipeline waits while a finished row is
        # still being offered and not taken (stage 3 would overwrite it).
        stall = s2_valid & self.o.valid & ~self.o.ready
        advance = ~stall
        # Block RAM reads only what an accepted event needs (a disabled port holds its data), so the
        # memories' read power follows the spikes, as dynaspike/energy.py counts it: the present slots'
        # weight rows, and the bias row on a row's first event.
        w_wr = self._whole_rows(m)
        accept = advance & ~w_wr.en
        take = accept & self.i.valid
        m.d.comb += [self.i.ready.eq(accept), b_rd.en.eq(take & first), b_rd.addr.eq(ev.b_row)]
        # one weight read per present slot (a row write's cycle takes no event: it has slot 0's port)
        w_rds = read_ports_sharing_write(m, wmem, w_wr, [ev.w_base + ev.index[k] for k in range(K)],
                                         [take & ev.present[k] for k in range(K)])
        # for tests: the reads of this cycle (the weight ports' own, without the loader's writes)
        self.read_enables = Cat(*(take & ev.present[k] for k in range(K)), b_rd.en)
        # The bias row is read with the weights and held with the pair sums (the read port keeps it while
        # stalled, like the weight rows).
        bias = Signal(self.acc_shape)
        with m.If(advance):
            # Stage 0 -> 1: accept an event and start its reads.
            m.d.sync += s1_valid.eq(take)
            with m.If(take):
                m.d.sync += [s1.present.eq(ev.present), s1.last.eq(ev.last), s1.first.eq(first),
                             first.eq(ev.last), s1.tag.eq(ev.tag)]
            # Stage 1 -> 2: the sum of the present slots' weight rows, lane by lane.
            m.d.sync += [s2_valid.eq(s1_valid), s2.eq(s1), bias.eq(b_rd.data)]
            for p in range(self.lanes):
                addends = []
                for k, rd in enumerate(w_rds):
                    addend = Signal(signed(self.weight_bits), name=f"addend{p}_{k}")
                    with m.If(s1.present[k]):
                        m.d.comb += addend.eq(rd.data[p])
                    addends.append(addend)
                m.d.sync += pair[p].eq(sum(addends))
        # Output handshake: the row is taken; a new one may replace it in the same cycle (below).
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        # Stage 3: add the pair sums (the bias row starts a new row).
        with m.If(s2_valid & advance):
            for p in range(self.lanes):
                base = Signal(signed(self.acc_bits), name=f"base{p}")
                m.d.comb += base.eq(Mux(s2.first, bias[p], acc[p]))
                m.d.sync += acc[p].eq(base + pair[p])  # truncates to acc_bits: wraps, see docstring
            tag = Signal(self.tag_shape)
            m.d.comb += tag.eq(Mux(s2.first, s2.tag, row_tag))
            m.d.sync += row_tag.eq(tag)
            with m.If(s2.last):
                m.d.sync += [self.o.valid.eq(1), self.o_tag.eq(tag)]
        return m
