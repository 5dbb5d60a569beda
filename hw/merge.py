"""Token merge at the embedding (docs/integer_model.md, step 2), one token per cycle.

Tokens ``j = 0 .. n-1`` arrive in order with their spike vectors ``B[j]`` (D bits: the spikes block 0's
input LIF emits at step 0 from rest, ``E >= 2 * res_threshold``). The first earlier *representative*
``i`` (in index order) with ``popcount(B[i] xor B[j]) <= threshold`` takes ``j``: ``rep[j] = i``,
``size[i] += 1``; otherwise ``j`` is a representative with ``size[j] = 1``. A negative threshold never
merges. ``size`` of a merged token is 0, so the sizes of a packet always sum to ``n``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import MERGE_LATENCY

from .arith import lowest_set, prefix_or


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
    return terms[0] if terms else Const(0)


class TokenMerge(wiring.Component):
    """Find each token's representative and every representative's size.

    Contract (``dynaspike.cycles``): latency ``MERGE_LATENCY`` (4) cycles (register the token, its distance
    to every earlier token in parallel, which of them are close, then pick the first representative), one
    token per cycle, stalls only on backpressure; a packet of ``n`` tokens takes ``merge_cycles(n)``.
    Packets (images) follow each other without a gap; nothing carries over from one to the next. ``sizes``
    is final while the ``last`` token's output is offered (``o.valid & o.payload.last``): the consumer reads
    it when it takes that output. ``threshold`` is the model's ``merge_threshold``, sampled with each token.
    """

    def __init__(self, max_tokens: int, dim: int):
        for name, value in (("max_tokens", max_tokens), ("dim", dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TokenMerge {name} must be a positive integer, got {value!r}")
        self.max_tokens, self.dim, self.latency = max_tokens, dim, MERGE_LATENCY
        super().__init__({
            "i": In(stream.Signature(merge_in_layout(dim))),
            "o": Out(stream.Signature(merge_out_layout(max_tokens))),
            "threshold": In(signed(max(dim, 1).bit_length() + 1)),
            "sizes": Out(data.ArrayLayout(range(max_tokens + 1), max_tokens)),
        })

    def elaborate(self, platform):
        N = self.max_tokens
        m = Module()
        store = [Signal(self.dim, name=f"store{k}") for k in range(N)]
        is_rep = Signal(N)
        sizes = Array(Signal(range(N + 1), name=f"size{k}") for k in range(N))
        m.d.comb += [self.sizes[k].eq(sizes[k]) for k in range(N)]
        # Index of the next input token. A packet is at most max_tokens long (the stream parser checks
        # the model's num_tokens against the capacity), so j never passes N - 1 without `last`.
        j = Signal(range(N))

        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        # Stage 0: the token's bits into a register (they come from a compare of the embedding's output:
        # the popcounts of stage A must start from a flip-flop).
        s0_valid = Signal()
        s0 = Signal(merge_in_layout(self.dim))
        s0_th = Signal.like(self.threshold)   # the threshold goes with its token
        with m.If(advance):
            m.d.sync += [s0_valid.eq(self.i.valid), s0.eq(self.i.payload), s0_th.eq(self.threshold)]

        # Stage A1: the token's distance to every stored token, in parallel (a popcount of 64 bits is as deep as
        # a stage can be); store it.
        sa_valid = Signal()
        sa = Signal(data.StructLayout({"token": range(N), "last": 1, "th": len(s0_th), "earlier": N}))
        dist = [Signal(range(self.dim + 1), name=f"dist{k}") for k in range(N)]
        with m.If(advance):
            m.d.sync += sa_valid.eq(s0_valid)
            with m.If(s0_valid):
                m.d.sync += [sa.token.eq(j), sa.last.eq(s0.last), sa.th.eq(s0_th),
                             sa.earlier.eq(Cat(*(k < j for k in range(N)))), j.eq(j + 1)]
                m.d.sync += [dist[k].eq(popcount(store[k] ^ s0.bits)) for k in range(N)]
                with m.If(s0.last):
                    m.d.sync += j.eq(0)
                with m.Switch(j):
                    for k in range(N):
                        with m.Case(k):
                            m.d.sync += store[k].eq(s0.bits)

        # Stage A2: which earlier tokens are close (only i < j count).
        s1_valid = Signal()
        s1 = Signal(data.StructLayout({"token": range(N), "last": 1, "close": N}))
        th = sa.th.as_signed()
        close = Cat(*(sa.earlier[k] & (th >= 0) & (dist[k] <= th) for k in range(N)))
        with m.If(advance):
            m.d.sync += s1_valid.eq(sa_valid)
            with m.If(sa_valid):
                m.d.sync += [s1.token.eq(sa.token), s1.last.eq(sa.last), s1.close.eq(close)]

            # Stage B: the first close representative takes the token (is_rep is up to date: the
            # previous token's decision was written in the previous cycle). `take` is that
            # representative one-hot, so its size's increment needs no index decode.
            m.d.sync += self.o.valid.eq(s1_valid)
            with m.If(s1_valid):
                first_token = s1.token == 0
                cand = Signal(N)
                m.d.comb += cand.eq(s1.close & is_rep)
                first, _ = lowest_set(m, cand, "first")
                take = Signal(N)
                m.d.comb += take.eq(cand & ~prefix_or(cand))
                m.d.sync += [self.o.payload.token.eq(s1.token), self.o.payload.last.eq(s1.last)]
                # A new image starts at token 0: forget the previous one's representatives and sizes.
                none = cand == 0    # the token is a representative
                with m.If(first_token):
                    m.d.sync += self.o.payload.rep.eq(0)
                with m.Elif(none):
                    m.d.sync += self.o.payload.rep.eq(s1.token)
                with m.Else():
                    m.d.sync += self.o.payload.rep.eq(first)
                # bit by bit (a decoded index, not a bit_select assignment): its own state for the token, one
                # more member for the representative that takes it
                for k in range(N):
                    with m.If(first_token):
                        m.d.sync += [is_rep[k].eq(k == 0), sizes[k].eq(k == 0)]
                    with m.Elif(s1.token == k):
                        m.d.sync += [is_rep[k].eq(none), sizes[k].eq(none)]
                    with m.Elif(take[k]):
                        m.d.sync += sizes[k].eq(sizes[k] + 1)
        return m
