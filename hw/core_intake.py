"""The core's front: an image's intake, its embedding and its token merge, overlapped with the previous
image's blocks (docs/hardware.md, "Sequencer").

The front is a state machine of its own (``front``: F_IDLE, IMG, EMB, READY) beside the sequencer. It takes
an image packet's beats into the embedding's window memory, embeds each token as soon as its window is in,
and runs the token merge behind it; the embedding ``E`` goes to one bank of a two-bank memory while the
sequencer's blocks read the other. When the image is embedded and merged the front waits in READY until the
sequencer takes it (``take_image``, in the sequencer's IDLE: the bank, the representatives, the merge sizes
and the front's counters pass to the sequencer); the front is then free for the next image. An image starts
with CTRL.START, or, with RUN_CONFIG.STREAM, with its own packet's first beat, so a stream of image packets
runs back to back with each image's front hidden behind the previous image's blocks.

Three parts of ``hw.core.Core.elaborate``: ``intake_signals`` (the front's registers and the parser's beat),
``intake_states`` (the front's state machine) and ``take_image`` (the sequencer's statements that take the
image). ``c`` is the core's namespace of shared signals (``hw.core``); each function names what it takes
from it and adds what it makes that others use.
"""

from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Mux, Signal

from dynaspike.packing import Kind
from dynaspike.regmap import ErrorCode

from .loader import log2

# the performance counters the front counts (for its image, until the sequencer takes it)
FRONT_COUNTERS = ("IN_WAIT_CYCLES", "EMB_PIXELS", "MERGED_TOKENS")


def intake_signals(c):
    """The front's registers: window counters (the core's and the cycle model's), its token counter, the
    image's representatives, its options and counters, the E bank it writes; the parser's beat."""
    m, N, g, parser, ld, emb = c.m, c.N, c.g, c.parser, c.ld, c.emb
    img_row = Signal(range(N + 1))              # windows in; img_g: beats of the next one
    img_g = Signal(range(emb.beat_stride))     # (the window memory's row: img_row, then img_g)
    # The same two counters on the cycle model's timeline, where the image arrives one beat per cycle
    # from its first beat and time stands still while the stream holds the inference up (IN_WAIT_CYCLES).
    mod_row, mod_g = Signal.like(img_row), Signal.like(img_g)
    f_tok = Signal(range(N))                    # the next token to embed; f_more: there is one
    f_more = Signal()
    f_reps = Signal(N)                          # the merge's verdicts so far
    f_rep_of = Array(Signal(range(N), name=f"f_rep{k}") for k in range(N))
    f_taps, f_dense, f_tag = Signal(), Signal(), Signal(32)   # RUN_CONFIG at the start, the packet's tag
    f_count = {name: Signal(32, name=f"f_{name.lower()}") for name in FRONT_COUNTERS}
    # The image's cycles from its first beat; it starts at 2, not 1: the cycle in which the sequencer takes
    # the image counts too, and cycles_ takes this value then as it is (no adder on that path).
    f_cycles = Signal(32)
    f_counting = Signal()
    f_bank = Signal()                           # the E bank the front writes (the sequencer reads the other)
    with m.If(f_counting):
        m.d.sync += f_cycles.eq(f_cycles + 1)

    pbeat = parser.o.payload
    is_model = pbeat.kind == Kind.MODEL
    is_image = pbeat.kind == Kind.IMAGE
    # model beats go to the loader while idle; everything is dropped in the error state
    m.d.comb += ld.i.payload.eq(pbeat)
    # The window memory's write address and data, and the embedding's token, are driven in every state (only
    # the enable and the valid depend on it): they start their paths at the counters' registers.
    m.d.comb += [emb.pix_wr.addr.eq(Cat(img_g, img_row)), emb.pix_wr.data.eq(pbeat.data),
                 emb.i.payload.token.eq(f_tok)]

    vars(c).update(img_row=img_row, img_g=img_g, mod_row=mod_row, mod_g=mod_g, f_tok=f_tok, f_more=f_more,
                   f_reps=f_reps, f_rep_of=f_rep_of, f_taps=f_taps, f_dense=f_dense, f_tag=f_tag,
                   f_count=f_count, f_cycles=f_cycles, f_counting=f_counting, f_bank=f_bank, pbeat=pbeat,
                   is_model=is_model, is_image=is_image)


