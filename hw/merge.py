"""Token merge at the embedding (docs/integer_model.md, step 2), a group of earlier tokens compared per cycle.

Tokens ``j = 0 .. n-1`` arrive in order with their spike vectors ``B[j]`` (D bits: the spikes block 0's
input LIF emits at step 0 from rest, ``E >= 2 * res_threshold``). The first earlier *representative*
``i`` (in index order) with ``popcount(B[i] xor B[j]) <= threshold`` takes ``j``: ``rep[j] = i``,
``size[i] += 1``; otherwise ``j`` is a representative with ``size[j] = 1``. A negative threshold never
merges. ``size`` of a merged token is 0, so the sizes of a packet always sum to ``n``.

The vectors go into a memory as they arrive (N rows of D bits), and the unit compares each token with its
earlier representatives a group of ``group`` consecutive token indices a cycle, in index order, until one is
close: ``group`` popcounts of D bits instead of one per earlier token (N x D bits of registers and N
popcounts in parallel before), so its size grows with ``group x (D + N)``, not D x N, which the seeds' 64
tokens of 384 channels need (issue 11).
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import MERGE_GROUP

from .arith import lowest_set
from .loader import log2


def merge_in_layout(dim: int) -> data.StructLayout:
    """``bits``: the token's spike vector (channel ``d`` = bit ``d``); ``last``: the image's final token."""
    return data.StructLayout({"bits": dim, "last": 1})


def merge_out_layout(max_tokens: int) -> data.StructLayout:
    """``token`` j, its representative ``rep`` (``== token`` if it is one), ``last`` as on the input."""
    return data.StructLayout({"token": range(max_tokens), "rep": range(max_tokens), "last": 1})


def popcount(value) -> "Value":
    """A balanced adder tree counting the ones of ``value`` (log2 depth, not a chain)."""
    terms = [value[k] for k in range(len(value))]
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
    return terms[0] if terms else 0


class TokenMerge(wiring.Component):
    """Find each token's representative and every representative's size.

    Contract (``dynaspike.cycles.merge_decisions``): tokens are taken one a cycle as they come (their vectors
    are stored); an image's next token waits only once this image's ``last`` token is in, until that
    token's decision. The unit decides the tokens in order. It compares a token with its earlier
    representatives a *group* at a time: the ``group`` consecutive token indices ``g * group ..`` (one read
    port each), skipping groups that hold no earlier representative, in index order, up to the group of the
    first close one (all of them if none is close). It reads a token's vector the cycle after the token came
    or the cycle its predecessor is decided, whichever is later, and decides it the cycle after that when
    there is no group to compare (token 0, a negative threshold, or no representative yet), else ``2 + c``
    cycles after the read, ``c`` the groups compared (``cycles.merge_compares``). A decision is offered on
    ``o`` the cycle after; while an offered decision is not taken, the unit waits. ``sizes`` is final while
    the ``last`` token's decision is offered (the consumer reads it when it takes that output).
    ``threshold`` is the model's ``merge_threshold``, sampled with each image's first token.
    """

    def __init__(self, max_tokens: int, dim: int, group: int = MERGE_GROUP):
        for name, value in (("max_tokens", max_tokens), ("dim", dim), ("group", group)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TokenMerge {name} must be a positive integer, got {value!r}")
        if group & (group - 1):
            raise ValueError(f"TokenMerge group must be a power of two, got {group}")
        self.max_tokens, self.dim, self.group = max_tokens, dim, group
        super().__init__({
            "i": In(stream.Signature(merge_in_layout(dim))),
            "o": Out(stream.Signature(merge_out_layout(max_tokens))),
            "threshold": In(signed(max(dim, 1).bit_length() + 1)),
            "sizes": Out(data.ArrayLayout(range(max_tokens + 1), max_tokens)),
        })

    def elaborate(self, platform):
        N, G = self.max_tokens, self.group
        NG = -(-N // G)                  # groups of token indices
        m = Module()
        m.submodules.store = store = Memory(shape=self.dim, depth=NG * G, init=[])
        wr, rds = store.write_port(), [store.read_port() for _ in range(G)]
        is_rep = Signal(N)
        sizes = Array(Signal(range(N + 1), name=f"size{k}") for k in range(N))
        m.d.comb += [self.sizes[k].eq(sizes[k]) for k in range(N)]

        # ---- arrivals: each token's vector into row `arr` of the store. A packet is at most max_tokens long
        # (the stream parser checks the model's num_tokens against the capacity).
        arr = Signal(range(N + 1))       # tokens of this image stored
        waiting = Signal(range(N + 1))   # ... whose vectors have not been read yet
        closed = Signal()                # this image's last token is in: the next image waits
        th = Signal.like(self.threshold)
        m.d.comb += [self.i.ready.eq(~closed), wr.addr.eq(arr), wr.data.eq(self.i.payload.bits),
                     wr.en.eq(self.i.valid & ~closed)]
        arrive = self.i.valid & self.i.ready
        with m.If(arrive):
            m.d.sync += arr.eq(arr + 1)
            with m.If(arr == 0):
                m.d.sync += th.eq(self.threshold)
            with m.If(self.i.payload.last):
                m.d.sync += closed.eq(1)

        # ---- decisions, token after token: read the token's vector (`loading`, on read port 0), then the
        # groups holding its earlier representatives one a cycle (`cand`: those not yet read, lowest first;
        # `pend`: a group read issued last cycle, `rd_m` which of its tokens are representatives), their
        # distances a cycle later (`dist`), checked the cycle after that. Indices that feed the decisions are
        # kept one-hot as well (`q_oh`, `below`), so no comparator sits between a register and them.
        advance = ~self.o.valid | self.o.ready
        q = Signal(range(N))             # the token being decided (or the next to be)
        q_oh = Signal(N, init=1)         # ... one-hot
        below = Signal(N)                # the tokens before q
        rq = Signal(range(N))            # the next token whose vector is to be read
        busy = Signal()                  # q's vector has been read
        loading = Signal()               # q's vector is on read port 0
        cur = Signal(self.dim)
        cand = Signal(NG)                # groups with representatives of q not yet read
        pend = Signal()
        rd_g = Signal(range(NG))         # the group on the read ports
        rd_m = Signal(G)                 # ... its tokens that are earlier representatives
        dist = [Signal(range(self.dim + 1), name=f"dist{k}") for k in range(G)]
        dist_g = Signal(range(NG))
        dist_m = Signal(G)               # the distances that count (earlier representatives)
        dist_valid = Signal()
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        earlier = Signal(NG * G)
        m.d.comb += earlier.eq(is_rep & below)
        groups = Cat(*(earlier[g * G:(g + 1) * G].any() for g in range(NG)))
        close = Cat(*(dist_valid & dist_m[k] & (th >= 0) & (dist[k] <= th.as_unsigned()) for k in range(G)))
        first_close, any_close = lowest_set(m, close, "first_close")
        left = Signal(NG)                # the groups left to read before this cycle's read
        m.d.comb += left.eq(Mux(loading, groups, cand))
        nxt, more = lowest_set(m, left, "nxt")
        nxt_oh = left & ~(left - 1)
        decide = Signal()
        merged = Signal()                # decided into an earlier representative (`rep_idx`)
        rep_idx = Signal(range(NG * G))
        m.d.comb += rep_idx.eq(Cat(first_close, dist_g) if G > 1 else dist_g)
        with m.If(loading):
            m.d.comb += decide.eq((th < 0) | (groups == 0))
        with m.Elif(busy):
            m.d.comb += [decide.eq(any_close | (~pend & ~more)), merged.eq(any_close)]
        last = closed & (waiting == 0)   # q is the image's last token (every stored vector has been read)

        # the next read: a group of q's earlier representatives, or the next token's vector once q is decided
        start = (~(busy | loading) | decide) & (waiting != 0)
        read_rep = (busy | loading) & ~decide & more
        m.d.comb += rds[0].addr.eq(Mux(read_rep, nxt << log2(G), rq))
        m.d.comb += [rd.addr.eq((nxt << log2(G)) | k) for k, rd in enumerate(rds) if k]
        m.d.comb += [rd.en.eq(advance & ((start & (k == 0)) | read_rep)) for k, rd in enumerate(rds)]
        m.d.sync += waiting.eq(waiting + arrive - (advance & start))   # arrivals go on while the output waits
        with m.If(advance):
            m.d.sync += [loading.eq(start), pend.eq(read_rep), dist_valid.eq(pend & ~decide)]
            with m.If(start):
                m.d.sync += rq.eq(rq + 1)
            with m.If(loading):
                m.d.sync += [cur.eq(rds[0].data), busy.eq(~decide)]
            with m.If(read_rep):
                m.d.sync += [rd_g.eq(nxt), cand.eq(left & ~nxt_oh),
                             rd_m.eq(earlier.word_select(nxt, G) if G > 1 else 1)]
            with m.If(pend):
                m.d.sync += [dist_g.eq(rd_g), dist_m.eq(rd_m)]
                m.d.sync += [dist[k].eq(popcount(cur ^ rd.data)) for k, rd in enumerate(rds)]
            with m.If(decide):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1), self.o.payload.token.eq(q),
                             self.o.payload.rep.eq(Mux(merged, rep_idx, q)), self.o.payload.last.eq(last)]
                with m.If(last):   # the image is done: the next one's tokens may come
                    m.d.sync += [closed.eq(0), arr.eq(0), q.eq(0), rq.eq(0), q_oh.eq(1), below.eq(0)]
                with m.Else():
                    m.d.sync += [q.eq(q + 1), q_oh.eq(q_oh << 1), below.eq(below | q_oh)]
                # bit by bit (one-hot where it can, no wide decode): its own state for the token, one more
                # member for the representative that takes it; token 0 starts the image's
                took = Signal(NG * G)
                m.d.comb += took.eq(Mux(merged, 1 << rep_idx, 0))
                for k in range(N):
                    with m.If(q_oh[0]):
                        m.d.sync += [is_rep[k].eq(k == 0), sizes[k].eq(k == 0)]
                    with m.Elif(q_oh[k]):
                        m.d.sync += [is_rep[k].eq(~merged), sizes[k].eq(~merged)]
                    with m.Elif(took[k]):
                        m.d.sync += sizes[k].eq(sizes[k] + 1)
        return m
