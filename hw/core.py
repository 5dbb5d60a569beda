# amaranth: UnusedElaboratable=no
"""The dynaspike core: the whole network of docs/integer_model.md on one accumulate engine.

Top level (``Core``): AXI4-Lite registers (``dynaspike.regmap``), an AXI4-Stream input (model and image
packets, ``dynaspike.packing``) and an AXI4-Stream output (TAP and RESULT packets). The sequencer runs an
inference as a fixed order of *passes* (docs/hardware.md, "Sequencer"); every pass walks the tokens of
a mask (the active tokens, or the representatives) in index order through one pipeline, so halted and
merged tokens cost no cycle, and a module switched off by the time-step mask costs only its decision
cycle. The cycle count of every pass is ``dynaspike.cycles`` (``pass_cycles``); ``train.cycle_model``
predicts the whole inference from it.

Memories: the model (weights, biases, thresholds, embedding, head, halting LUT) is written by
``hw.loader.ModelLoader``; per image the embedding keeps the windows (``hw.embed``), the sequencer the
embedding ``E`` and the residual ``X`` (``dc = ceil(D / P)`` rows of P lanes per token: row ``tok * dc + c``
holds channels ``c*P ..``), the spike vectors of the current module (``sin``: S, A or S2; ``qm``, ``km``,
``vm``; ``zm``: the hidden spikes; one word per token, written a row of P bits at a time), and every LIF membrane
(``hw.lif_layer.LIFLayer``). ``X`` is not copied from ``E`` at each step: a ``fresh`` bit per row makes
reads of ``X`` return ``E`` until the row's first residual add of the step.
"""

from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike import cycles, packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS
from dynaspike.packing import TRAILER_MAGIC, STREAM_MAGIC, STREAM_VERSION, Kind
from dynaspike.regmap import ErrorCode

from .accumulate import BLOCK_RAM, AccumulateEngine, connect_write
from .attention import AttentionKV
from .axil import RegisterBlock, axi_lite_signature
from .embed import Embedding
from .events import EventGenerator
from .halt import HaltUnit
from .head import Head
from .lif_layer import LIFLayer
from .arith import lowest_set, mul, saturate
from .loader import PARAM_FIELDS, Geometry, ModelLoader, log2
from .merge import TokenMerge, popcount
from .stream_in import StreamParser, axis_signature

PERF = {name: k for k, (name, _) in enumerate(regmap.PERF_COUNTERS)}
# where a LIF update's spikes go (its tag's `to`): the spike vector S (A, S2), the q/k/v memories (by
# `mat`), the hidden spikes Z (by `j`), the readout counts
SPIKES_S, SPIKES_QKV, SPIKES_Z, SPIKES_OUT = range(4)


class Walker:
    """The tokens of a mask in index order: ``cur`` (comb) is the lowest one left; ``next()`` drops it."""

    def __init__(self, m, n: int, name: str):
        self.rem = Signal(n, name=f"{name}_rem")
        self.cur, self.any = lowest_set(m, self.rem, name)
        self.last = (self.rem & (self.rem - 1)) == 0  # cur is the final token

    def load(self, mask):
        return self.rem.eq(mask)

    def next(self):
        return self.rem.eq(self.rem & (self.rem - 1))


