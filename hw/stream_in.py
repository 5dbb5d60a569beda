"""Input stream parser: checks host-to-core packets (``dynaspike.packing``) beat by beat.

The parser takes the AXI4-Stream from the DMA (64-bit beats, TLAST) and checks every packet against the
format of ``dynaspike.packing``: header (magic, version, kind), lane count of a model, the model's
sections (ids in ``packing.SECTIONS`` order, element widths, lengths adding up to the payload), TLAST on
the trailer and nowhere else, trailer magic and checksum. Every payload data beat goes out on ``o`` with
its section id (0 for an image) and its index inside the section; section headers, packet headers and the
trailer do not. ``ok`` pulses for one cycle after a packet's trailer checked out: only then may the
consumer treat what it received as a loaded model or a complete image.

On the first error it raises ``error`` with ``error_code`` (``dynaspike.regmap.ErrorCode``) and
``error_beat`` (the beat's index inside its packet) and from then on accepts and drops every beat (so the
DMA completes and the driver sees the error instead of a hang) until ``soft_reset``.
"""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dynaspike.packing import (BEAT_BITS, SECTIONS, STREAM_MAGIC, STREAM_VERSION, TRAILER_MAGIC, Kind,
                               memory_lanes)
from dynaspike.regmap import ErrorCode


def axis_signature(data_bits: int = BEAT_BITS) -> wiring.Signature:
    """AXI4-Stream as seen by the source (the DMA); a sink port is ``In(axis_signature())``.

    Member names are the AXI signal names: Verilog ports ``<port>__tdata`` etc. (cocotbext-axi:
    ``AxiStreamBus.from_prefix(dut, "<port>", bus_separator="__")``).
    """
    return wiring.Signature({"tdata": Out(data_bits), "tlast": Out(1), "tvalid": Out(1), "tready": In(1)})


