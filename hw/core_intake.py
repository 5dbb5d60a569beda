"""The core's image intake: the image packet's beats into the embedding's window memory, the embedding of
each token as soon as its window is in, and the token merge behind it (docs/hardware.md, "Sequencer").

Two parts of ``hw.core.Core.elaborate``, called where they sit in the sequencer: ``intake_signals`` (the
window counters, the cycle counter and the parser's beat) and ``intake_states`` (the sequencer states IMG and
EMB, which end in STEP). ``c`` is the core's namespace of shared signals (``hw.core``); each function names
what it takes from it and adds what it makes that others use.
"""

from amaranth.hdl import Cat, Mux, Signal

from dynaspike.packing import Kind
from dynaspike.regmap import ErrorCode

from .loader import log2


def intake_signals(c):
    """The window counters (the core's and the cycle model's), the cycle counter's increment, the parser's
    beat and the embedding's inputs that do not depend on the state."""
    m, N, emb, parser, ld, cycles_, wk = c.m, c.N, c.emb, c.parser, c.ld, c.cycles_, c.wk
    img_row = Signal(range(N + 1))              # windows in; img_g: beats of the next one
    img_g = Signal(range(emb.beat_stride))     # (the window memory's row: img_row, then img_g)
    # The same two counters on the cycle model's timeline, where the image arrives one beat per cycle
    # from its first beat and time stands still while the stream holds the inference up (IN_WAIT_CYCLES).
    mod_row, mod_g = Signal.like(img_row), Signal.like(img_g)
    counting = Signal()
    with m.If(counting):
        m.d.sync += cycles_.eq(cycles_ + 1)

    pbeat = parser.o.payload
    is_model = pbeat.kind == Kind.MODEL
    is_image = pbeat.kind == Kind.IMAGE
    # model beats go to the loader while idle; everything is dropped in the error state
    m.d.comb += ld.i.payload.eq(pbeat)
    # The window memory's write address and data, and the embedding's token, are driven in every state (only
    # the enable and the valid depend on it): they start their paths at the counters' and walker's registers.
    m.d.comb += [emb.pix_wr.addr.eq(Cat(img_g, img_row)), emb.pix_wr.data.eq(pbeat.data),
                 emb.i.payload.token.eq(wk.cur)]

    vars(c).update(img_row=img_row, img_g=img_g, mod_row=mod_row, mod_g=mod_g, counting=counting, pbeat=pbeat,
                   is_model=is_model, is_image=is_image)