def intake_states(c):
    """The front: F_IDLE (an image starts), IMG (its beats, the embedding and merge of the tokens whose
    windows are in), EMB (the rest after the packet's trailer), READY (until the sequencer takes it)."""
    m, fail, g, P, N = c.m, c.fail, c.g, c.P, c.N
    parser, pbeat, is_image, is_model, emb, merge, e_w = c.parser, c.pbeat, c.is_image, c.is_model, c.emb, c.merge, c.e_w
    cfgd, dmask, res_th, xrow, regs, loaded, error, done = (
        c.cfgd, c.dmask, c.res_th, c.xrow, c.regs, c.loaded, c.error, c.done)
    img_row, img_g, mod_row, mod_g, f_tok, f_more, f_reps, f_rep_of, f_taps, f_dense, f_tag = (
        c.img_row, c.img_g, c.mod_row, c.mod_g, c.f_tok, c.f_more, c.f_reps, c.f_rep_of, c.f_taps, c.f_dense,
        c.f_tag)
    f_count, f_cycles, f_counting, f_bank = c.f_count, c.f_cycles, c.f_counting, c.f_bank
    bacc = Signal(g.DP)            # embedding: the merge bits of the token's chunks so far
    merged, merge_end = Signal(), Signal()   # the merge ended before the image's trailer (an idle stream)
    n_last = cfgd.n_last

    def count(name, amount):
        return f_count[name].eq(f_count[name] + amount)

    def embed_and_merge(on_done):
        """windows -> embedding -> E rows and merge bits -> token merge -> representatives."""
        m.d.comb += emb.i.valid.eq(f_more & (f_tok < img_row))
        with m.If(emb.i.valid & emb.i.ready):
            m.d.sync += [f_tok.eq(f_tok + 1), f_more.eq(f_tok != n_last)]
        eo = emb.o.payload
        lane0 = eo.chunk << log2(g.E)  # the chunk's first channel; P / E chunks fill a row of E
        per_row = log2(P // g.E)
        m.d.comb += [e_w.addr.eq(c.e_addr(xrow(eo.token, eo.chunk >> per_row), f_bank)),
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
                         merge.i.payload.last.eq(eo.token == n_last)]
        mo = merge.o.payload
        with m.If(merge.o.valid):
            is_rep = mo.rep == mo.token
            m.d.sync += [f_reps.bit_select(mo.token, 1).eq(is_rep), f_rep_of[mo.token].eq(mo.rep)]
            with m.If(~is_rep):
                m.d.sync += count("MERGED_TOKENS", 1)
            with m.If(mo.last):
                on_done()

    def ready():
        m.d.sync += f_counting.eq(0)
        m.next = "READY"

    @contextmanager
    def state(name):
        """A front state that an error stops (the sequencer's ERROR state drops the stream until SOFT_RESET)."""
        with m.State(name):
            yield
            with m.If(error):
                m.d.sync += f_counting.eq(0)
                m.next = "F_IDLE"

    m.d.comb += merge.threshold.eq(Mux(f_dense, -1, c.prm["merge_threshold"]))
    with m.FSM(name="front") as fsm:
        with m.State("F_IDLE"):
            # an image starts with START, or with its packet in STREAM mode; not while a model loads. START or
            # an image packet without a model is an error.
            image_in = parser.o.valid & is_image
            with m.If((regs.ctrl.start | image_in) & ~error & ~c.loading):
                with m.If(~loaded):
                    m.d.sync += fail(ErrorCode.NO_MODEL)
                with m.Elif(regs.ctrl.start | regs.run_config.stream):
                    m.d.sync += [done.eq(0), img_row.eq(0), img_g.eq(0), mod_row.eq(0), mod_g.eq(0), f_tok.eq(0),
                                 f_more.eq(1), f_reps.eq(0), bacc.eq(0), merged.eq(0),
                                 f_taps.eq(regs.run_config.debug_taps), f_dense.eq(regs.run_config.force_dense)]
                    m.d.sync += [v.eq(0) for v in f_count.values()]
                    m.next = "IMG"

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
            emb_starved = f_more & (f_tok >= img_row) & emb.i.ready
            held = (f_counting | take) & ((emb_starved & (mod_row > f_tok)) | merged)
            with m.If(held):
                m.d.sync += count("IN_WAIT_CYCLES", 1)
            with m.Elif((f_counting | take) & (mod_row < cfgd.n)):   # the model's stream brings a beat
                m.d.sync += [mod_g.eq(Mux(mod_g == cfgd.bpt_last, 0, mod_g + 1)),
                             mod_row.eq(mod_row + (mod_g == cfgd.bpt_last))]
            with m.If(emb.pix_wr.en):
                m.d.sync += count("EMB_PIXELS", emb.pix_nonzero)
            with m.If(take):
                m.d.sync += f_counting.eq(1)
                with m.If(~f_counting):
                    m.d.sync += f_cycles.eq(2)
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
                m.d.sync += f_tag.eq(parser.tag)
                with m.If((img_row != cfgd.n) | (img_g != 0)):
                    m.d.sync += fail(ErrorCode.BAD_LENGTH)
                with m.Elif(merged | merge_end):
                    ready()
                with m.Else():
                    m.next = "EMB"

        with state("EMB"):
            embed_and_merge(ready)

        with state("READY"):
            with m.If(c.take):
                m.d.sync += f_bank.eq(~f_bank)
                m.next = "F_IDLE"

    vars(c).update(front_idle=fsm.ongoing("F_IDLE"), front_ready=fsm.ongoing("READY"))


def take_image(c):
    """The sequencer takes the front's image (``c.take`` is set this cycle; the front is in READY): returns
    its sync statements. The representatives become the active tokens; the merge's sizes, the front's
    counters and options pass to the sequencer's registers; the sequencer reads the E bank the front wrote."""
    m, N = c.m, c.N
    merge, perf, PERF = c.merge, c.perf, c.PERF
    m.d.comb += [c.lif.clear.eq(1), c.halt.clear.eq(1), c.head.clear.eq(1)]
    s = [c.busy.eq(1), c.taps_on.eq(c.f_taps), c.dense.eq(c.f_dense), c.img_tag.eq(c.f_tag),
         c.cycles_.eq(c.f_cycles), c.counting.eq(1), c.e_bank.eq(c.f_bank), c.reps.eq(c.f_reps),
         c.active.eq(c.f_reps), c.t.eq(0), c.fresh.eq(Const(-1, len(c.fresh)))]
    s += [p.eq(0) for p in perf]
    s += [perf[PERF[name]].eq(v) for name, v in c.f_count.items()]
    s += [c.rep_of[k].eq(c.f_rep_of[k]) for k in range(N)]
    s += [c.sizes[k].eq(merge.sizes[k]) for k in range(N)]
    return s
