"""The core's output packets (``dynaspike.packing``): the classifier's logits into the RESULT packet, and the
TAP packet of the intermediates (``packing.TAP_FIELDS``, 16-bit elements), each a header, payload beats and a
trailer with the payload's checksum.

Two parts of ``hw.core.Core.elaborate``, called where they sit in the sequencer: ``packet_signals`` (the
packet registers and the RESULT payload) and ``packet_states`` (the sequencer states HEAD, TAPS, RESULT).
``c`` is the core's namespace of shared signals (``hw.core``); each function names what it takes from it and
adds what it makes that others use.
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal

from dynaspike.packing import STREAM_MAGIC, STREAM_VERSION, TRAILER_MAGIC, Kind

from .arith import mul
from .loader import log2


def packet_signals(c):
    """The registers of the packet being sent, the RESULT payload (``packing.pack_result``: logits, CYCLES,
    the performance counters), the image tag and the TAP packet's element counters."""
    m, g, N, cfgd, cycles_, logits, perf = c.m, c.g, c.N, c.cfgd, c.cycles_, c.logits, c.perf
    out = c.self.m_axis
    ob = Signal(16)                  # beat of the packet being sent
    olen = Signal(16)                # its payload beats
    csum = Signal(32)
    # The RESULT payload beat `ob - 2`, a register loaded as beat `ob - 1` is taken (from `next_beat`, the
    # payload beat `ob - 1`): the beat's multiplexers do not sit in front of the checksum's adder.
    obeat = Signal(64)
    next_beat = Signal(64)
    pi = Signal(16)
    m.d.comb += pi.eq(ob - 1)
    n_logit_beats = (cfgd.classes + 1) >> 1
    counter_pairs = Array(Cat(perf[k], perf[k + 1] if k + 1 < len(perf) else Const(0, 32))
                          for k in range(0, len(perf), 2))
    with m.If(pi < n_logit_beats):
        k = pi[:max(1, (g.C).bit_length())]
        lo_l = logits[k << 1]
        hi_l = Mux((k << 1) + 1 < cfgd.classes, logits[(k << 1) + 1], 0)
        m.d.comb += next_beat.eq(Cat(lo_l[:32], hi_l[:32]))
    with m.Elif(pi == n_logit_beats):
        m.d.comb += next_beat.eq(cycles_)
    with m.Else():
        m.d.comb += next_beat.eq(counter_pairs[(pi - n_logit_beats - 1)[:max(1, (len(counter_pairs) - 1).bit_length())]])
    result_len = n_logit_beats + 1 + len(counter_pairs)
    img_tag = Signal(32)
    tap_f = Signal(range(8))         # TAP packet: field, element, token of the X field
    tap_e = Signal(range(max(N, g.D) + 1))
    tap_tok = Signal(range(N + 1))
    tap_loaded = Signal()            # the X row of element tap_e of tap_tok has been read
    tap_full, tap_beat = Signal(), Signal(64)
    asm, na = Signal(64), Signal(range(4))
    q4 = lambda n: (n + 3) >> 2      # noqa: E731 -- beats of n 16-bit elements
    tap_beats = q4(cfgd.dim) + mul(q4(cfgd.n), 5) + q4(mul(cfgd.n, cfgd.dim))

    c.img_tag = img_tag   # the image packet's tag, set by the intake (hw/core_intake.py)
    vars(c).update(out=out, ob=ob, olen=olen, csum=csum, obeat=obeat, next_beat=next_beat, result_len=result_len, tap_f=tap_f,
                   tap_e=tap_e, tap_tok=tap_tok, tap_loaded=tap_loaded, tap_full=tap_full, tap_beat=tap_beat,
                   asm=asm, na=na, tap_beats=tap_beats)


