"""Readout counts and classifier (docs/integer_model.md step 4 "Readout" and step 5).

Readout: ``C[d] += w * O[d]`` for each counted token's output spikes ``O`` (``w = size * (T - t)`` or
``size``, computed by the sequencer): a gated add of the scalar ``w`` per spike, P channels per beat.
Classifier: ``logits[c] = head_b[c] + sum_d head_w[c, d] * C[d]`` (int32), ``M`` multipliers per cycle,
once per image. ``head_w`` row ``c * groups + g`` holds ``head_w[c, g*M : (g+1)*M]`` (zero past D),
``head_b`` row ``c`` holds ``head_b[c]``; both written at run time.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import HEAD_LATENCY
from dynaspike.formats import FORMATS

from .accumulate import connect_write, write_signature


def count_layout(lanes: int, chunks: int, max_weight: int) -> data.StructLayout:
    """One readout beat: channels ``chunk * lanes ...``, their spikes, the token's weight ``w``."""
    return data.StructLayout({"chunk": range(max(chunks, 1)), "spike": lanes, "w": range(max_weight + 1)})


def logit_layout(classes: int, fmt=FORMATS) -> data.StructLayout:
    return data.StructLayout({"cls": range(max(classes, 2)), "logit": signed(fmt.logit_bits), "last": 1})


class Head(wiring.Component):
    """Count output spikes, then classify.

    Contract (``dynaspike.cycles.head_cycles``): readout beats are taken one per cycle whenever the unit
    is not classifying (``i.ready`` is low only then). ``go`` (one cycle) starts the classifier over the
    loaded model's ``n_classes`` classes and ``n_groups = ceil(D / M)`` groups (inputs, at most the built
    sizes, which are their initial values): class ``c``'s logit is offered ``HEAD_LATENCY`` (3) cycles
    after its last group of ``M`` products is issued (weight read, registered multiply, sum and
    accumulate); ``n_classes * n_groups`` cycles in all, stalling only on ``o`` backpressure. ``clear``
    zeroes the counts (start of an image). Counts are ``count_bits`` wide; the artifact bounds them (at
    most ``N * T``).
    """

    def __init__(self, lanes: int, dim: int, classes: int, mults: int, max_weight: int, *, fmt=FORMATS,
                 granules: int = 1):
        for name, value in (("lanes", lanes), ("dim", dim), ("classes", classes), ("mults", mults),
                            ("max_weight", max_weight)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Head {name} must be a positive integer, got {value!r}")
        self.lanes, self.dim, self.classes, self.mults, self.fmt = lanes, dim, classes, mults, fmt
        self.chunks, self.groups = -(-dim // lanes), -(-dim // mults)
        self.w_shape = data.ArrayLayout(signed(fmt.head_weight_bits), mults)
        super().__init__({
            "i": In(stream.Signature(count_layout(lanes, self.chunks, max_weight))),
            "o": Out(stream.Signature(logit_layout(classes, fmt))),
            "go": In(1),
            "clear": In(1),
            "n_classes": In(range(classes + 1), init=classes),
            "n_groups": In(range(self.groups + 1), init=self.groups),
            "counts": Out(data.ArrayLayout(unsigned(fmt.count_bits), dim)),
            "w_wr": In(write_signature(classes * self.groups, self.w_shape, granules)),
            "b_wr": In(write_signature(max(classes, 2), signed(fmt.logit_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, P, M = self.fmt, self.lanes, self.mults
        counts = [Signal(unsigned(fmt.count_bits), name=f"count{d}") for d in range(self.dim)]
        m.d.comb += [self.counts[d].eq(counts[d]) for d in range(self.dim)]

        # ---- readout: gated adds of w
        running = Signal()  # the classifier is walking the classes
        m.d.comb += self.i.ready.eq(~running)
        with m.If(self.i.valid & self.i.ready):
            p = self.i.payload
            for d in range(self.dim):
                c, lane = divmod(d, P)
                with m.If((p.chunk == c) & p.spike[lane]):
                    m.d.sync += counts[d].eq(counts[d] + p.w)
        with m.If(self.clear):
            m.d.sync += [c.eq(0) for c in counts]

        # ---- classifier: (class, group) walk -> read -> multiply -> sum and accumulate
        m.submodules.wmem = wmem = Memory(shape=self.w_shape, depth=self.classes * self.groups, init=[])
        m.submodules.bmem = bmem = Memory(shape=signed(fmt.logit_bits), depth=max(self.classes, 2), init=[])
        connect_write(m, wmem, self.w_wr)
        connect_write(m, bmem, self.b_wr)
        w_rd, b_rd = wmem.read_port(), bmem.read_port()

        advance = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        cls = Signal(range(max(self.classes, 2)))
        grp = Signal(range(max(self.groups, 2)))
        row0 = Signal(range(self.classes * self.groups + 1))  # weight row of (cls, 0): rows per class = groups
        # weights read while the classifier runs, a class's bias with its first group (held until then)
        m.d.comb += [w_rd.en.eq(advance & running), w_rd.addr.eq(row0 + grp),
                     b_rd.en.eq(advance & running & (grp == 0)), b_rd.addr.eq(cls)]
        last_grp, last_cls = grp == self.n_groups - 1, cls == self.n_classes - 1
        ctl = data.StructLayout({"valid": 1, "first": 1, "last": 1, "cls": range(max(self.classes, 2)),
                                 "grp": range(max(self.groups, 2)), "final": 1})
        s1, s2 = Signal(ctl), Signal(ctl)
        with m.If(advance):
            m.d.sync += [s1.valid.eq(running), s1.first.eq(grp == 0), s1.last.eq(last_grp),
                         s1.cls.eq(cls), s1.grp.eq(grp), s1.final.eq(last_cls)]
            with m.If(running):
                m.d.sync += grp.eq(grp + 1)
                with m.If(last_grp):
                    m.d.sync += [grp.eq(0), cls.eq(cls + 1), row0.eq(row0 + self.groups)]
                    with m.If(last_cls):
                        m.d.sync += running.eq(0)
        with m.If(self.go & ~running):
            m.d.sync += [running.eq(1), cls.eq(0), grp.eq(0), row0.eq(0)]

        # stage 1: the weights of (class, group) are read; multiply with the counts of that group
        prod = Signal(data.ArrayLayout(signed(fmt.head_weight_bits + fmt.count_bits + 1), M))
        bias = Signal(signed(fmt.logit_bits))
        with m.If(advance):
            m.d.sync += [s2.eq(s1), bias.eq(b_rd.data)]
            for l in range(M):
                cnt = Signal(unsigned(fmt.count_bits), name=f"cnt{l}")
                with m.Switch(s1.grp):
                    for g in range(self.groups):
                        if g * M + l < self.dim:
                            with m.Case(g):
                                m.d.comb += cnt.eq(counts[g * M + l])
                m.d.sync += prod[l].eq(w_rd.data[l] * cnt)
        # stage 2: sum the products (a balanced tree) and accumulate the class's logit
        acc = Signal(signed(fmt.logit_bits))
        terms = [prod[l] for l in range(M)]
        while len(terms) > 1:
            terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
        with m.If(advance & s2.valid):
            base = Signal(signed(fmt.logit_bits))
            m.d.comb += base.eq(acc)
            with m.If(s2.first):
                m.d.comb += base.eq(bias)
            m.d.sync += acc.eq(base + terms[0])
            with m.If(s2.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.cls.eq(s2.cls),
                             self.o.payload.logit.eq(base + terms[0]), self.o.payload.last.eq(s2.final)]
        return m
