"""Halting unit: per-token cumulative halting score (docs/integer_model.md, step 4, "Halting check").

For each active token ``k`` after block ``l``:
``idx = clamp((x >> halt_shift) - halt_lut_min, 0, halt_lut_size - 1)`` with ``x = X[k, halt_channel]``;
``Hacc[k] += halt_lut[idx]``; the token halts if ``Hacc[k] >= halt_threshold`` or the check is the final
one (``(t, l) == (T-1, L-1)``, flagged by the caller).
"""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import HALT_LATENCY
from dynaspike.formats import FORMATS

from .accumulate import connect_write, write_signature


def halt_in_layout(max_tokens: int, res_bits: int = FORMATS.res_bits) -> data.StructLayout:
    """``token``, its halting feature ``x`` (residual units) and ``final`` (force the halt)."""
    return data.StructLayout({"token": range(max_tokens), "x": signed(res_bits), "final": 1})


def halt_out_layout(max_tokens: int) -> data.StructLayout:
    return data.StructLayout({"token": range(max_tokens), "halted": 1})


class HaltUnit(wiring.Component):
    """Accumulate halting scores per token and decide halts.

    Contract (``dynaspike.cycles``): latency ``HALT_LATENCY`` (2) cycles (one synchronous LUT read, one
    accumulate-and-compare), one token per cycle, stalls only on backpressure. ``clear`` (one cycle, while
    no token is in flight) sets every ``Hacc`` to 0: the caller pulses it at the start of each image.
    ``shift``, ``lut_min`` and ``threshold`` are the model's ``IntParams`` and must be stable while tokens
    flow. The LUT (``halt_lut_size`` entries of ``halt_frac_bits``) is written through ``lut_wr``.
    ``Hacc`` is ``halt_acc_bits`` wide; the artifact loader guarantees it cannot wrap.
    """

    def __init__(self, max_tokens: int, *, fmt=FORMATS):
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"HaltUnit max_tokens must be a positive integer, got {max_tokens!r}")
        self.max_tokens, self.fmt, self.latency = max_tokens, fmt, HALT_LATENCY
        super().__init__({
            "i": In(stream.Signature(halt_in_layout(max_tokens, fmt.res_bits))),
            "o": Out(stream.Signature(halt_out_layout(max_tokens))),
            "clear": In(1),
            "shift": In(range(fmt.res_bits)),
            "lut_min": In(signed(fmt.res_bits)),
            "threshold": In(fmt.halt_acc_bits),
            "lut_wr": In(write_signature(fmt.halt_lut_size, fmt.halt_frac_bits)),
            "hacc": Out(data.ArrayLayout(fmt.halt_acc_bits, max_tokens)),  # for debug taps and tests
        })

    def elaborate(self, platform):
        fmt = self.fmt
        m = Module()
        m.submodules.lut = lut = Memory(shape=fmt.halt_frac_bits, depth=fmt.halt_lut_size, init=[])
        connect_write(m, lut, self.lut_wr)
        rd = lut.read_port()

        hacc = Array(Signal(fmt.halt_acc_bits, name=f"hacc{k}") for k in range(self.max_tokens))
        m.d.comb += [self.hacc[k].eq(hacc[k]) for k in range(self.max_tokens)]

        # Stage 0: the LUT index. (x >> shift) - lut_min spans twice the residual range: one extra bit.
        p = self.i.payload
        idx = Signal(signed(fmt.res_bits + 2))
        m.d.comb += idx.eq((p.x >> self.shift) - self.lut_min)
        clamped = Mux(idx < 0, 0, Mux(idx > fmt.halt_lut_size - 1, fmt.halt_lut_size - 1, idx))

        s1_valid = Signal()
        s1 = Signal(data.StructLayout({"token": range(self.max_tokens), "final": 1}))
        advance = ~self.o.valid | self.o.ready
        m.d.comb += [self.i.ready.eq(advance), rd.en.eq(advance & self.i.valid), rd.addr.eq(clamped)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i.valid), s1.token.eq(p.token), s1.final.eq(p.final)]
            # Stage 1: the score is in rd.data; add, compare, write back, offer the decision.
            m.d.sync += self.o.valid.eq(s1_valid)
            with m.If(s1_valid):
                new = Signal(fmt.halt_acc_bits)
                m.d.comb += new.eq(hacc[s1.token] + rd.data)
                m.d.sync += [
                    hacc[s1.token].eq(new),
                    self.o.payload.token.eq(s1.token),
                    self.o.payload.halted.eq((new >= self.threshold) | s1.final),
                ]
        with m.If(self.clear):
            m.d.sync += [h.eq(0) for h in hacc]
        return m
