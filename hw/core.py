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
``hw.loader.ModelLoader`` (a model whose weights are in DDR: its weights, biases and thresholds by
``hw.tile_loader.TileLoader``, tile by tile into two banks, during each event pass: docs/hardware.md "DDR
mode"); per image the embedding keeps the windows (``hw.embed``), the sequencer the
embedding ``E`` and the residual ``X`` (``dc = ceil(D / P)`` rows of P lanes per token: row ``tok * dc + c``
holds channels ``c*P ..``), the spike vectors of the current module (``sin``: S, A or S2; ``qm``, ``km``,
``vm``; ``zm``: the hidden spikes; one word per token, written a row of P bits at a time), and every LIF membrane
(``hw.lif_layer.LIFLayer``). ``X`` is not copied from ``E`` at each step: a ``fresh`` bit per row makes
reads of ``X`` return ``E`` until the row's first residual add of the step.

Files: this one holds the top level, the memories, the datapath between the units (the engine's rows into
the LIF layer or the residual adds, the LIF layer's input and spike routing, the halting unit's input) and
the sequencer's idle and error states; its other states are in ``hw/core_intake.py`` (the image's windows,
the embedding, the token merge), ``hw/core_passes.py`` (the pass schedule of a time step) and
``hw/core_packets.py`` (the classifier's logits, the RESULT and TAP packets); the walkers are
``hw/walker.py``. Those parts are functions called in ``elaborate`` where their states belong; they take
the signals they share with it from a namespace of its locals (``c``) and name each one they use.
"""

from contextlib import contextmanager
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike import cycles, packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS
from dynaspike.packing import Kind
from dynaspike.regmap import ErrorCode

from .accumulate import BLOCK_RAM, AccumulateEngine, connect_write
from .attention import AttentionKV
from .axi_reader import axi_read_signature
from .axil import RegisterBlock, axi_lite_signature
from .embed import Embedding
from .events import EventGenerator
from .halt import HaltUnit
from .core_intake import intake_signals, intake_states, take_image
from .core_packets import packet_signals, packet_states
from .core_passes import SPIKES_OUT, SPIKES_QKV, SPIKES_S, SPIKES_Z, pass_states
from .head import Head
from .lif_layer import LIFLayer
from .arith import mul
from .loader import PARAM_FIELDS, Geometry, ModelLoader, log2
from .merge import TokenMerge, popcount
from .read_arbiter import SharedReader
from .stream_in import StreamParser, axis_signature
from .tile_loader import BEAT_BITS, TileLoader
from .tile_pass import TilePass
from .walker import Walker

PERF = {name: k for k, (name, _) in enumerate(regmap.PERF_COUNTERS)}



class Core(wiring.Component):
    """The core, sized for models up to ``cfg`` (``packing.capacity_for(cfg, lanes)``) on ``lanes`` P.

    Ports: ``s_axil`` (AXI4-Lite slave), ``s_axis`` (AXI4-Stream in), ``m_axis`` (AXI4-Stream out), ``m_axi``
    (AXI4 read master, 64 bits: the weight tiles of a model whose weights are in DDR, docs/hardware.md "DDR
    mode").
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
            "m_axi": Out(axi_read_signature(32, BEAT_BITS)),
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
        # lif: a LIF layer's row, not a residual add; bank: the DDR tile bank it was summed from (its thresholds')
        etag = data.StructLayout({"row": tag, "two": 1, "lif": 1, "bank": 1})
        acc = AccumulateEngine(g.A, self.rows["weights"], self.rows["biases"], tag_shape=etag,
                               w_granules=g.A // 8, b_granules=g.A // 2)
        lif = LIFLayer(P, N * g.R, tag_shape=tag, transparent=False, membranes_out=False)  # no row twice in a row
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
        check_model = Signal()   # a model packet's trailer was accepted last cycle (its checks are now)
        top.d.sync += check_model.eq(parser.ok & (parser.kind == Kind.MODEL) & ~soft)
        top.d.comb += ld.restart.eq(check_model | soft)
        wiring.connect(top, wiring.flipped(self.s_axil), regs.axil)
        wiring.connect(top, wiring.flipped(self.s_axis), parser.s_axis)
        for dst, src in ((emb.w_wr, ld.ew_wr), (emb.b_wr, ld.eb_wr),
                         (head.w_wr, ld.hw_wr), (head.b_wr, ld.hb_wr), (halt.lut_wr, ld.lut_wr)):
            wiring.connect(top, src, dst)
        # DDR mode (a model packet without weights, biases and thresholds: ld.weights_in_ddr): each event pass
        # reads its layer's tiles (TilePass) through the tile loader into two banks at the memories' first
        # rows, through the AXI read port m_axi, which is shared (hw/read_arbiter.py): client 0 is the tile
        # loader, client 1 the membrane rows (not built yet: it never offers a command). The tile loader and the
        # port are outside the soft-reset domain: a soft reset lets them finish the reads they have addressed (an
        # AXI master must take every beat it asked for), and the sequencer takes no model and no image until
        # the tile loader is idle.
        tl = top.submodules.tiles = TileLoader(P, g.max_fan_in, self.rows["weights"], self.rows["biases"],
                                               self.rows["thresholds"], own_reader=False)
        rdp = top.submodules.ddr_reader = SharedReader(2, beat_count_bits=tl.beat_count_bits)
        wiring.connect(top, tl.rd_cmd, rdp.cmds[0])
        wiring.connect(top, rdp.outs[0], tl.rd)
        wiring.connect(top, wiring.flipped(self.m_axi), rdp.m_axi)
        tp = TilePass(P, g.max_fan_in, g.max_tiles, self.rows["weights"], self.rows["biases"], self.rows["thresholds"])
        top.submodules.tile_pass = ResetInserter({"sync": soft})(tp)
        wiring.connect(top, tp.cmd, tl.cmd)
        top.d.comb += [tp.loaded.eq(tl.done), rdp.clear.eq(soft)]
        # The engine's weight and bias memories and the threshold memory are written by the model loader or, while
        # it reads tiles, by the tile loader. Both write a beat at a time into the granule of its position, with
        # the beat's lanes in every granule of the row, so one granule's multiplexer serves the row (a
        # multiplexer of whole rows costs about 1 k LUTs).
        th_wr = SimpleNamespace(en=Signal.like(ld.th_wr.en), addr=Signal.like(ld.th_wr.addr),
                                data=Signal.like(ld.th_wr.data))
        for dst, src in ((acc.w_wr, "w_wr"), (acc.b_wr, "b_wr"), (th_wr, "th_wr")):
            a, b = getattr(tl, src), getattr(ld, src)
            granule = len(a.data.as_value()) // len(a.en)
            beat = Mux(tl.busy, a.data.as_value()[:granule], b.data.as_value()[:granule])
            top.d.comb += [dst.en.eq(Mux(tl.busy, a.en, b.en)), dst.addr.eq(Mux(tl.busy, a.addr, b.addr)),
                           dst.data.as_value().eq(beat.replicate(len(a.en)))]

        cfgd = ld.derived
        prm = {name: ld.params[k] for k, name in enumerate(PARAM_FIELDS)}
        dense = Signal()   # RUN_CONFIG.FORCE_DENSE and DEBUG_TAPS as the image's front found them
        taps_on = Signal()

        # ------------------------------------------------------------------ status, errors, model state
        loaded = Signal()      # not reset by SOFT_RESET: the model stays
        in_ddr = Signal()      # the loaded model's weights are in DDR (its packet's, latched when it is loaded)
        loading = Signal()
        error = Signal()
        error_code = Signal(8)
        error_beat = Signal(32)
        images_done = Signal(32)
        cycles_ = Signal(64)
        perf = Array(Signal(32, name=f"perf_{n.lower()}") for n, _ in regmap.PERF_COUNTERS)
        busy = Signal()        # the sequencer has an image (from its front's hand-over to its RESULT packet)
        f_busy = Signal()      # the front has one
        done = Signal()
        m.d.comb += [regs.status.busy.eq(busy | f_busy | loading), regs.status.done.eq(done), regs.status.error.eq(error),
                     regs.status.model_loaded.eq(loaded), regs.status.loading.eq(loading),
                     regs.status.weights_in_ddr.eq(in_ddr & loaded),
                     regs.error_code.eq(error_code), regs.error_beat.eq(error_beat),
                     regs.images_done.eq(images_done), regs.cycles.eq(cycles_)]
        m.d.comb += [regs.perf[k].eq(perf[k]) for k in range(len(regmap.PERF_COUNTERS))]
        m.d.comb += [regs.model[k].eq(ld.cfg[k]) for k in range(len(ld.cfg))]

        def fail(code, beat=0):
            return [error.eq(1), error_code.eq(code), error_beat.eq(beat)]

        with m.If(parser.error & ~error):
            m.d.sync += fail(parser.error_code, parser.error_beat)
        with m.Elif(rdp.error & ~error):   # a tile read answered SLVERR or DECERR: the tile is not the model's
            m.d.sync += fail(ErrorCode.AXI_ERROR)

        # ------------------------------------------------------------------ per-image memories
        # E and X in block RAM (P x 16 bits wide, N dc deep: about 700 LUTs of distributed RAM otherwise). E has
        # two banks: the front (hw/core_intake.py) embeds the next image into one while the blocks read the other.
        e_bits = len(Signal(range(N * g.dc)))
        emem = Memory(shape=data.ArrayLayout(signed(fmt.res_bits), P), depth=2 << e_bits, init=[], attrs=BLOCK_RAM)
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
        connect_write(top, thm, th_wr)
        sin_r, qm_r, km_r, vm_r, zm_r = (mem.read_port(domain="comb") for mem in (sin, qm, km, vm, zm))
        e_r, x_r, th_r = emem.read_port(), xmem.read_port(), thm.read_port()
        e_bank = Signal()    # the E bank the sequencer reads
        e_addr = lambda row, bank: row | (bank << e_bits)  # noqa: E731 -- row < 2 ** e_bits: no adder

        active, reps, fresh = Signal(N), Signal(N), Signal(N * g.dc)
        # the image's representatives and merge sizes, taken from the front (hw/core_intake.py) with the image
        rep_of = Array(Signal(range(N), name=f"rep{k}") for k in range(N))
        sizes = Array(Signal(range(N + 1), name=f"size{k}") for k in range(N))
        halt_t = Array(Signal(signed(8), name=f"halt_t{k}") for k in range(N))
        halt_l = Array(Signal(signed(8), name=f"halt_l{k}") for k in range(N))
        logits = Array(Signal(signed(fmt.logit_bits), name=f"logit{c}") for c in range(2 * ((g.C + 1) // 2)))
        t = Signal(range(g.Tmax + 1))
        l = Signal(range(g.Lmax + 1))
        wb = Signal(range(self.rows["weights"] + 1))   # weight, bias and threshold rows of block l
        bb = Signal(range(self.rows["biases"] + 1))
        tb = Signal(range(self.rows["thresholds"] + 1))
        db = Signal(range(g.Lmax * g.a_block + 1))      # DDR mode: block l's weight buffer, in units of A bytes
        pass_mask = Signal(N)                            # the tokens of the current pass (its walker's first load)
        attn_on, mlp_on = Signal(), Signal()
        many = Signal()   # the block has >= cycles.EARLY_END_TOKENS active tokens
        crowd = Signal()  # the block has >= cycles.EARLY_END_TOKENS_QKV active tokens
        ro_fed = Signal(N)  # the step's readout of these tokens rides on its last block's last residual add
        final = (t == cfgd.steps_last) & (l == cfgd.blocks_last)
        mask_bit = lambda mod: ld.mask.bit_select(mul(mod, g.Tmax) + t, 1)  # noqa: E731
        dmask = Signal(g.DP)  # channels < D
        m.d.comb += dmask.eq(~(Const(-1, g.DP) << cfgd.dim))
        xrow = lambda tok, c: mul(tok, g.dc) + c  # noqa: E731 -- the X / E row of chunk c of a token
        last_c = lambda c: c == cfgd.dch_last  # noqa: E731 -- c is the token's last chunk of D

        # ------------------------------------------------------------------ the pass machinery
        wk = Walker(m, N, "wk")          # tokens of the current pass
        wq = Walker(m, N, "wq")          # attention: Q tokens
        wo = Walker(m, N, "wo")          # attention: Y rows
        xc = Signal(range(g.dc))         # x passes: the chunk of D of the walker's token being read
        drain = Signal(range(8))

        OUT_ROW = g.Lmax * g.stride

        # X / E reads (sync): one address for both; a row of the walker's token, or the accumulator row's
        x_addr = Signal(range(N * g.dc))
        m.d.comb += [x_r.addr.eq(x_addr), e_r.addr.eq(e_addr(x_addr, e_bank))]
        xr_valid = Signal()
        xr_tok = Signal(range(N))        # the row read last cycle: its token, chunk and X row
        xr_c = Signal(range(g.dc))
        xr_row = Signal(range(N * g.dc))
        xval = Signal(data.ArrayLayout(signed(fmt.res_bits), P))
        # whether xr_row reads E: registered with xr_row (`read_row`), so that xval's lane multiplexers start
        # from a flip-flop, not from a bit select of `fresh`
        xr_fresh = Signal()

        # The X and E memories read only where a pass reads a row (a disabled port holds its data), so
        # their read power follows the work, as dynaspike/energy.py counts it.
        x_rd = Signal()
        m.d.comb += [x_r.en.eq(x_rd), e_r.en.eq(x_rd)]

        def read_row(row):
            """Sync updates: the row read last cycle is ``row`` (the caller puts ``row`` on ``x_addr``); enables
            the read (comb, in the caller's context)."""
            m.d.comb += x_rd.eq(1)
            return [xr_row.eq(row), xr_fresh.eq(fresh.bit_select(row, 1))]
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
        # the engine takes the event (it takes none in the cycle the tile loader writes a weight row)
        ev_take = eg_busy & acc.i.ready
        m.d.comb += [ev.index[0].eq(eg.idx[0]), ev.index[1].eq(eg.idx[1]), ev.present.eq(Mux(pad, 0, eg.present)),
                     eg.step.eq(ev_take & ~pad), ev.w_base.eq(eg_w), ev.last.eq(eg_row_end),
                     ev.tag.row.tok.eq(eg_tok), ev.tag.row.j.eq(eg_j), ev.tag.row.mat.eq(eg_mat),
                     ev.tag.row.c.eq(eg_c), acc.i.valid.eq(eg_busy), acc.o.ready.eq(1)]
        with m.If(ev_take):
            m.d.sync += eg_pad.eq(0)
        pass_w = Signal.like(wb)         # weight row of the pass's first row
        pass_b = Signal.like(bb)
        # the last LIF-layer event pass's threshold rows, membrane rows and spike memory: registers, so that its
        # last rows still find them while the next pass (fc2, or the attention pass) has begun
        lif_th0 = Signal.like(tb)
        lif_ml = Signal(range(g.Lmax * g.stride + 1))
        lif_to = Signal(range(4))
        m.d.comb += [ev.b_row.eq(Mux(in_ddr, tp.b_row, pass_b + eg_r)), ev.tag.bank.eq(tp.index[0])]
        src_bits = Signal(g.W)
        m.d.comb += eg.bits.eq(src_bits)
        m.d.comb += [sin_r.addr.eq(wk.cur), zm_r.addr.eq(wk.cur)]

        def eg_load(tok):
            """Start token ``tok``'s engine rows: loads the generator (comb, in the caller's context) and
            returns the sequencer's own updates."""
            m.d.comb += eg.load.eq(1)
            return [eg_busy.eq(1), eg_tok.eq(tok), eg_r.eq(0), eg_j.eq(0), eg_mat.eq(0), eg_c.eq(0),
                    eg_w.eq(pass_w), eg_pad.eq(1)]

        def eg_load_tile(tok):
            """DDR mode: start token ``tok``'s row of the current tile (the engine row stays the tile's)."""
            m.d.comb += eg.load.eq(1)
            return [eg_busy.eq(1), eg_tok.eq(tok), eg_w.eq(tp.w_base), eg_pad.eq(1)]

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
        # a threshold row is read for each half that goes to the LIF layer, and only then (in DDR mode, from the
        # bank of the row's tile: rows 2 bank and 2 bank + 1)
        th_row = Mux(acc.o.valid, Mux(in_ddr, acc.o_tag.bank << 1, lif_th0 + acc.o_tag.row.j),
                     Mux(in_ddr, (ao_tag.bank << 1) | 1, lif_th0 + ao_tag.row.j + 1))
        m.d.comb += [th_r.addr.eq(th_row),
                     th_r.en.eq(Mux(acc.o.valid, acc.o_tag.lif, ao_valid & ~ao_half & ao_tag.lif & ao_tag.two))]
        # for tests: the block RAM reads of this cycle, by memory (the units' own once they are elaborated)
        self.reads = SimpleNamespace(acc=acc, lif=lif, thresholds=th_r.en, x=x_rd)

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
        # the halting lane of the residual add's output (core_passes): one lane multiplexer of res_bits behind
        # the adder and the clamp (selecting both operands first took two wider multiplexers: 0.6 k LUT)
        hin_x_lane = Signal(signed(fmt.res_bits))
        m.d.comb += hin_x_lane.eq(x_w.data.as_value().word_select(halt_lane, fmt.res_bits).as_signed())
        # readout
        lo_dmask = dmask.word_select(lo.tag.c, P)  # the channels among the LIF row's lanes
        m.d.comb += [head.i.payload.chunk.eq(lo.tag.c), head.i.payload.spike.eq(lo.spike & lo_dmask),
                     head.i.payload.w.eq(sizes[lo.tag.tok])]
        # merge / embedding
        m.d.comb += [merge.o.ready.eq(1),
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
        # The event passes' counters likewise (a row's fan-in, from the pass's sizes, in front of a 32-bit adder).
        ac_add = {name: Signal(16, name=f"{name.lower()}_add") for name in ("AC_QKV", "AC_PROJ", "AC_FC1", "AC_FC2")}
        m.d.sync += [a.eq(0) for a in ac_add.values()] + [count(name, a) for name, a in ac_add.items()]
        # DDR mode's read traffic: the tile loader's beats (its reads all fall within the sequencer's passes,
        # after the take that resets the counters; a soft reset's drained reads land before the next take)
        with m.If(self.m_axi.rvalid & self.m_axi.rready):
            m.d.sync += count("DDR_READ_BEATS", 1)

        # ------------------------------------------------------------------ output packets, image intake
        # (hw/core_packets.py, hw/core_intake.py: they take the signals they share with this sequencer from `c`)
        counting = Signal()   # CYCLES counts (from the front's hand-over to the last logit)
        with m.If(counting):
            m.d.sync += cycles_.eq(cycles_ + 1)
        take = Signal()       # the sequencer takes the front's image this cycle
        c = SimpleNamespace(PERF=PERF)
        vars(c).update(locals())
        packet_signals(c)
        intake_signals(c)
        pbeat, is_model, is_image = c.pbeat, c.is_model, c.is_image

        # ------------------------------------------------------------------ the sequencer
        ctrl = regs.ctrl
        # model state lives outside the soft-reset domain: the sequencer only requests changes
        set_loaded, clr_loaded, set_loading, clr_loading = Signal(), Signal(), Signal(), Signal()
        with top.If(set_loading):
            top.d.sync += loading.eq(1)
        with top.If(clr_loading | soft):
            top.d.sync += loading.eq(0)
        with top.If(set_loaded):
            top.d.sync += [loaded.eq(1), in_ddr.eq(ld.weights_in_ddr)]
        with top.If(clr_loaded | (ctrl.unload & ~busy & ~f_busy)):
            top.d.sync += loaded.eq(0)

        # the front: an image's intake, embedding and merge, beside the sequencer (hw/core_intake.py)
        vars(c).update(locals())
        intake_states(c)
        m.d.comb += f_busy.eq(~c.front_idle)
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
                    mask = load.get("mask", active)
                    m.d.sync += [wk.load(mask), pass_mask.eq(mask), drain.eq(load.get("drain", cycles.DRAIN_X)),
                                 xc.eq(0), yc.eq(0)]
                    for s_ in load.get("also", []):
                        m.d.sync += s_
                return f

            with m.State("IDLE"):
                with m.If(c.front_idle & ~tl.busy):   # model packets, only between images
                    m.d.comb += ld.i.valid.eq(parser.o.valid & is_model & ~error)
                    m.d.comb += parser.o.ready.eq(Mux(error, 1, is_model & ld.i.ready))
                    with m.If(parser.o.valid & is_model & (pbeat.section == 1) & pbeat.first & ~error):
                        m.d.comb += [clr_loaded.eq(1), set_loading.eq(1)]
                # the model's checks, a cycle after its trailer (`check_model`): the loader's verdicts are registers
                with m.If(check_model & ~error):
                    m.d.comb += clr_loading.eq(1)
                    with m.If(~ld.fits):
                        m.d.sync += fail(ErrorCode.EXCEEDS_CAPACITY)
                    with m.Elif(~ld.lengths_ok):
                        m.d.sync += fail(ErrorCode.BAD_LENGTH)
                    with m.Else():
                        m.d.comb += set_loaded.eq(1)
                with m.If(error):
                    m.next = "ERROR"
                with m.Elif(c.front_ready & ~tl.busy):   # the front has embedded and merged an image: take it
                    m.d.comb += take.eq(1)
                    m.d.sync += take_image(c)
                    m.next = "STEP"

            # the states of an inference, each part in its own file (they take what they share from `c`)
            vars(c).update(locals())
            pass_states(c)     # STEP, BLOCK, the passes, ENDBLOCK, READOUT
            packet_states(c)   # HEAD, TAPS, RESULT

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
