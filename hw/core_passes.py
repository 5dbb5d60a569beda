"""The core's pass schedule: a time step's blocks, each an attention and an MLP module, as passes over the
active tokens, then the step's readout (docs/hardware.md, "Sequencer"; the cycle model follows it pass by
pass in ``train/cycle_model.py``).

Every pass walks the tokens of a mask in index order (``hw.walker.Walker``) through one pipeline:

- an *x pass* reads each token's X rows into the LIF layer (the module's input LIF, the readout);
- an *event pass* hands each token's spike vector to the accumulate engine, two present spikes a cycle
  (``hw.events``), once per engine row of the layer, and sends the rows on to a LIF layer (q, k, v, fc1) or
  to a residual add into X (proj, fc2), which also feeds the LIF layer behind it and the halting unit;
- the attention pass streams K, V then Q into the attention unit and its Y rows into the LIF layer.

A pass that may end before its pipeline drains does so (``end_pass``): what is still in flight finds its
memory by its tag.

A model whose weights are in DDR (``in_ddr``) runs its event passes tile by tile (docs/hardware.md, "DDR
mode"): ``hw.tile_pass.TilePass`` loads the layer's tiles into two banks, and every token of the pass walks
over each tile (the walker reloads its mask per tile), its row of the tile tagged as on chip, so the LIF
layer, the residual adds and the spike memories see the same rows in another order. Such a pass drains
before the next: its tokens' last rows come with its last tile. The pass in front of q/k/v, proj and fc1 (AIN,
ATTN, MIN: they read no weights) starts that event pass's tiles (``load_tiles``), so its first tiles load
while it runs.

``pass_states`` is the part of ``hw.core.Core.elaborate`` that adds these sequencer states (STEP, BLOCK, the
passes, ENDBLOCK, READOUT); ``c`` is the core's namespace of the signals it drives and reads.
"""

from amaranth.hdl import Cat, Mux, Signal, signed

from dynaspike import cycles

from .arith import mul, saturate
from .loader import log2
from .merge import popcount

# where a LIF update's spikes go (its tag's `to`): the spike vector S (A, S2), the q/k/v memories (by
# `mat`), the hidden spikes Z (by `j`), the readout counts
SPIKES_S, SPIKES_QKV, SPIKES_Z, SPIKES_OUT = range(4)