def packet_states(c):
    """HEAD (the classifier's logits), TAPS (when the image asked for them), RESULT; then IDLE."""
    m, state, P, cfgd, head, halt, logits = c.m, c.state, c.P, c.cfgd, c.head, c.halt, c.logits
    out, ob, olen, csum, obeat, next_beat, img_tag, result_len = (
        c.out, c.ob, c.olen, c.csum, c.obeat, c.next_beat, c.img_tag, c.result_len)
    tap_f, tap_e, tap_tok, tap_loaded, tap_full, tap_beat, asm, na, tap_beats = (
        c.tap_f, c.tap_e, c.tap_tok, c.tap_loaded, c.tap_full, c.tap_beat, c.asm, c.na, c.tap_beats)
    busy, done, images_done, counting, taps_on, count = c.busy, c.done, c.images_done, c.counting, c.taps_on, c.count
    rep_of, reps, sizes, halt_t, halt_l = c.rep_of, c.reps, c.sizes, c.halt_t, c.halt_l
    x_addr, read_row, xrow, xval = c.x_addr, c.read_row, c.xrow, c.xval
    with state("HEAD"):
        with m.If(head.o.valid):
            m.d.sync += logits[head.o.payload.cls].eq(head.o.payload.logit)
            with m.If(head.o.payload.last):
                m.d.sync += [counting.eq(0), ob.eq(0), csum.eq(0)]
                with m.If(taps_on):
                    m.d.sync += [olen.eq(tap_beats), tap_f.eq(0), tap_e.eq(0), tap_tok.eq(0),
                                 tap_loaded.eq(0), tap_full.eq(0), asm.eq(0), na.eq(0)]
                    m.next = "TAPS"
                with m.Else():
                    m.d.sync += olen.eq(result_len)
                    m.next = "RESULT"

    def packet(name, kind, payload_valid, payload, taken, finish, body=None):
        """Send header, ``olen`` payload beats (``payload`` while ``payload_valid``), trailer."""
        with state(name):
            if body:
                body()
            in_payload = (ob >= 2) & (ob < olen + 2)
            m.d.comb += out.tvalid.eq(~in_payload | payload_valid)
            with m.Switch(ob):
                with m.Case(0):
                    m.d.comb += out.tdata.eq(Cat(Const(STREAM_MAGIC, 32), Const(STREAM_VERSION, 8),
                                                 Const(kind, 8), Const(0, 16)))
                with m.Case(1):
                    m.d.comb += out.tdata.eq(Cat(olen, Const(0, 16), img_tag))
                with m.Default():
                    with m.If(in_payload):
                        m.d.comb += out.tdata.eq(payload)
                    with m.Else():
                        m.d.comb += [out.tdata.eq(Cat(csum, Const(TRAILER_MAGIC, 32))), out.tlast.eq(1)]
            with m.If(out.tvalid & ~out.tready):
                m.d.sync += count("OUT_WAIT_CYCLES", 1)
            with m.If(out.tvalid & out.tready):
                m.d.sync += ob.eq(ob + 1)
                with m.If(in_payload):
                    m.d.sync += [csum.eq(csum + out.tdata[:32] + out.tdata[32:])] + taken
                with m.If(out.tlast):
                    finish()

    # ---- TAP packet: packing.TAP_FIELDS, 16-bit elements, one element per cycle into beats
    n_tok, n_dim = cfgd.n, cfgd.dim
    def tap_producer():
        tap_lane = tap_e[:log2(P)]
        tap_row = xrow(tap_tok, tap_e >> log2(P))
        m.d.comb += x_addr.eq(tap_row)  # held while a beat waits, so the row read stays valid
        with m.If((ob >= 2) & ~tap_full):
            field_len = Mux(tap_f == 0, n_dim, n_tok)
            val = Signal(16)
            with m.Switch(tap_f):
                with m.Case(0):
                    m.d.comb += val.eq(head.counts[tap_e])
                with m.Case(1):
                    m.d.comb += val.eq(rep_of[tap_e])
                with m.Case(2):
                    m.d.comb += val.eq(sizes[tap_e])
                with m.Case(3):
                    m.d.comb += val.eq(Mux(reps.bit_select(tap_e, 1), halt_t[tap_e], -1))
                with m.Case(4):
                    m.d.comb += val.eq(Mux(reps.bit_select(tap_e, 1), halt_l[tap_e], -1))
                with m.Case(5):
                    m.d.comb += val.eq(halt.hacc[tap_e])
                with m.Case(6):
                    m.d.comb += val.eq(xval[tap_lane])
            is_x = tap_f == 6
            # an X row is read (one cycle) before its elements go out
            produce = ~is_x | tap_loaded
            with m.If(is_x & ~tap_loaded):
                m.d.sync += [tap_loaded.eq(1)] + read_row(tap_row)
            with m.If(produce):
                word = Signal(64)
                m.d.comb += word.eq(asm | (val << (na << 4)))
                field_end = Mux(is_x, (tap_tok == n_tok - 1) & (tap_e == n_dim - 1), tap_e == field_len - 1)
                with m.If((na == 3) | field_end):
                    m.d.sync += [tap_beat.eq(word), tap_full.eq(1), asm.eq(0), na.eq(0)]
                with m.Else():
                    m.d.sync += [asm.eq(word), na.eq(na + 1)]
                with m.If(is_x):
                    m.d.sync += tap_e.eq(Mux(tap_e == n_dim - 1, 0, tap_e + 1))
                    with m.If(tap_e == n_dim - 1):
                        m.d.sync += tap_tok.eq(tap_tok + 1)
                    with m.If((tap_e == n_dim - 1) | (tap_lane == P - 1)):  # next row of X
                        m.d.sync += tap_loaded.eq(0)
                with m.Elif(field_end):
                    m.d.sync += [tap_f.eq(tap_f + 1), tap_e.eq(0)]
                with m.Else():
                    m.d.sync += tap_e.eq(tap_e + 1)

    def to_result():
        m.d.sync += [ob.eq(0), csum.eq(0), olen.eq(result_len)]
        m.next = "RESULT"
    packet("TAPS", Kind.TAP, tap_full, tap_beat, [tap_full.eq(0)], to_result, tap_producer)

    def finish():
        m.d.sync += [busy.eq(0), done.eq(1), images_done.eq(images_done + 1)]
        m.next = "IDLE"
    def load_beat():
        with m.If(out.tvalid & out.tready):
            m.d.sync += obeat.eq(next_beat)
    packet("RESULT", Kind.RESULT, 1, obeat, [], finish, load_beat)