def intake_states(c):
    """IMG (the image's beats, the embedding and merge of the tokens whose windows are in) and EMB (the rest
    after the packet's trailer); both go on to STEP once the merge's last token is out."""
    m, state, goto_state, fail, count, g, P = c.m, c.state, c.goto_state, c.fail, c.count, c.g, c.P
    parser, pbeat, is_image, is_model, emb, merge, e_w = c.parser, c.pbeat, c.is_image, c.is_model, c.emb, c.merge, c.e_w
    cfgd, dmask, res_th, xrow, wk, t = c.cfgd, c.dmask, c.res_th, c.xrow, c.wk, c.t
    img_row, img_g, mod_row, mod_g, counting, cycles_, img_tag = (
        c.img_row, c.img_g, c.mod_row, c.mod_g, c.counting, c.cycles_, c.img_tag)
    active, reps, rep_of, bacc, merged, merge_end = c.active, c.reps, c.rep_of, c.bacc, c.merged, c.merge_end
    def embed_and_merge(on_done):
        """windows -> embedding -> E rows and merge bits -> token merge -> representatives."""
        m.d.comb += emb.i.valid.eq(wk.any & (wk.cur < img_row))
        with m.If(emb.i.valid & emb.i.ready):
            m.d.sync += wk.next()
        eo = emb.o.payload
        lane0 = eo.chunk << log2(g.E)  # the chunk's first channel; P / E chunks fill a row of E
        per_row = log2(P // g.E)
        m.d.comb += [e_w.addr.eq(xrow(eo.token, eo.chunk >> per_row)),
                     e_w.en.eq(Mux(emb.o.valid, 1 << eo.chunk[:per_row], 0))]
        for p in range(P):
            keep = (lane0 + (p % g.E)) < cfgd.dim
            m.d.comb += e_w.data[p].eq(Mux(keep, eo.e[p % g.E], 0))
        chunk_bits = Signal(g.DP)
        cb = Cat(*((eo.e[i] >= (res_th << 1)) for i in range(g.E)))
        m.d.comb += chunk_bits.eq((cb << lane0) & dmask)
        with m.If(emb.o.valid):
            last_chunk = eo.chunk == cfgd.emb_chunks_last
            m.d.sync += bacc.eq(Mux(last_chunk, 0, bacc | chunk_bits))
            m.d.comb += [merge.i.valid.eq(last_chunk), merge.i.payload.bits.eq(bacc | chunk_bits),
                         merge.i.payload.last.eq(eo.token == cfgd.n_last)]
        mo = merge.o.payload
        with m.If(merge.o.valid):
            is_rep = mo.rep == mo.token
            m.d.sync += [reps.bit_select(mo.token, 1).eq(is_rep), rep_of[mo.token].eq(mo.rep)]
            with m.If(~is_rep):
                m.d.sync += count("MERGED_TOKENS", 1)
            with m.If(mo.last):
                m.d.sync += [active.eq(reps | (is_rep << mo.token)), t.eq(0)]
                on_done()

    with state("IMG"):
        # the image's data beats into the window memory; the cycle count starts with the first
        m.d.comb += parser.o.ready.eq(is_image)
        take = parser.o.valid & is_image
        m.d.comb += emb.pix_wr.en.eq(take & (img_row < cfgd.n))
        # Cycles the inference is held up by the stream (counted from the first beat): the embedding
        # waits for a window that the cycle model's full-rate stream would have brought by now, or
        # the merge has ended and the image's trailer has not come. A beat that is late while the
        # embedding is busy with earlier tokens costs nothing; a wait the full-rate stream has too
        # (a window of few non-zero pixels embedded faster than the next window's beats) is the model's.
        emb_starved = wk.any & (wk.cur >= img_row) & emb.i.ready
        held = (counting | take) & ((emb_starved & (mod_row > wk.cur)) | merged)
        with m.If(held):
            m.d.sync += count("IN_WAIT_CYCLES", 1)
        with m.Elif((counting | take) & (mod_row < cfgd.n)):   # the model's stream brings a beat
            m.d.sync += [mod_g.eq(Mux(mod_g == cfgd.bpt_last, 0, mod_g + 1)),
                         mod_row.eq(mod_row + (mod_g == cfgd.bpt_last))]
        with m.If(emb.pix_wr.en):
            m.d.sync += count("EMB_PIXELS", emb.pix_nonzero)
        with m.If(take):
            m.d.sync += counting.eq(1)
            with m.If(~counting):
                m.d.sync += cycles_.eq(1)
            m.d.sync += img_g.eq(Mux(img_g == cfgd.bpt_last, 0, img_g + 1))
            m.d.sync += img_row.eq(img_row + (img_g == cfgd.bpt_last))
            with m.If(img_row >= cfgd.n):
                m.d.sync += fail(ErrorCode.BAD_LENGTH)
        with m.If(parser.o.valid & is_model):  # a model packet while an image is expected
            m.d.sync += fail(ErrorCode.BAD_KIND)
        def merge_before_trailer():   # only when the stream idles before the trailer
            m.d.sync += merged.eq(1)
            m.d.comb += merge_end.eq(1)

        embed_and_merge(merge_before_trailer)
        with m.If(parser.ok & (parser.kind == Kind.IMAGE)):
            m.d.sync += img_tag.eq(parser.tag)
            with m.If((img_row != cfgd.n) | (img_g != 0)):
                m.d.sync += fail(ErrorCode.BAD_LENGTH)
            with m.Elif(merged | merge_end):
                m.next = "STEP"
            with m.Else():
                m.next = "EMB"

    with state("EMB"):
        embed_and_merge(goto_state("STEP"))