#: Elements per beat minus one of each model section that the loader writes an element at a time (the
#: memory images, ``packing.memory_lanes``, go in whole beats: 0).
SECTION_ELEMS = {sid: 0 if name in memory_lanes(1) else BEAT_BITS // bits - 1 for sid, name, bits in SECTIONS}


def beat_layout() -> data.StructLayout:
    """A payload data beat: packet ``kind``, ``section`` id (0 for an image), ``index`` in it, ``data``;
    ``first`` (``index == 0``) and ``elems`` (``SECTION_ELEMS`` of the section, 0 for an image) come as
    registers, so that a consumer's ready need not decode the section or compare the index."""
    return data.StructLayout({"kind": 8, "section": 8, "index": 32, "data": BEAT_BITS, "first": 1, "elems": 3})


class StreamParser(wiring.Component):
    """Check host-to-core packets and pass their data beats on.

    Contract: one beat per cycle (``tready`` is low only while a data beat waits on ``o``), latency one
    cycle to ``o``; ``ok`` pulses in the cycle after the trailer is accepted, with ``kind`` and ``tag``
    (header beat 1 [63:32]: the image tag, or the model's lane count) valid from then until the next
    packet's header. ``lanes`` is the core's P: a model packed for another P is refused.
    """

    def __init__(self, lanes: int):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ValueError(f"StreamParser lanes must be a positive integer, got {lanes!r}")
        self.lanes = lanes
        super().__init__({
            "s_axis": In(axis_signature()),
            "o": Out(stream.Signature(beat_layout())),
            "ok": Out(1),
            "kind": Out(8),
            "tag": Out(32),
            "error": Out(1),
            "error_code": Out(8),
            "error_beat": Out(32),
            "soft_reset": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ax = self.s_axis
        d = ax.tdata
        lo, hi = d[:32], d[32:]

        beat = Signal(32)          # index of the current beat inside its packet
        remaining = Signal(32)     # payload beats still to come
        sec_left = Signal(32)      # data beats left in the current section (model)
        sec_idx = Signal(range(len(SECTIONS) + 1))  # sections seen so far (model)
        sec_id = Signal(8)
        sec_elems = Signal(3)
        index = Signal(32)
        csum = Signal(32)

        m.d.comb += ax.tready.eq(~self.o.valid | self.o.ready)
        take = ax.tvalid & ax.tready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.ok.eq(0)

        def fail(code):
            m.d.sync += [self.error.eq(1), self.error_code.eq(code), self.error_beat.eq(beat)]
            m.next = "ERROR"

        with m.If(take):
            m.d.sync += beat.eq(beat + 1)

        with m.FSM():
            with m.State("HEAD0"):
                with m.If(take):
                    m.d.sync += [beat.eq(1), csum.eq(0), self.kind.eq(d[40:48])]
                    with m.If(lo != STREAM_MAGIC):
                        fail(ErrorCode.BAD_MAGIC)
                    with m.Elif(d[32:40] != STREAM_VERSION):
                        fail(ErrorCode.BAD_VERSION)
                    with m.Elif((d[40:48] != Kind.MODEL) & (d[40:48] != Kind.IMAGE)):
                        fail(ErrorCode.BAD_KIND)
                    with m.Elif(ax.tlast):
                        fail(ErrorCode.EARLY_TLAST)
                    with m.Else():
                        m.next = "HEAD1"
            with m.State("HEAD1"):
                with m.If(take):
                    m.d.sync += [remaining.eq(lo), self.tag.eq(hi), sec_idx.eq(0), sec_left.eq(0), index.eq(0)]
                    with m.If(ax.tlast):
                        fail(ErrorCode.EARLY_TLAST)
                    with m.Elif((self.kind == Kind.MODEL) & (hi != self.lanes)):
                        fail(ErrorCode.LANES_MISMATCH)
                    with m.Elif(lo == 0):
                        m.next = "TRAILER"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                with m.If(take):
                    with m.If(remaining == 1):
                        m.next = "TRAILER"  # before the checks: a failing check's "ERROR" must win
                    m.d.sync += [remaining.eq(remaining - 1), csum.eq(csum + lo + hi)]
                    is_model = self.kind == Kind.MODEL
                    with m.If(ax.tlast):
                        fail(ErrorCode.EARLY_TLAST)
                    with m.Elif(is_model & (sec_left == 0)):
                        # A section header: the next id of the table, its element width, a length that fits.
                        with m.Switch(sec_idx):
                            for k, (sid, _, bits) in enumerate(SECTIONS):
                                with m.Case(k):
                                    with m.If((d[:16] != sid) | (d[16:24] != bits) | (d[24:32] != 0)):
                                        fail(ErrorCode.BAD_SECTION)
                                    with m.Elif(hi > remaining - 1):
                                        fail(ErrorCode.BAD_LENGTH)
                                    with m.Else():
                                        m.d.sync += [sec_left.eq(hi), sec_id.eq(sid), index.eq(0),
                                                     sec_idx.eq(k + 1), sec_elems.eq(SECTION_ELEMS[sid])]
                            with m.Default():  # every section seen, yet payload left
                                fail(ErrorCode.BAD_SECTION)
                    with m.Else():
                        m.d.sync += [
                            self.o.valid.eq(1), self.o.payload.kind.eq(self.kind),
                            self.o.payload.section.eq(0), self.o.payload.index.eq(index),
                            self.o.payload.data.eq(d), index.eq(index + 1), sec_left.eq(sec_left - 1),
                            self.o.payload.first.eq(index == 0), self.o.payload.elems.eq(0),
                        ]
                        with m.If(is_model):
                            m.d.sync += [self.o.payload.section.eq(sec_id), self.o.payload.elems.eq(sec_elems)]
            with m.State("TRAILER"):
                with m.If(take):
                    m.d.sync += beat.eq(0)
                    with m.If(~ax.tlast):
                        fail(ErrorCode.MISSING_TLAST)
                    with m.Elif(hi != TRAILER_MAGIC):
                        fail(ErrorCode.BAD_CHECKSUM)
                    with m.Elif(lo != csum):
                        fail(ErrorCode.BAD_CHECKSUM)
                    with m.Elif((self.kind == Kind.MODEL) & ((sec_idx != len(SECTIONS)) | (sec_left != 0))):
                        fail(ErrorCode.BAD_SECTION)
                    with m.Else():
                        m.d.sync += self.ok.eq(1)
                        m.next = "HEAD0"
            with m.State("ERROR"):
                pass  # tready stays high: beats are dropped until soft_reset
        # Soft reset returns every register of the parser (state, error, counters) to its reset value.
        return ResetInserter({"sync": self.soft_reset})(m)
