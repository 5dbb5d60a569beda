"""Spike events: the present spikes of a spike vector, two per cycle, taken from both ends.

The accumulate engine adds two weight rows per cycle (``dynaspike.cycles.ACC_SPIKES``), so the sequencer
needs two present spikes of a token's spike vector per cycle. ``EventGenerator`` pairs the lowest and the
highest spike not yet taken, so a vector of ``s`` spikes takes exactly ``max(1, ceil(s / 2))`` cycles
(``cycles.acc_beats``) whatever their positions, and an empty vector one cycle (a pair with nothing
present, the engine's empty-row marker).

It works on words of ``word`` bits (the core's P): two working registers hold the lowest and the highest
word still holding spikes, with the spikes already taken cleared; when one runs empty, the next non-empty
word towards the other end is loaded from the stored vector (a mask of non-empty words finds it; when none
is left between them, the two ends share one word). No wide subtraction or priority chain runs over the
whole vector: the deepest path is a word-sized priority tree and a word multiplexer.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .arith import at_most_one, at_most_two, highest_set, lowest_set


class EventGenerator(wiring.Component):
    """Two spike events per cycle from a vector of ``width`` bits, lowest and highest first.

    Ports (all but the outputs sampled on the clock edge):

    - ``load`` with ``bits``: start a scan of ``bits`` (kept for ``rewind``);
    - ``rewind``: start the scan of the kept vector again (the next output row of the same token);
    - ``step``: the current pair is taken, go to the next (``load`` and ``rewind`` take precedence);
    - ``idx[0]``, ``idx[1]``, ``present`` (2 bits), ``last`` (comb): the current pair, whether each slot
      holds a spike (slot 1 only if it differs from slot 0), and whether it is the scan's final pair. Valid
      from the cycle after ``load``/``rewind`` until the ``step`` of the final pair.
    """

    def __init__(self, width: int, word: int = 32):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"EventGenerator width must be a positive integer, got {width!r}")
        if not isinstance(word, int) or word < 2 or word & (word - 1):
            raise ValueError(f"EventGenerator word must be a power of two >= 2, got {word!r}")
        self.width, self.word = width, word
        self.words = -(-width // word)
        super().__init__({
            "load": In(1), "bits": In(width), "rewind": In(1), "step": In(1),
            "idx": Out(data.ArrayLayout(range(self.words * word), 2)),
            "present": Out(2), "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, Wn = self.word, self.words

        def words(v):
            return [v[k * B:(k + 1) * B] for k in range(Wn)]

        vec = Signal(Wn * B)                 # the vector being scanned, as loaded
        lo_w, hi_w = Signal(range(Wn)), Signal(range(Wn))
        lo_word, hi_word = Signal(B), Signal(B)   # the end words, spikes taken cleared
        empty = Signal(init=1)               # the scan has no spike left (or never had one)
        bits = Cat(self.bits, Const(0, Wn * B - self.width))
        vw, bw = words(vec), words(bits)

        # ---- the current pair
        same = lo_w == hi_w                  # both ends in one word: both spikes from lo_word
        lo_b, _ = lowest_set(m, lo_word, "ev_lo")
        hi_b, _ = highest_set(m, Mux(same, lo_word, hi_word), "ev_hi")
        idx0, idx1 = Cat(lo_b, lo_w), Cat(hi_b, hi_w)
        m.d.comb += [self.idx[0].eq(idx0), self.idx[1].eq(idx1),
                     self.present.eq(Cat(~empty, ~empty & (idx0 != idx1)))]

        # ---- after it is taken
        lo_after = Signal(B)
        hi_after = Signal(B)
        m.d.comb += [lo_after.eq(lo_word & ~(Const(1, B) << lo_b) & Mux(same, ~(Const(1, B) << hi_b), Const(-1, B))),
                     hi_after.eq(hi_word & ~(Const(1, B) << hi_b))]
        # whether an end word runs empty with this pair, counted on the word itself (at most one spike left, two
        # when both ends share it) rather than on lo_after / hi_after: the priority trees stay off these paths
        lo_gone = Mux(same, at_most_two(lo_word), at_most_one(lo_word))
        hi_gone = at_most_one(hi_word)
        ne_vec = Cat(*(w.any() for w in vw))
        between = ne_vec & Cat(*((lo_w < k) & (hi_w > k) for k in range(Wn)))  # untouched non-empty words
        b_lo, _ = lowest_set(m, between, "ev_blo")
        b_hi, _ = highest_set(m, between, "ev_bhi")
        nb = between.any()
        m.d.comb += self.last.eq(empty | Mux(same, lo_gone, lo_gone & hi_gone & ~nb))

        # ---- next state: a new scan (of bits or of the kept vector), or the next pair
        start = self.load | self.rewind
        ne_src = Mux(self.load, Cat(*(w.any() for w in bw)), ne_vec)
        w0, _ = lowest_set(m, ne_src, "ev_w0")
        w1, _ = highest_set(m, ne_src, "ev_w1")
        # the word each end moves to: from the vector being started, or the next one towards the other end
        i_lo = Signal(range(Wn))
        i_hi = Signal(range(Wn))
        m.d.comb += [i_lo.eq(Mux(start, w0, b_lo)), i_hi.eq(Mux(start, w1, b_hi))]
        src_lo = Mux(self.load, bits.word_select(i_lo, B), vec.word_select(i_lo, B))
        src_hi = Mux(self.load, bits.word_select(i_hi, B), vec.word_select(i_hi, B))
        with m.If(start):
            m.d.sync += [lo_w.eq(w0), hi_w.eq(w1), lo_word.eq(src_lo), hi_word.eq(src_hi), empty.eq(~ne_src.any())]
            with m.If(self.load):
                m.d.sync += vec.eq(bits)
        with m.Elif(self.step & ~empty):
            with m.If(self.last):
                m.d.sync += empty.eq(1)
            with m.Elif(same):
                m.d.sync += lo_word.eq(lo_after)
            with m.Else():
                m.d.sync += [lo_word.eq(lo_after), hi_word.eq(hi_after)]
                with m.If(lo_gone):
                    with m.If(nb):
                        m.d.sync += [lo_w.eq(b_lo), lo_word.eq(src_lo)]
                    with m.Else():            # the low end reaches the high end's word
                        m.d.sync += [lo_w.eq(hi_w), lo_word.eq(hi_after)]
                with m.If(hi_gone):
                    with m.If(nb):
                        m.d.sync += [hi_w.eq(b_hi), hi_word.eq(src_hi)]
                    with m.Else():            # the high end reaches the low end's word
                        m.d.sync += hi_w.eq(lo_w)
        return m


def reference_events(bits: int) -> list:
    """The pairs ``EventGenerator`` emits for ``bits`` (an int): ``[(lo, hi or None), ...]``; ``[(None, None)]``
    for no spike. Lowest and highest untaken spike each cycle."""
    idx = [k for k in range(bits.bit_length()) if bits >> k & 1]
    if not idx:
        return [(None, None)]
    pairs = []
    while idx:
        lo = idx.pop(0)
        pairs.append((lo, idx.pop() if idx else None))
    return pairs