class Core(wiring.Component):
    """The core, sized for models up to ``cfg`` (``packing.capacity_for(cfg, lanes)``) on ``lanes`` P.

    Ports: ``s_axil`` (AXI4-Lite slave), ``s_axis`` (AXI4-Stream in), ``m_axis`` (AXI4-Stream out).
    """

    def __init__(self, lanes: int = cycles.DEFAULT_LANES, cfg: ModelConfig = ModelConfig(), *,
                 clock_hz: int = 100_000_000):
        if cycles.ACC_SPIKES != 2:
            raise ValueError(f"the event generator takes spikes from both ends of a vector: two per cycle, "
                             f"not cycles.ACC_SPIKES = {cycles.ACC_SPIKES}")
        if cycles.ACC_ROWS != 2:
            raise ValueError(f"the sequencer pads engine rows to two beats and drains them in two halves, "
                             f"not cycles.ACC_ROWS = {cycles.ACC_ROWS}")
        self.g = Geometry.for_core(cfg, lanes, clock_hz)
        self.cap = self.g.cap
        self.rows = packing.weight_layout(cfg, lanes)["_rows"]
        super().__init__({
            "s_axil": In(axi_lite_signature()),
            "s_axis": In(axis_signature()),
            "m_axis": Out(axis_signature()),
        })

    def elaborate(self, platform):
        g, fmt = self.g, FORMATS
        P, N = g.P, g.N
        top = Module()
        m = Module()  # everything a soft reset returns to its reset state (the model stays)

        regs = top.submodules.regs = RegisterBlock(self.cap)
        parser = top.submodules.parser = StreamParser(P)
        emb = Embedding(g.E, g.D, g.PD, N, granules=g.E)
        ld = top.submodules.loader = ModelLoader(g, self.rows["weights"], self.rows["biases"],
                                                 self.rows["thresholds"], emb.w_rows, emb.b_rows,
                                                 g.C * g.head_groups)
        # a row of P lanes: its token, its row j in the pass, which matrix (q, k, v) and which chunk c of the
        # matrix it is (j = mat * chunks + c); an engine row carries the tag of its first chunk and whether its
        # second chunk exists (`two`)
        # and where the LIF layer's spikes go (`to`: SPIKES_*), so a pass may end before its last spikes do
        tag = data.StructLayout({"tok": range(N), "j": range(max(3 * g.dc, g.hch)), "mat": range(3),
                                 "c": range(max(g.dc, g.hch)), "to": range(4)})
        etag = data.StructLayout({"row": tag, "two": 1, "lif": 1})   # lif: a LIF layer's row, not a residual add
        acc = AccumulateEngine(g.A, self.rows["weights"], self.rows["biases"], tag_shape=etag,
                               w_granules=g.A // 8, b_granules=g.A // 2)
        lif = LIFLayer(P, N * g.R, tag_shape=tag, transparent=False)  # no row twice in a row
        att = AttentionKV(N, g.D, g.heads)
        halt = HaltUnit(N)
        merge = TokenMerge(N, g.D)
        head = Head(P, g.D, g.C, g.M, N, granules=g.M)
        soft = regs.ctrl.soft_reset
        for name, sub in (("acc", acc), ("lif", lif), ("att", att), ("halt", halt), ("merge", merge),
                          ("emb", emb), ("head", head)):
            top.submodules[name] = ResetInserter({"sync": soft})(sub)
        top.submodules.seq = ResetInserter({"sync": soft})(m)
        m.d.comb += parser.soft_reset.eq(soft)
        wiring.connect(top, wiring.flipped(self.s_axil), regs.axil)
        wiring.connect(top, wiring.flipped(self.s_axis), parser.s_axis)
        for dst, src in ((acc.w_wr, ld.w_wr), (acc.b_wr, ld.b_wr), (emb.w_wr, ld.ew_wr), (emb.b_wr, ld.eb_wr),
                         (head.w_wr, ld.hw_wr), (head.b_wr, ld.hb_wr), (halt.lut_wr, ld.lut_wr)):
            wiring.connect(top, src, dst)

        cfgd = ld.derived
        prm = {name: ld.params[k] for k, name in enumerate(PARAM_FIELDS)}
        dense = regs.run_config.force_dense
        taps_on = Signal()

        # ------------------------------------------------------------------ status, errors, model state
        loaded = Signal()      # not reset by SOFT_RESET: the model stays
        loading = Signal()
        error = Signal()
        error_code = Signal(8)
        error_beat = Signal(32)
        images_done = Signal(32)
        cycles_ = Signal(64)
        perf = Array(Signal(32, name=f"perf_{n.lower()}") for n, _ in regmap.PERF_COUNTERS)
        busy = Signal()
        done = Signal()
        m.d.comb += [regs.status.busy.eq(busy | loading), regs.status.done.eq(done), regs.status.error.eq(error),
                     regs.status.model_loaded.eq(loaded), regs.status.loading.eq(loading),
                     regs.error_code.eq(error_code), regs.error_beat.eq(error_beat),
                     regs.images_done.eq(images_done), regs.cycles.eq(cycles_)]
        m.d.comb += [regs.perf[k].eq(perf[k]) for k in range(len(regmap.PERF_COUNTERS))]
        m.d.comb += [regs.model[k].eq(ld.cfg[k]) for k in range(len(ld.cfg))]

        def fail(code, beat=0):
            return [error.eq(1), error_code.eq(code), error_beat.eq(beat)]

        with m.If(parser.error & ~error):
            m.d.sync += fail(parser.error_code, parser.error_beat)

        # ------------------------------------------------------------------ per-image memories
        # E and X in block RAM (P x 16 bits wide, N dc deep: about 700 LUTs of distributed RAM otherwise)
        emem = Memory(shape=data.ArrayLayout(signed(fmt.res_bits), P), depth=N * g.dc, init=[], attrs=BLOCK_RAM)
        xmem = Memory(shape=data.ArrayLayout(signed(fmt.res_bits), P), depth=N * g.dc, init=[], attrs=BLOCK_RAM)
        sin, qm, km, vm = (Memory(shape=g.DP, depth=N, init=[]) for _ in range(4))
        zm = Memory(shape=g.hch * P, depth=N, init=[])
        thm = Memory(shape=data.ArrayLayout(signed(fmt.acc_bits), P), depth=self.rows["thresholds"], init=[],
                     attrs=BLOCK_RAM)
        for name, mem in (("emem", emem), ("xmem", xmem), ("sin", sin), ("qm", qm), ("km", km),
                          ("vm", vm), ("zm", zm), ("thm", thm)):
            m.submodules[name] = mem
        e_w = emem.write_port(granularity=g.E)
        x_w = xmem.write_port()
        sin_w, qm_w, km_w, vm_w = (mem.write_port(granularity=P) for mem in (sin, qm, km, vm))
        zm_w = zm.write_port(granularity=P)
        connect_write(top, thm, ld.th_wr)
        sin_r, qm_r, km_r, vm_r, zm_r = (mem.read_port(domain="comb") for mem in (sin, qm, km, vm, zm))
        e_r, x_r, th_r = emem.read_port(), xmem.read_port(), thm.read_port()

        active, reps, fresh = Signal(N), Signal(N), Signal(N * g.dc)
        rep_of = Array(Signal(range(N), name=f"rep{k}") for k in range(N))
        halt_t = Array(Signal(signed(8), name=f"halt_t{k}") for k in range(N))
        halt_l = Array(Signal(signed(8), name=f"halt_l{k}") for k in range(N))
        logits = Array(Signal(signed(fmt.logit_bits), name=f"logit{c}") for c in range(2 * ((g.C + 1) // 2)))
        t = Signal(range(g.Tmax + 1))
        l = Signal(range(g.Lmax + 1))
        wb = Signal(range(self.rows["weights"] + 1))   # weight, bias and threshold rows of block l
        bb = Signal(range(self.rows["biases"] + 1))
        tb = Signal(range(self.rows["thresholds"] + 1))
        attn_on, mlp_on = Signal(), Signal()
        many = Signal()   # the block has >= cycles.EARLY_END_TOKENS active tokens
        crowd = Signal()  # the block has >= cycles.EARLY_END_TOKENS_QKV active tokens
        ro_fed = Signal(N)  # the step's readout of these tokens rides on its last block's last residual add
        final = (t == cfgd.steps - 1) & (l == cfgd.blocks - 1)
        mask_bit = lambda mod: ld.mask.bit_select(mul(mod, g.Tmax) + t, 1)  # noqa: E731
        dmask = Signal(g.DP)  # channels < D
        m.d.comb += dmask.eq(~(Const(-1, g.DP) << cfgd.dim))
        xrow = lambda tok, c: mul(tok, g.dc) + c  # noqa: E731 -- the X / E row of chunk c of a token
        last_c = lambda c: c == cfgd.dch - 1  # noqa: E731 -- c is the token's last chunk of D
        sizes = merge.sizes

        # ------------------------------------------------------------------ the pass machinery
        wk = Walker(m, N, "wk")          # tokens of the current pass
        wq = Walker(m, N, "wq")          # attention: Q tokens
        wo = Walker(m, N, "wo")          # attention: Y rows
        xc = Signal(range(g.dc))         # x passes: the chunk of D of the walker's token being read
        drain = Signal(range(8))

        OUT_ROW = g.Lmax * g.stride

        # X / E reads (sync): one address for both; a row of the walker's token, or the accumulator row's
        x_addr = Signal(range(N * g.dc))
        m.d.comb += [x_r.addr.eq(x_addr), e_r.addr.eq(x_addr)]
        xr_valid = Signal()
        xr_tok = Signal(range(N))        # the row read last cycle: its token, chunk and X row
        xr_c = Signal(range(g.dc))
        xr_row = Signal(range(N * g.dc))
        xval = Signal(data.ArrayLayout(signed(fmt.res_bits), P))
        xr_fresh = fresh.bit_select(xr_row, 1)
        m.d.comb += [xval[p].eq(Mux(xr_fresh, e_r.data[p], x_r.data[p])) for p in range(P)]
        m.d.sync += xr_valid.eq(0)

        # event generator: the present spikes of a token's spike vector, two per cycle (hw/events.py), once
        # per engine row of the token (ACC_ROWS chunks of P output channels)
        eg = m.submodules.events = EventGenerator(g.W, P)
        eg_busy = Signal()
        eg_tok = Signal(range(N))
        eg_r = Signal(range(max(3 * g.dc, g.hch) + 1))        # engine row of the token in the pass
        eg_j = Signal(range(max(3 * g.dc, g.hch) + 2))        # its first chunk's row j = mat * chunks + c
        eg_mat, eg_c = Signal(range(3)), Signal(range(max(g.dc, g.hch) + 2))
        eg_w = Signal.like(wb)
        # An engine row takes at least ACC_ROWS = 2 beats (cycles.row_beats): its two halves drain into the
        # P-lane LIF layer or residual add one per cycle, so a row that fits one beat gets an empty beat first.
        eg_pad = Signal()     # the row's first beat is still to come
        pad = eg_pad & eg.last
        eg_row_end = eg.last & ~pad
        ev = acc.i.payload
        m.d.comb += [ev.index[0].eq(eg.idx[0]), ev.index[1].eq(eg.idx[1]), ev.present.eq(Mux(pad, 0, eg.present)),
                     eg.step.eq(eg_busy & ~pad), ev.w_base.eq(eg_w), ev.last.eq(eg_row_end),
                     ev.tag.row.tok.eq(eg_tok), ev.tag.row.j.eq(eg_j), ev.tag.row.mat.eq(eg_mat),
                     ev.tag.row.c.eq(eg_c), acc.i.valid.eq(eg_busy), acc.o.ready.eq(1)]
        with m.If(eg_busy):
            m.d.sync += eg_pad.eq(0)
        pass_w = Signal.like(wb)         # weight row of the pass's first row
        pass_b = Signal.like(bb)
        # the last LIF-layer event pass's threshold rows, membrane rows and spike memory: registers, so that its
        # last rows still find them while the next pass (fc2, or the attention pass) has begun
        lif_th0 = Signal.like(tb)
        lif_ml = Signal(range(g.Lmax * g.stride + 1))
        lif_to = Signal(range(4))
        m.d.comb += ev.b_row.eq(pass_b + eg_r)
        src_bits = Signal(g.W)
        m.d.comb += eg.bits.eq(src_bits)
        m.d.comb += [sin_r.addr.eq(wk.cur), zm_r.addr.eq(wk.cur)]

        def eg_load(tok):
            """Start token ``tok``'s engine rows: loads the generator (comb, in the caller's context) and
            returns the sequencer's own updates."""
            m.d.comb += eg.load.eq(1)
            return [eg_busy.eq(1), eg_tok.eq(tok), eg_r.eq(0), eg_j.eq(0), eg_mat.eq(0), eg_c.eq(0),
                    eg_w.eq(pass_w), eg_pad.eq(1)]

        # engine rows -> two halves of P lanes, one per cycle (`ao`): each to the LIF layer with its threshold
        # row (sync read), or to the residual add with its X row (sync read). Rows come >= 2 cycles apart.
        ao_valid, ao_half = Signal(), Signal()
        ao_acc = Signal(acc.acc_shape)
        ao_tag = Signal(etag)
        with m.If(acc.o.valid):
            m.d.sync += [ao_valid.eq(1), ao_half.eq(0), ao_acc.eq(acc.o.payload), ao_tag.eq(acc.o_tag)]
        with m.Elif(ao_valid & ~ao_half):
            m.d.sync += ao_half.eq(1)
        with m.Else():
            m.d.sync += ao_valid.eq(0)
        half_valid = ao_valid & (~ao_half | ao_tag.two)
        half = [Mux(ao_half, ao_acc[P + p], ao_acc[p]) for p in range(P)]   # the current half's P lanes
        half_tag = Signal(tag)
        m.d.comb += [half_tag.eq(ao_tag.row), half_tag.j.eq(ao_tag.row.j + ao_half),
                     half_tag.c.eq(ao_tag.row.c + ao_half)]
        m.d.comb += th_r.addr.eq(lif_th0 + Mux(acc.o.valid, acc.o_tag.row.j, ao_tag.row.j + 1))

        # LIF layer input: one source per pass kind (set below)
        li = lif.i.payload
        lo = lif.o.payload
        m.d.comb += lif.o.ready.eq(1)
        attn_th = prm["attn_threshold"]
        res_th = prm["res_threshold"]
        # one input mux per lane, chosen by the pass: X (residual LIFs), an accumulator row with its
        # thresholds (q, k, v, hid), or an attention row Y; scalar thresholds are broadcast
        lif_from_acc, lif_from_y, lif_from_res = Signal(), Signal(), Signal()
        scalar_th = Mux(lif_from_y, attn_th, res_th)
        yc = Signal(range(g.dc))  # the chunk of the attention row Y going to the LIF layer
        for p in range(P):
            y = Array(att.o.payload.y[c * P + p] if c * P + p < g.D else Const(0) for c in range(g.dc))[yc]
            m.d.comb += [li.x[p].eq(Mux(lif_from_acc, half[p], Mux(lif_from_y, y, Mux(lif_from_res, x_w.data[p], xval[p])))),
                         li.th[p].eq(Mux(lif_from_acc, th_r.data[p], scalar_th))]

        # spike writes: word = token, the row of P bits = the update's chunk of D (or hidden chunk j)
        for w in (sin_w, qm_w, km_w, vm_w, zm_w):
            m.d.comb += [w.addr.eq(lo.tag.tok)]
        m.d.comb += [w.data.eq(lo.spike.replicate(g.dc)) for w in (sin_w, qm_w, km_w, vm_w)]
        m.d.comb += zm_w.data.eq(lo.spike.replicate(g.hch))

        # attention
        kv = att.kv_i.payload
        m.d.comb += [km_r.addr.eq(wk.cur), vm_r.addr.eq(wk.cur), qm_r.addr.eq(wq.cur),
                     kv.k.eq(km_r.data), kv.v.eq(vm_r.data), kv.size.eq(sizes[wk.cur]), kv.last.eq(wk.last),
                     att.q_i.payload.q.eq(qm_r.data), att.q_i.payload.last.eq(wq.last),
                     att.o.ready.eq(last_c(yc))]  # a Y row goes to the LIF layer a chunk of D per cycle
        dh = g.dh
        kv_acs = Signal(32)
        m.d.comb += kv_acs.eq(sum(Mux(vm_r.data[h * dh:(h + 1) * dh].any(), popcount(km_r.data[h * dh:(h + 1) * dh]), 0)
                                  for h in range(g.heads)) << log2(dh))

        # halting: the block's last residual add (fc2's, or proj's when the MLP is off) hands each token's
        # halting channel to the halting unit as it writes it, through a register (`hin`), so no pass of its
        # own reads X for it; its decisions land in `active` before the next BLOCK reads it
        hin_valid, hin_tok, hin_x = Signal(), Signal(range(N)), Signal(signed(fmt.res_bits))
        m.d.sync += hin_valid.eq(0)
        m.d.comb += [halt.shift.eq(prm["halt_shift"]), halt.lut_min.eq(prm["halt_lut_min"]),
                     halt.threshold.eq(prm["halt_threshold"]), halt.o.ready.eq(1), halt.i.valid.eq(hin_valid),
                     halt.i.payload.token.eq(hin_tok), halt.i.payload.final.eq(0), halt.i.payload.x.eq(hin_x)]
        halt_c = (prm["halt_channel"] >> log2(P))[:max(1, (g.dc - 1).bit_length())]  # the halting channel's chunk of D
        halt_lane = prm["halt_channel"][:log2(P)]
        # readout
        lo_dmask = dmask.word_select(lo.tag.c, P)  # the channels among the LIF row's lanes
        m.d.comb += [head.i.payload.chunk.eq(lo.tag.c), head.i.payload.spike.eq(lo.spike & lo_dmask),
                     head.i.payload.w.eq(sizes[lo.tag.tok])]
        # merge / embedding
        m.d.comb += [merge.threshold.eq(Mux(dense, -1, prm["merge_threshold"])), merge.o.ready.eq(1),
                     emb.o.ready.eq(1), emb.chunks.eq(cfgd.emb_chunks), emb.patch_dim.eq(cfgd.patch_dim),
                     emb.bpt.eq(cfgd.bpt),
                     head.o.ready.eq(1), head.n_classes.eq(cfgd.classes),
                     head.n_groups.eq((cfgd.dim + g.M - 1) >> log2(g.M))]

        def count(name, amount):
            return perf[PERF[name]].eq(perf[PERF[name]] + amount)

        # the halting unit's decisions (its inputs come from the residual adds, below)
        ho = halt.o.payload
        with m.If(halt.o.valid & ho.halted):
            m.d.sync += [active.bit_select(ho.token, 1).eq(0), halt_t[ho.token].eq(t), halt_l[ho.token].eq(l)]
            with m.If(~final):
                m.d.sync += count("HALTED_TOKENS", 1)

        # The attention counters add their amounts a cycle late, from registers: a walker's priority tree, a
        # spike-memory read and a popcount in front of a 32-bit adder was the core's deepest path. (These
        # statements come before the sequencer's, so its reset of the counters at START wins; the last
        # amount lands during the attention pass's drain, long before DONE.)
        kv_add, y_add = Signal(32), Signal(32)
        m.d.sync += [kv_add.eq(0), y_add.eq(0), count("AC_KV", kv_add), count("AC_Y", y_add)]

        # ------------------------------------------------------------------ output packets
        out = self.m_axis
        ob = Signal(16)                  # beat of the packet being sent
        olen = Signal(16)                # its payload beats
        csum = Signal(32)
        obeat = Signal(64)               # the payload beat `ob - 2`
        n_logit_beats = (cfgd.classes + 1) >> 1
        with m.If(ob - 2 < n_logit_beats):
            k = (ob - 2)[:max(1, (g.C).bit_length())]
            lo_l = logits[k << 1]
            hi_l = Mux((k << 1) + 1 < cfgd.classes, logits[(k << 1) + 1], 0)
            m.d.comb += obeat.eq(Cat(lo_l[:32], hi_l[:32]))
        with m.Else():
            m.d.comb += obeat.eq(cycles_)
        img_tag = Signal(32)
        tap_f = Signal(range(8))         # TAP packet: field, element, token of the X field
        tap_e = Signal(range(max(N, g.D) + 1))
        tap_tok = Signal(range(N + 1))
        tap_loaded = Signal()            # the X row of element tap_e of tap_tok has been read
        tap_full, tap_beat = Signal(), Signal(64)
        asm, na = Signal(64), Signal(range(4))
        q4 = lambda n: (n + 3) >> 2      # noqa: E731 -- beats of n 16-bit elements
        tap_beats = q4(cfgd.dim) + mul(q4(cfgd.n), 5) + q4(mul(cfgd.n, cfgd.dim))

        # ------------------------------------------------------------------ image intake counters
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

        # ------------------------------------------------------------------ the sequencer
        ctrl = regs.ctrl
        # model state lives outside the soft-reset domain: the sequencer only requests changes
        set_loaded, clr_loaded, set_loading, clr_loading = Signal(), Signal(), Signal(), Signal()
        with top.If(set_loading):
            top.d.sync += loading.eq(1)
        with top.If(clr_loading | soft):
            top.d.sync += loading.eq(0)
        with top.If(set_loaded):
            top.d.sync += loaded.eq(1)
        with top.If(clr_loaded | (ctrl.unload & ~busy)):
            top.d.sync += loaded.eq(0)

        bacc = Signal(g.DP)            # embedding: the merge bits of the token's chunks so far
        merged, merge_end = Signal(), Signal()   # the merge ended before the image's trailer (an idle stream)
        with m.FSM(name="seq") as fsm:
            @contextmanager
            def state(name):
                """A sequencer state that leaves for ERROR as soon as an error is latched."""
                with m.State(name):
                    yield
                    with m.If(error):
                        m.next = "ERROR"

            def goto_state(target):
                def f():
                    m.next = target
                return f

            def goto(target, **load):
                def f():
                    m.next = target
                    m.d.sync += [wk.load(load.get("mask", active)), drain.eq(load.get("drain", cycles.DRAIN_X)),
                                 xc.eq(0), yc.eq(0)]
                    for s_ in load.get("also", []):
                        m.d.sync += s_
                return f

            with m.State("IDLE"):
                m.d.comb += ld.i.valid.eq(parser.o.valid & is_model & ~error)
                m.d.comb += parser.o.ready.eq(Mux(error, 1, is_model & ld.i.ready))
                with m.If(parser.o.valid & is_model & (pbeat.section == 1) & (pbeat.index == 0) & ~error):
                    m.d.comb += [clr_loaded.eq(1), set_loading.eq(1)]
                with m.If(parser.ok & (parser.kind == Kind.MODEL) & ~error):
                    m.d.comb += clr_loading.eq(1)
                    with m.If(~ld.fits):
                        m.d.sync += fail(ErrorCode.EXCEEDS_CAPACITY)
                    with m.Elif(~ld.lengths_ok):
                        m.d.sync += fail(ErrorCode.BAD_LENGTH)
                    with m.Else():
                        m.d.comb += set_loaded.eq(1)
                with m.If(error):
                    m.next = "ERROR"
                with m.Elif(ctrl.start | (parser.o.valid & is_image)):
                    with m.If(~loaded):
                        m.d.sync += fail(ErrorCode.NO_MODEL)
                        m.next = "ERROR"
                    with m.Elif(ctrl.start):
                        m.d.sync += [busy.eq(1), done.eq(0), taps_on.eq(regs.run_config.debug_taps),
                                     img_row.eq(0), img_g.eq(0), mod_row.eq(0), mod_g.eq(0), cycles_.eq(0)]
                        m.d.sync += [p.eq(0) for p in perf]
                        m.d.sync += [wk.load(~(Const(-1, N) << cfgd.n)), reps.eq(0), active.eq(0), bacc.eq(0),
                                     merged.eq(0), fresh.eq(Const(-1, N * g.dc))]
                        m.d.comb += [lif.clear.eq(1), halt.clear.eq(1), head.clear.eq(1)]
                        m.next = "IMG"

            # The embedding starts on a token as soon as its window is in (IMG) and goes on after the image
            # packet's trailer (EMB): a token's embedding takes chunks * ceil(patch_dim / 2) >= bpt cycles, so
            # it never waits for the stream when the stream does not wait. The merge's last token ends it.
            def embed_and_merge(on_done):
                """windows -> embedding -> E rows and merge bits -> token merge -> representatives."""
                m.d.comb += [emb.i.valid.eq(wk.any & (wk.cur < img_row)), emb.i.payload.token.eq(wk.cur)]
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
                    last_chunk = eo.chunk == cfgd.emb_chunks - 1
                    m.d.sync += bacc.eq(Mux(last_chunk, 0, bacc | chunk_bits))
                    m.d.comb += [merge.i.valid.eq(last_chunk), merge.i.payload.bits.eq(bacc | chunk_bits),
                                 merge.i.payload.last.eq(eo.token == cfgd.n - 1)]
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
                m.d.comb += [emb.pix_wr.addr.eq(Cat(img_g, img_row)), emb.pix_wr.data.eq(pbeat.data),
                             emb.pix_wr.en.eq(take & (img_row < cfgd.n))]
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
                    m.d.sync += [mod_g.eq(Mux(mod_g == cfgd.bpt - 1, 0, mod_g + 1)),
                                 mod_row.eq(mod_row + (mod_g == cfgd.bpt - 1))]
                with m.If(emb.pix_wr.en):
                    m.d.sync += count("EMB_PIXELS", emb.pix_nonzero)
                with m.If(take):
                    m.d.sync += counting.eq(1)
                    with m.If(~counting):
                        m.d.sync += cycles_.eq(1)
                    m.d.sync += img_g.eq(Mux(img_g == cfgd.bpt - 1, 0, img_g + 1))
                    m.d.sync += img_row.eq(img_row + (img_g == cfgd.bpt - 1))
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

            def start_step():
                """A time step begins: X reads of the active tokens return E until their first residual add."""
                every_row = Cat(*(active[k].replicate(g.dc) for k in range(N)))
                m.d.sync += [fresh.eq(fresh | every_row), l.eq(0), wb.eq(0), bb.eq(0), tb.eq(0)]
                m.next = "BLOCK"

            with state("STEP"):   # the first step only: the later ones start with the readout's last cycle
                start_step()

            with state("BLOCK"):
                a_on, f_on = dense | mask_bit(2 * l), dense | mask_bit(2 * l + 1)
                n_act = popcount(active)
                with m.If(l == cfgd.blocks - 1):   # the tokens the block's last residual add reads out
                    m.d.sync += ro_fed.eq(Mux(a_on | f_on, active, 0))
                m.d.sync += [attn_on.eq(a_on), mlp_on.eq(f_on), count("PROCESSED_UNITS", n_act), many.eq(n_act >= cycles.EARLY_END_TOKENS), crowd.eq(n_act >= cycles.EARLY_END_TOKENS_QKV)]
                m.d.sync += count("SKIPPED_MODULE_STEPS", (~a_on).as_unsigned() + (~f_on).as_unsigned())
                with m.If(a_on):
                    goto("AIN")()
                with m.Elif(f_on):
                    goto("MIN")()
                with m.Else():
                    m.next = "ENDBLOCK"

            def end_pass(nxt, early):
                """The pass has issued its last item: ``nxt()`` now when ``early`` holds (what is still in flight
                finds its way by its tag), else once ``drain`` has counted down."""
                with m.If(early):
                    nxt()
                with m.Else():
                    m.d.sync += drain.eq(drain - 1)
                    with m.If(drain == 0):
                        nxt()

            def x_walk(nxt, early=0):
                """Walk the tokens reading their X rows, one a cycle (``xval`` holds it a cycle later), every
                chunk of D; drain; ``nxt()``. When ``early`` holds, ``nxt()`` comes as soon as the last row is
                read: the rows in flight reach the LIF layer in this pass's last cycle, and their spikes find
                their memory by their tag."""
                with m.If(wk.any):
                    m.d.comb += x_addr.eq(xrow(wk.cur, xc))
                    m.d.sync += [xr_valid.eq(1), xr_tok.eq(wk.cur), xr_c.eq(xc), xr_row.eq(xrow(wk.cur, xc))]
                    m.d.sync += xc.eq(Mux(last_c(xc), 0, xc + 1))
                    with m.If(last_c(xc)):
                        m.d.sync += wk.next()
                with m.Else():
                    end_pass(nxt, early)

            def x_pass(name, nxt, mlayer, to, early=0):
                """Walk the tokens; read their X rows; feed the LIF layer (rows ``mlayer + c``), spikes to ``to``."""
                with state(name):
                    x_walk(nxt, early)
                    m.d.comb += [lif.i.valid.eq(xr_valid), li.row.eq(mul(xr_tok, g.R) + mlayer + xr_c),
                                 li.tag.tok.eq(xr_tok), li.tag.c.eq(xr_c), li.tag.to.eq(to)]

            def event_pass(name, nxt, mats, chunks, last_lanes, w0, b0, th0, fan_in, src, mlayer, dest, early=0):
                """Walk the tokens; per token, the engine rows of ``mats`` matrices of ``chunks`` chunks of P
                outputs each (the last with ``last_lanes`` lanes), ACC_ROWS chunks per row, from the events of
                ``src`` (the weight rows of engine row r start at ``w0 + r * fan_in``); each chunk to
                ``dest``: a LIF layer (membrane rows ``mlayer + j``) or a residual add into X. When ``early``
                holds, ``nxt()`` comes as soon as the last event is issued (the rows in flight find their way by
                their tag)."""
                with state(name):
                    m.d.comb += [pass_w.eq(w0), pass_b.eq(b0), src_bits.eq(src), ev.tag.lif.eq(dest["kind"] == "lif")]
                    two = eg_c + 1 < chunks
                    m.d.comb += ev.tag.two.eq(two)
                    # events; the ACs of one spike: the lanes of the row's one or two chunks
                    lanes_of = lambda c: Mux(c == chunks - 1, last_lanes, P)  # noqa: E731
                    fan = Mux(two, P + lanes_of(eg_c + 1), lanes_of(eg_c))
                    c_end = eg_c + cycles.ACC_ROWS >= chunks          # the matrix's last engine row
                    tok_end = eg_row_end & c_end & (eg_mat == mats - 1)
                    with m.If(eg_busy):
                        with m.If(ev.present[0]):
                            m.d.sync += count(dest["counter"], Mux(ev.present[1], fan << 1, fan))
                        with m.If(eg_row_end & ~tok_end):
                            m.d.comb += eg.rewind.eq(1)   # the token's next row: its spikes again
                            m.d.sync += eg_pad.eq(1)
                        with m.If(eg_row_end):
                            m.d.sync += [eg_r.eq(eg_r + 1), eg_w.eq(eg_w + fan_in),
                                         eg_c.eq(Mux(c_end, 0, eg_c + cycles.ACC_ROWS)), eg_mat.eq(eg_mat + c_end),
                                         eg_j.eq(Mux(c_end, eg_j + chunks - eg_c, eg_j + cycles.ACC_ROWS))]
                    with m.If(~eg_busy | tok_end):
                        with m.If(wk.any):
                            m.d.sync += eg_load(wk.cur) + [wk.next()]
                        with m.Else():
                            m.d.sync += eg_busy.eq(0)
                    with m.If(~eg_busy & ~wk.any):
                        end_pass(nxt, early)
                    if dest["kind"] == "lif":   # its rows go to the LIF layer (below, by their tag)
                        m.d.sync += [lif_th0.eq(th0), lif_ml.eq(mlayer), lif_to.eq(dest["to"])]
                    else:  # residual add into the X row of the half's token and chunk (rows of a token are
                        # consecutive: the second half's is the first's + 1); a LIF layer's row still in flight
                        # from the pass before is not this pass's
                        res_valid = half_valid & ~ao_tag.lif
                        row0 = xrow(acc.o_tag.row.tok, acc.o_tag.row.c)
                        m.d.comb += x_addr.eq(Mux(acc.o.valid, row0, xr_row + 1))
                        with m.If(acc.o.valid | (ao_valid & ~ao_half)):
                            m.d.sync += xr_row.eq(x_addr)
                        m.d.comb += [x_w.addr.eq(xr_row), x_w.en.eq(res_valid)]
                        for p in range(P):
                            s_ = Signal(signed(fmt.acc_bits + 1), name=f"radd{p}")
                            m.d.comb += s_.eq(xval[p] + half[p])
                            m.d.comb += x_w.data[p].eq(saturate(s_, fmt.res_bits))
                        with m.If(res_valid):
                            m.d.sync += fresh.bit_select(xr_row, 1).eq(0)
                        # The new X rows go on to a LIF layer as they are written (the LIF layer is otherwise
                        # idle in a residual-add pass): proj's to the MLP's input LIF when the MLP runs (no MIN
                        # pass), the step's last block's last add's to the readout (the readout pass walks only
                        # the representatives it did not see). The block's last add feeds the halting checks.
                        feed_min = dest.get("min", 0)
                        with m.If(feed_min | (dest["last"] & (l == cfgd.blocks - 1))):
                            m.d.comb += [lif.i.valid.eq(res_valid),
                                         li.row.eq(mul(half_tag.tok, g.R) + Mux(feed_min, blk_m + 5 * g.dc, OUT_ROW)
                                                   + half_tag.c),
                                         li.tag.tok.eq(half_tag.tok), li.tag.c.eq(half_tag.c),
                                         li.tag.to.eq(Mux(feed_min, SPIKES_S, SPIKES_OUT)), lif_from_res.eq(1)]
                        with m.If(res_valid & (half_tag.c == halt_c) & dest["last"] & ~dense):
                            m.d.sync += [hin_valid.eq(1), hin_tok.eq(half_tag.tok),
                                         hin_x.eq(x_w.data.as_value().word_select(halt_lane, fmt.res_bits))]

            # membrane rows of block l (hw.loader.Geometry.stride), bias and threshold rows of its layers
            # (packing.weight_layout: q, k, v, proj, fc1, fc2)
            blk_m = mul(l, g.stride)
            dch, hch, dcg, hcg = cfgd.dch, cfgd.hch, cfgd.dcg, cfgd.hcg
            # ---- attention module
            # The x passes in front of an event pass end with their last read when the block has >= 4 active
            # tokens (`many`): the event pass's first LIF result is >= 6 cycles away, and it reads the spikes
            # of its last token (written 3 cycles after their row's read) after >= 2 tokens of >= 6 cycles.
            # q, k, v end with their last event when the block has >= 7 (`crowd`): the attention unit takes a
            # token's K and V a cycle after the one before, so it reaches the last token's (written 7 cycles
            # after its last event) after six, and its first Y row for the LIF layer comes after all of them.
            x_pass("AIN", goto("QKV", drain=cycles.DRAIN_EVENTS), blk_m + 0, SPIKES_S, many)
            event_pass("QKV", goto("ATTN", drain=cycles.DRAIN_ATTN,
                                   also=[wq.load(active), wo.load(active)]),
                       3, dch, cfgd.dim_last, wb, bb, tb, cfgd.dim, sin_r.data, blk_m + g.dc,
                       {"kind": "lif", "counter": "AC_QKV", "to": SPIKES_QKV}, crowd)
            with state("ATTN"):
                m.d.comb += [att.kv_i.valid.eq(wk.any), att.q_i.valid.eq(wq.any)]
                with m.If(att.kv_i.valid & att.kv_i.ready):
                    m.d.sync += [wk.next(), kv_add.eq(kv_acs)]
                with m.If(att.q_i.valid & att.q_i.ready):
                    m.d.sync += [wq.next(), y_add.eq(popcount(qm_r.data) << log2(dh))]
                m.d.comb += [lif.i.valid.eq(att.o.valid), li.row.eq(mul(wo.cur, g.R) + blk_m + 4 * g.dc + yc),
                             li.tag.tok.eq(wo.cur), li.tag.c.eq(yc), li.tag.to.eq(SPIKES_S), lif_from_y.eq(1)]
                with m.If(att.o.valid):
                    m.d.sync += yc.eq(Mux(last_c(yc), 0, yc + 1))
                    with m.If(last_c(yc)):
                        m.d.sync += wo.next()
                # with >= 4 active tokens proj ends the pass at the last Y row's last chunk: it reads the
                # last token's A spikes (written 3 cycles after its row) after two tokens of >= 2 cycles
                with m.If(~wo.any):
                    end_pass(goto("PROJ", drain=cycles.DRAIN_EVENTS), many)
            def last_block_done():
                """The step's last block is done: the forced halt at the final (t, l), then the readout (which
                walks the representatives and needs no halting decision: a late one changes nothing there)."""
                with m.If(final):
                    m.d.sync += active.eq(0)
                    for k in range(N):
                        with m.If(active[k]):
                            m.d.sync += [halt_t[k].eq(t), halt_l[k].eq(l)]
                goto("READOUT", mask=reps & ~ro_fed)()

            def block_done():
                """After a block's last pass: the step's last block goes straight on, the others through
                ENDBLOCK, the cycle their last halting decision needs to land before BLOCK reads `active`."""
                with m.If(l == cfgd.blocks - 1):
                    last_block_done()
                with m.Else():
                    m.next = "ENDBLOCK"

            def after_attention():   # proj's residual add has fed the MLP's input LIF: straight to fc1
                with m.If(mlp_on):
                    goto("FC1", drain=cycles.DRAIN_EVENTS)()
                with m.Else():
                    block_done()
            event_pass("PROJ", after_attention, 1, dch, cfgd.dim_last, wb + cfgd.w_proj, bb + mul(dcg, 3), tb,
                       cfgd.dim, sin_r.data, 0, {"kind": "x", "counter": "AC_PROJ", "last": ~mlp_on, "min": mlp_on})

            # ---- MLP module
            x_pass("MIN", goto("FC1", drain=cycles.DRAIN_EVENTS), blk_m + 5 * g.dc, SPIKES_S, many)
            # fc1 ends with its last event when the block has >= 4 active tokens: fc2's first result comes
            # >= 6 cycles later (fc1's last two halves are in the LIF layer by then), and fc2 reaches the last
            # token's hidden spikes (written 7 cycles after its last event) after three tokens of >= 2 cycles
            event_pass("FC1", goto("FC2", drain=cycles.DRAIN_EVENTS), 1, hch, cfgd.hid_last, wb + cfgd.w_fc1,
                       bb + (dcg << 2), tb + mul(dch, 3), cfgd.dim, sin_r.data, blk_m + 6 * g.dc,
                       {"kind": "lif", "counter": "AC_FC1", "to": SPIKES_Z}, many)
            event_pass("FC2", block_done, 1, dch, cfgd.dim_last, wb + cfgd.w_fc2, bb + (dcg << 2) + hcg, tb,
                       cfgd.hidden, zm_r.data, 0, {"kind": "x", "counter": "AC_FC2", "last": 1})

            # The block's last halting decision is valid in the cycle after the pass (cycles.HALT_LATENCY after
            # the last `hin`, which is the residual add's last write, DRAIN_EVENTS - 2 cycles after the pass's
            # last event) and lands in `active` at its end. At the final (t, l) every token still active halts
            # there anyway, so the forced halt need not wait for it.
            with state("ENDBLOCK"):
                with m.If(l == cfgd.blocks - 1):
                    last_block_done()
                with m.Else():
                    m.d.sync += [l.eq(l + 1), wb.eq(wb + cfgd.w_block), bb.eq(bb + cfgd.b_block),
                                 tb.eq(tb + cfgd.th_block)]
                    m.next = "BLOCK"

            def after_readout():
                with m.If(t == cfgd.steps - 1):
                    m.next = "HEAD"
                    m.d.comb += head.go.eq(1)
                with m.Else():
                    m.d.sync += t.eq(t + 1)
                    start_step()
            # the readout's spikes go to the classifier: only the last step's must be in before HEAD
            x_pass("READOUT", after_readout, OUT_ROW, SPIKES_OUT, t != cfgd.steps - 1)

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
                            m.d.sync += olen.eq(n_logit_beats + 1)
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
                        m.d.sync += [tap_loaded.eq(1), xr_row.eq(tap_row)]
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
                m.d.sync += [ob.eq(0), csum.eq(0), olen.eq(n_logit_beats + 1)]
                m.next = "RESULT"
            packet("TAPS", Kind.TAP, tap_full, tap_beat, [tap_full.eq(0)], to_result, tap_producer)

            def finish():
                m.d.sync += [busy.eq(0), done.eq(1), images_done.eq(images_done + 1)]
                m.next = "IDLE"
            packet("RESULT", Kind.RESULT, 1, obeat, [], finish)

            with m.State("ERROR"):
                m.d.comb += parser.o.ready.eq(1)  # drop everything until SOFT_RESET
                m.d.sync += [busy.eq(0), counting.eq(0)]

        # an engine row of a LIF layer -> the LIF layer, whatever pass has begun since (it wins over the pass's own
        # LIF input: the passes never give the LIF layer two rows in one cycle)
        with m.If(half_valid & ao_tag.lif):
            m.d.comb += [lif.i.valid.eq(1), li.row.eq(mul(half_tag.tok, g.R) + lif_ml + half_tag.j),
                         li.tag.eq(half_tag), li.tag.to.eq(lif_to), lif_from_acc.eq(1)]

        # LIF outputs -> spike memories / readout, by their tag
        with m.If(lif.o.valid):
            row_en = 1 << lo.tag.c
            with m.If(lo.tag.to == SPIKES_S):
                m.d.comb += sin_w.en.eq(row_en)
            with m.If(lo.tag.to == SPIKES_QKV):
                m.d.comb += [w.en.eq(Mux(lo.tag.mat == k, row_en, 0)) for k, w in enumerate((qm_w, km_w, vm_w))]
            with m.If(lo.tag.to == SPIKES_Z):
                m.d.comb += zm_w.en.eq(1 << lo.tag.j)
            with m.If(lo.tag.to == SPIKES_OUT):
                m.d.comb += head.i.valid.eq(1)
                m.d.sync += count("AC_READOUT", popcount(lo.spike & lo_dmask))
        self.state_encoding = fsm.encoding  # name -> value of seq_state (testbenches log the passes)
        return top
