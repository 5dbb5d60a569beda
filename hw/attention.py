"""Spiking self-attention core: ``KV_h = sum_j size_j K_jh^T V_jh``, then ``Y_i = Q_ih KV_h`` per head.

docs/integer_model.md, attention module: with binary ``K``, ``V`` and ``Q``,
``KV_h[a, c] = sum_{active j} size[j] * K[j, h*dh+a] * V[j, h*dh+c]`` and
``Y[i, h*dh+c] = sum_a Q[i, h*dh+a] * KV_h[a, c]``. Both are accumulate-only and event driven: per head, one
cycle per present K spike (adding ``size * V_jh`` to row ``a`` of ``KV_h``) and one cycle per present Q
spike (adding row ``a`` of ``KV_h`` to ``Y_ih``); the heads work in parallel, so a token costs the
largest per-head spike count. A head whose ``V_jh`` is all zero adds nothing, so its K spikes are skipped.
Only active (not halted, not merged) tokens are ever sent, so skipped tokens cost nothing.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import ATTN_PHASE_OVERHEAD

from .arith import at_most_one, lowest_set


def kv_layout(max_tokens: int, dim: int) -> data.StructLayout:
    """One active token of the KV phase: its K and V spikes (channel d = bit d), its merge ``size``, ``last``."""
    return data.StructLayout({"k": dim, "v": dim, "size": range(max_tokens + 1), "last": 1})


def q_layout(dim: int) -> data.StructLayout:
    """One active token of the Y phase: its Q spikes and ``last``."""
    return data.StructLayout({"q": dim, "last": 1})


def y_layout(max_tokens: int, dim: int, heads: int) -> data.StructLayout:
    """One output row: ``y`` per channel (at most ``head_dim * max_tokens``) and ``last``."""
    return data.StructLayout({"y": data.ArrayLayout(range((dim // heads) * max_tokens + 1), dim), "last": 1})


class AttentionKV(wiring.Component):
    """Compute ``K^T V`` over a packet of active tokens, then ``Q (K^T V)`` over a packet of active tokens.

    Protocol: a KV packet on ``kv_i`` (tokens in any order, ``last`` on the final one), then a Q packet
    on ``q_i``; the unit takes ``kv_i`` only in its KV phase and ``q_i`` only in its Y phase and returns
    to the KV phase after the Q packet's ``last`` token. The next KV packet starts from ``KV = 0``.

    Contract (``dynaspike.cycles.attn_cycles``): a KV token costs ``max(1, max_h k_h)`` cycles where
    ``k_h`` is its K spike count in head ``h`` (0 if its ``V_h`` is all zero); a Q token costs
    ``max(1, max_h q_h)``; switching from the KV phase to the Y phase and emitting the last row cost
    ``ATTN_PHASE_OVERHEAD`` (2) cycles in all. Each Y row is valid one cycle after its last
    accumulation. Stalls only on ``o`` backpressure: a row's last accumulation waits while the row before
    it is not taken, its earlier ones do not (a consumer that takes a row over several cycles overlaps
    them with the next row's work).
    """

    def __init__(self, max_tokens: int, dim: int, heads: int):
        for name, value in (("max_tokens", max_tokens), ("dim", dim), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AttentionKV {name} must be a positive integer, got {value!r}")
        if dim % heads:
            raise ValueError(f"AttentionKV dim={dim} is not a multiple of heads={heads}")
        self.max_tokens, self.dim, self.heads, self.head_dim = max_tokens, dim, heads, dim // heads
        super().__init__({
            "kv_i": In(stream.Signature(kv_layout(max_tokens, dim))),
            "q_i": In(stream.Signature(q_layout(dim))),
            "o": Out(stream.Signature(y_layout(max_tokens, dim, heads))),
        })

    def elaborate(self, platform):
        m = Module()
        H, dh, N = self.heads, self.head_dim, self.max_tokens
        # KV_h lives in a small memory per head: row a = KV_h[a, :] (dh counters of at most N). Reads are
        # asynchronous (distributed RAM), so a row is read, added to and written back in one cycle.
        # A valid bit per row stands for "cleared": a new KV packet clears dh bits instead of dh rows.
        row_shape = data.ArrayLayout(range(N + 1), dh)
        kv_rd, kv_wr, kv_valid = [], [], []
        for h in range(H):
            mem = Memory(shape=row_shape, depth=dh, init=[])
            m.submodules[f"kv{h}"] = mem
            kv_wr.append(mem.write_port())
            kv_rd.append(mem.read_port(domain="comb"))
            kv_valid.append(Signal(dh, name=f"kv_valid{h}"))

        y_phase = Signal()        # 0: taking KV tokens, 1: taking Q tokens
        kv_first = Signal(init=1)  # the next KV token starts a packet: clear KV
        busy = Signal()            # a token is in the working registers
        rem = Signal(self.dim)     # its spikes still to process (K in the KV phase, Q in the Y phase)
        v = Signal(self.dim)
        size = Signal(range(N + 1))
        last = Signal()
        y = [[Signal(range(dh * N + 1), name=f"y{h}_{c}") for c in range(dh)] for h in range(H)]
        # A packet's `last` token has been taken: take nothing more until the phase has flipped, so the
        # next packet's tokens (already waiting on the other port or this one) cannot slip in.
        closed = Signal()

        # One spike per head per cycle: the lowest remaining bit of each head's slice. `sel` and `has` are
        # registers, set with `rem` (from the token taken, or from what is left after this cycle), so the
        # KV row read starts from a flip-flop rather than behind a priority tree.
        sel = [Signal(range(max(dh, 2)), name=f"sel{h}") for h in range(H)]
        has = Signal(H)
        single = Signal(H)    # the head has at most one spike left: this cycle's is its last
        rem_next = Signal(self.dim)
        for h in range(H):
            part = rem[h * dh:(h + 1) * dh]
            m.d.comb += rem_next[h * dh:(h + 1) * dh].eq(part & ~(Const(1, dh) << sel[h]))
        rem_load = Signal(self.dim)   # rem's next value when it changes (see `rem_we`)
        rem_we = Signal()
        for h in range(H):
            part = rem_load[h * dh:(h + 1) * dh]
            idx, any_ = lowest_set(m, part, f"sel{h}_next")
            with m.If(rem_we):
                m.d.sync += [sel[h].eq(idx), has[h].eq(any_), single[h].eq(at_most_one(part))]
        with m.If(rem_we):
            m.d.sync += rem.eq(rem_load)
        # The Y phase may only finish a token when its row can go into the output register.
        out_free = ~self.o.valid | self.o.ready
        would_finish = single.all()   # rem_next == 0, from registers
        step = busy & (~y_phase | out_free | ~would_finish)
        finishing = step & would_finish
        take = ~busy | finishing  # the working registers are free (now or after this cycle)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # ---- process one spike per head
        for h in range(H):
            row_valid = kv_valid[h].bit_select(sel[h], 1)
            m.d.comb += kv_rd[h].addr.eq(sel[h])
            row = [Mux(row_valid, kv_rd[h].data[c], 0) for c in range(dh)]
            # KV phase: KV_h[a, :] += size * V_h for the K spike a.
            m.d.comb += [kv_wr[h].addr.eq(sel[h]), kv_wr[h].en.eq(step & ~y_phase & has[h])]
            m.d.comb += [kv_wr[h].data[c].eq(row[c] + Mux(v[h * dh + c], size, 0)) for c in range(dh)]
            with m.If(step & ~y_phase & has[h]):
                m.d.sync += kv_valid[h].bit_select(sel[h], 1).eq(1)
            # Y phase: Y_h += KV_h[a, :] for the Q spike a.
            with m.If(step & y_phase):
                for c in range(dh):
                    add = Signal.like(y[h][c], name=f"yadd{h}_{c}")
                    m.d.comb += add.eq(y[h][c] + Mux(has[h], row[c], 0))
                    m.d.sync += y[h][c].eq(add)
                    with m.If(finishing):
                        m.d.sync += self.o.payload.y[h * dh + c].eq(add)
        with m.If(step):
            m.d.comb += [rem_we.eq(1), rem_load.eq(rem_next)]
            with m.If(finishing):
                m.d.sync += busy.eq(0)
                with m.If(y_phase):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(last)]
                with m.If(last):
                    # KV packet done: Y phase next; Q packet done: back to the KV phase.
                    m.d.sync += [y_phase.eq(~y_phase), closed.eq(0)]
                    with m.If(y_phase):
                        m.d.sync += kv_first.eq(1)

        # ---- take the next token (the phase register was set before this cycle)
        m.d.comb += [self.kv_i.ready.eq(take & ~closed & ~y_phase), self.q_i.ready.eq(take & ~closed & y_phase)]
        with m.If(self.kv_i.valid & self.kv_i.ready):
            p = self.kv_i.payload
            # A head whose V slice is all zero adds nothing: drop its K spikes.
            eff = Signal(self.dim)
            for h in range(H):
                m.d.comb += eff[h * dh:(h + 1) * dh].eq(
                    p.k[h * dh:(h + 1) * dh] & p.v[h * dh:(h + 1) * dh].any().replicate(dh))
            m.d.comb += [rem_we.eq(1), rem_load.eq(eff)]
            m.d.sync += [busy.eq(1), v.eq(p.v), size.eq(p.size), last.eq(p.last), closed.eq(p.last),
                         kv_first.eq(0)]
            with m.If(kv_first):
                # No row of this head is being written now: the previous packet's last write was at
                # least a Y phase ago.
                m.d.sync += [kv_valid[h].eq(0) for h in range(H)]
        with m.If(self.q_i.valid & self.q_i.ready):
            m.d.comb += [rem_we.eq(1), rem_load.eq(self.q_i.payload.q)]
            m.d.sync += [busy.eq(1), last.eq(self.q_i.payload.last), closed.eq(self.q_i.payload.last)]
            m.d.sync += [y[h][c].eq(0) for h in range(H) for c in range(dh)]
        return m