def pass_states(c):
    """The sequencer states from STEP to READOUT; READOUT's last goes to HEAD (hw/core_packets.py)."""
    # the sequencer's helpers and sizes
    m, state, goto, count, g, fmt, P, N, cfgd, dense = (
        c.m, c.state, c.goto, c.count, c.g, c.fmt, c.P, c.N, c.cfgd, c.dense)
    # the block and its tokens
    (t, l, wb, bb, tb, final, mask_bit, attn_on, mlp_on, many, crowd, active, reps, fresh, ro_fed,
     halt_t, halt_l) = (
        c.t, c.l, c.wb, c.bb, c.tb, c.final, c.mask_bit, c.attn_on, c.mlp_on, c.many, c.crowd,
        c.active, c.reps, c.fresh, c.ro_fed, c.halt_t, c.halt_l)
    # walkers and the X / E reads
    wk, wq, wo, xc, yc, drain, xrow, last_c, x_addr, x_w, xval, xr_valid, xr_tok, xr_c, xr_row = (
        c.wk, c.wq, c.wo, c.xc, c.yc, c.drain, c.xrow, c.last_c, c.x_addr, c.x_w, c.xval,
        c.xr_valid, c.xr_tok, c.xr_c, c.xr_row)
    read_row, xr_fresh, ac_add = c.read_row, c.xr_fresh, c.ac_add
    # DDR mode: the tiles, the event the engine takes, the pass's tokens, block l's weight buffer
    in_ddr, tp, ev_take, eg_load_tile, pass_mask, db, weights_addr, A = (
        c.in_ddr, c.tp, c.ev_take, c.eg_load_tile, c.pass_mask, c.db, c.regs.weights_addr, c.g.A)
    # the event generator and the accumulate engine's rows
    (eg, eg_busy, eg_load, eg_pad, eg_r, eg_j, eg_mat, eg_c, eg_w, eg_row_end, ev, pass_w, pass_b,
     src_bits, acc, ao_valid, ao_half, ao_tag, half, half_valid, half_tag) = (
        c.eg, c.eg_busy, c.eg_load, c.eg_pad, c.eg_r, c.eg_j, c.eg_mat, c.eg_c, c.eg_w,
        c.eg_row_end, c.ev, c.pass_w, c.pass_b, c.src_bits, c.acc, c.ao_valid, c.ao_half, c.ao_tag,
        c.half, c.half_valid, c.half_tag)
    # the LIF layer's input, attention, spike memories, halting input, classifier
    (lif, li, lif_from_res, lif_from_y, lif_th0, lif_ml, lif_to, OUT_ROW, att, kv_acs, kv_add, y_add,
     dh, qm_r, sin_r, zm_r, hin_valid, hin_tok, hin_x, hin_x_lane, halt_c, head) = (
        c.lif, c.li, c.lif_from_res, c.lif_from_y, c.lif_th0, c.lif_ml, c.lif_to, c.OUT_ROW, c.att,
        c.kv_acs, c.kv_add, c.y_add, c.dh, c.qm_r, c.sin_r, c.zm_r, c.hin_valid, c.hin_tok, c.hin_x,
        c.hin_x_lane, c.halt_c, c.head)

    def start_step():
        """A time step begins: X reads of the active tokens return E until their first residual add."""
        every_row = Cat(*(active[k].replicate(g.dc) for k in range(N)))
        m.d.sync += [fresh.eq(fresh | every_row), l.eq(0), wb.eq(0), bb.eq(0), tb.eq(0), db.eq(0)]
        m.next = "BLOCK"

    with state("STEP"):   # the first step only: the later ones start with the readout's last cycle
        start_step()

    with state("BLOCK"):
        a_on, f_on = dense | mask_bit(2 * l), dense | mask_bit(2 * l + 1)
        n_act = popcount(active)
        with m.If(l == cfgd.blocks_last):   # the tokens the block's last residual add reads out
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
            m.d.sync += [xr_valid.eq(1), xr_tok.eq(wk.cur), xr_c.eq(xc)] + read_row(xrow(wk.cur, xc))
            m.d.sync += xc.eq(Mux(last_c(xc), 0, xc + 1))
            with m.If(last_c(xc)):
                m.d.sync += wk.next()
        with m.Else():
            end_pass(nxt, early)

    def load_tiles(event_pass_name):
        """DDR mode: start the tiles of an event pass (``ddr_tiles``) when the tile pass is idle and the walker
        has tokens: in the event pass itself, or in the pass in front of it, which walks the same tokens and
        reads no weights."""
        tiles, ddr_at, fan_in, thresholds = ddr_tiles[event_pass_name]
        m.d.comb += [tp.start.valid.eq(in_ddr & wk.any & ~eg_busy),
                     tp.start.payload.addr.eq(weights_addr + ((db + ddr_at) << log2(A))),
                     tp.start.payload.tiles.eq(tiles), tp.start.payload.fan_in.eq(fan_in),
                     tp.start.payload.thresholds.eq(thresholds)]

    def x_pass(name, nxt, mlayer, to, early=0, tiles_next=None):
        """Walk the tokens; read their X rows; feed the LIF layer (rows ``mlayer + c``), spikes to ``to``;
        ``tiles_next``: the event pass that follows, whose tiles it starts (DDR mode)."""
        with state(name):
            if tiles_next is not None:
                load_tiles(tiles_next)
            x_walk(nxt, early)
            m.d.comb += [lif.i.valid.eq(xr_valid), li.row.eq(mul(xr_tok, g.R) + mlayer + xr_c),
                         li.tag.tok.eq(xr_tok), li.tag.c.eq(xr_c), li.tag.to.eq(to)]

    def event_pass(name, nxt, mats, chunks, last_lanes, w0, b0, th0, fan_in, src, mlayer, dest, early=0):
        """Walk the tokens; per token, the engine rows of ``mats`` matrices of ``chunks`` chunks of P
        outputs each (the last with ``last_lanes`` lanes), ACC_ROWS chunks per row, from the events of
        ``src`` (the weight rows of engine row r start at ``w0 + r * fan_in``); each chunk to
        ``dest``: a LIF layer (membrane rows ``mlayer + j``) or a residual add into X. When ``early``
        holds, ``nxt()`` comes as soon as the last event is issued (the rows in flight find their way by
        their tag). In DDR mode the pass's tiles (``ddr_tiles[name]``) come from the weight buffer, tile-outer and
        token-inner, and the pass drains."""
        with state(name):
            m.d.comb += [pass_w.eq(w0), pass_b.eq(b0), src_bits.eq(src), ev.tag.lif.eq(dest["kind"] == "lif")]
            two = eg_c + 1 < chunks
            m.d.comb += ev.tag.two.eq(two)
            # events; the ACs of one spike: the lanes of the row's one or two chunks
            lanes_of = lambda c: Mux(c == chunks - 1, last_lanes, P)  # noqa: E731
            fan = Mux(two, P + lanes_of(eg_c + 1), lanes_of(eg_c))
            c_end = eg_c + cycles.ACC_ROWS >= chunks          # the matrix's last engine row
            tok_end = eg_row_end & c_end & (eg_mat == mats - 1)
            next_row = [eg_r.eq(eg_r + 1), eg_c.eq(Mux(c_end, 0, eg_c + cycles.ACC_ROWS)), eg_mat.eq(eg_mat + c_end),
                        eg_j.eq(Mux(c_end, eg_j + chunks - eg_c, eg_j + cycles.ACC_ROWS))]
            with m.If(ev_take & ev.present[0]):
                m.d.sync += ac_add[dest["counter"]].eq(Mux(ev.present[1], fan << 1, fan))
            with m.If(~in_ddr):   # on chip: token-outer, every engine row of a token in turn
                with m.If(ev_take & eg_row_end & ~tok_end):
                    m.d.comb += eg.rewind.eq(1)   # the token's next row: its spikes again
                    m.d.sync += eg_pad.eq(1)
                with m.If(ev_take & eg_row_end):
                    m.d.sync += next_row + [eg_w.eq(eg_w + fan_in)]
                with m.If(~eg_busy | (ev_take & tok_end)):
                    with m.If(wk.any):
                        m.d.sync += eg_load(wk.cur) + [wk.next()]
                    with m.Else():
                        m.d.sync += eg_busy.eq(0)
            with m.Else():        # DDR: tile-outer, every token's row of a tile in turn
                load_tiles(name)   # unless the pass before did
                with m.If(ev_take & eg_row_end):
                    with m.If(wk.any):
                        m.d.sync += eg_load_tile(wk.cur) + [wk.next()]
                    with m.Else():    # the tile's last token: the next tile walks the pass's tokens again
                        m.d.comb += tp.next.eq(1)
                        m.d.sync += eg_busy.eq(0)
                        with m.If(tp.last):
                            m.d.sync += [eg_r.eq(0), eg_c.eq(0), eg_mat.eq(0), eg_j.eq(0)]
                        with m.Else():
                            m.d.sync += next_row + [wk.load(pass_mask)]
                with m.If(~eg_busy & tp.ready & wk.any):
                    m.d.sync += eg_load_tile(wk.cur) + [wk.next()]
            with m.If(~eg_busy & ~wk.any):
                end_pass(nxt, early & ~in_ddr)
            if dest["kind"] == "lif":   # its rows go to the LIF layer (below, by their tag)
                m.d.sync += [lif_th0.eq(th0), lif_ml.eq(mlayer), lif_to.eq(dest["to"])]
            else:  # residual add into the X row of the half's token and chunk (rows of a token are
                # consecutive: the second half's is the first's + 1); a LIF layer's row still in flight
                # from the pass before is not this pass's
                res_valid = half_valid & ~ao_tag.lif
                row0 = xrow(acc.o_tag.row.tok, acc.o_tag.row.c)
                m.d.comb += x_addr.eq(Mux(acc.o.valid, row0, xr_row + 1))
                with m.If(res_valid):   # the row is written: its reads return X from now on
                    m.d.sync += [fresh.bit_select(xr_row, 1).eq(0), xr_fresh.eq(0)]
                # the X row of each half that will be added (not of a LIF layer's row still in flight, nor
                # of a second half the row does not have); after the clear above: a new row's bit wins
                with m.If((acc.o.valid & ~acc.o_tag.lif) | (ao_valid & ~ao_half & ~ao_tag.lif & ao_tag.two)):
                    m.d.sync += read_row(x_addr)
                m.d.comb += [x_w.addr.eq(xr_row), x_w.en.eq(res_valid)]
                for p in range(P):
                    s_ = Signal(signed(fmt.acc_bits + 1), name=f"radd{p}")
                    m.d.comb += s_.eq(xval[p] + half[p])
                    m.d.comb += x_w.data[p].eq(saturate(s_, fmt.res_bits))
                # The new X rows go on to a LIF layer as they are written (the LIF layer is otherwise
                # idle in a residual-add pass): proj's to the MLP's input LIF when the MLP runs (no MIN
                # pass), the step's last block's last add's to the readout (the readout pass walks only
                # the representatives it did not see). The block's last add feeds the halting checks.
                feed_min = dest.get("min", 0)
                with m.If(feed_min | (dest["last"] & (l == cfgd.blocks_last))):
                    m.d.comb += [lif.i.valid.eq(res_valid),
                                 li.row.eq(mul(half_tag.tok, g.R) + Mux(feed_min, blk_m + 5 * g.dc, OUT_ROW)
                                           + half_tag.c),
                                 li.tag.tok.eq(half_tag.tok), li.tag.c.eq(half_tag.c),
                                 li.tag.to.eq(Mux(feed_min, SPIKES_S, SPIKES_OUT)), lif_from_res.eq(1)]
                with m.If(res_valid & (half_tag.c == halt_c) & dest["last"] & ~dense):
                    m.d.sync += [hin_valid.eq(1), hin_tok.eq(half_tag.tok),
                                 hin_x.eq(hin_x_lane)]

    # membrane rows of block l (hw.loader.Geometry.stride), bias and threshold rows of its layers
    # (packing.weight_layout: q, k, v, proj, fc1, fc2)
    blk_m = mul(l, g.stride)
    dch, hch, dcg, hcg = cfgd.dch, cfgd.hch, cfgd.dcg, cfgd.hcg
    # DDR mode: each event pass's tiles: engine rows, where the layer starts in block l's weight buffer (units
    # of A bytes), fan-in, threshold rows or not (the pass's LIF destination)
    ddr_tiles = {"QKV": (mul(dcg, 3), 0, cfgd.dim, 1), "PROJ": (dcg, cfgd.a_proj, cfgd.dim, 0),
                 "FC1": (hcg, cfgd.a_fc1, cfgd.dim, 1), "FC2": (dcg, cfgd.a_fc2, cfgd.hidden, 0)}
    # ---- attention module
    # The x passes in front of an event pass end with their last read when the block has >= 4 active
    # tokens (`many`): the event pass's first LIF result is >= 6 cycles away, and it reads the spikes
    # of its last token (written 3 cycles after their row's read) after >= 2 tokens of >= 6 cycles.
    # q, k, v end with their last event when the block has >= 7 (`crowd`): the attention unit takes a
    # token's K and V a cycle after the one before, so it reaches the last token's (written 7 cycles
    # after its last event) after six, and its first Y row for the LIF layer comes after all of them.
    x_pass("AIN", goto("QKV", drain=cycles.DRAIN_EVENTS), blk_m + 0, SPIKES_S, many,
           tiles_next="QKV")
    event_pass("QKV", goto("ATTN", drain=cycles.DRAIN_ATTN,
                           also=[wq.load(active), wo.load(active)]),
               3, dch, cfgd.dim_last, wb, bb, tb, cfgd.dim, sin_r.data, blk_m + g.dc,
               {"kind": "lif", "counter": "AC_QKV", "to": SPIKES_QKV}, crowd)
    with state("ATTN"):
        load_tiles("PROJ")
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
        with m.If(l == cfgd.blocks_last):
            last_block_done()
        with m.Else():
            m.next = "ENDBLOCK"

    # On chip, proj's residual add feeds the MLP's input LIF (no MIN pass): a token's S2 spikes replace its A
    # spikes in `sin` after its last proj row. In DDR mode a token's rows come one tile at a time and later
    # tiles read its A spikes again, so the MLP takes its own MIN pass.
    feed_min = mlp_on & ~in_ddr

    def after_attention():
        with m.If(feed_min):   # straight to fc1
            goto("FC1", drain=cycles.DRAIN_EVENTS)()
        with m.Elif(mlp_on):
            goto("MIN")()
        with m.Else():
            block_done()
    event_pass("PROJ", after_attention, 1, dch, cfgd.dim_last, wb + cfgd.w_proj, bb + mul(dcg, 3), tb,
               cfgd.dim, sin_r.data, 0, {"kind": "x", "counter": "AC_PROJ", "last": ~mlp_on, "min": feed_min})

    # ---- MLP module
    x_pass("MIN", goto("FC1", drain=cycles.DRAIN_EVENTS), blk_m + 5 * g.dc, SPIKES_S, many,
           tiles_next="FC1")
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
        with m.If(l == cfgd.blocks_last):
            last_block_done()
        with m.Else():
            m.d.sync += [l.eq(l + 1), wb.eq(wb + cfgd.w_block), bb.eq(bb + cfgd.b_block),
                         tb.eq(tb + cfgd.th_block), db.eq(db + cfgd.a_block)]
            m.next = "BLOCK"

    def after_readout():
        with m.If(t == cfgd.steps_last):
            m.next = "HEAD"
            m.d.comb += head.go.eq(1)
        with m.Else():
            m.d.sync += t.eq(t + 1)
            start_step()
    # the readout's spikes go to the classifier: only the last step's must be in before HEAD
    x_pass("READOUT", after_readout, OUT_ROW, SPIKES_OUT, t != cfgd.steps_last)
