"""P-lane LIF neuron update: leak, threshold compare, hard reset (docs/integer_model.md, "Notation").

Per lane: ``h = (v + x) >> 1`` (arithmetic shift, floor), ``spike = h >= th``, ``v' = 0 if spike else h``.
``v``, ``x`` and ``th`` are signed ``acc_bits`` integers (``dynaspike.formats``); ``h`` always fits
``acc_bits`` (``|h| <= max(|v|, |x|)``), so nothing saturates or wraps and ``v'`` is exact.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import LIF_LATENCY
from dynaspike.formats import FORMATS


def lif_in_layout(lanes: int, acc_bits: int = FORMATS.acc_bits) -> data.StructLayout:
    """Payload of :attr:`LIFUpdate.i`: membrane ``v``, input ``x`` and threshold ``th`` per lane."""
    lane = data.ArrayLayout(signed(acc_bits), lanes)
    return data.StructLayout({"v": lane, "x": lane, "th": lane})


def lif_out_layout(lanes: int, acc_bits: int = FORMATS.acc_bits) -> data.StructLayout:
    """Payload of :attr:`LIFUpdate.o`: the new membrane ``v`` and the ``spike`` bits (lane ``p`` = bit ``p``)."""
    return data.StructLayout({"v": data.ArrayLayout(signed(acc_bits), lanes), "spike": lanes})


def lif_lane(m, v, x, th, acc_bits: int, name: str = ""):
    """Add one lane's LIF arithmetic to module ``m``; return ``(spike, v_next, h)`` (comb signals: ``h`` is
    the membrane before the reset).

    ``v + x`` needs ``acc_bits + 1`` bits; the floor shift brings it back to ``acc_bits`` exactly.
    """
    h = Signal(signed(acc_bits), name=f"h{name}")
    spike = Signal(name=f"spike{name}")
    v_next = Signal(signed(acc_bits), name=f"v_next{name}")
    m.d.comb += [h.eq((v + x) >> 1), spike.eq(h >= th), v_next.eq(Mux(spike, 0, h))]  # hard reset
    return spike, v_next, h


class LIFUpdate(wiring.Component):
    """Update ``lanes`` LIF neurons per transfer.

    Contract: latency ``dynaspike.cycles.LIF_LATENCY`` (1) cycle (input transfer at cycle c, output valid from cycle c+1),
    throughput one transfer per cycle. It stalls only on backpressure: ``i.ready`` is low exactly while
    an output is held and ``o.ready`` is low. Stateless apart from the output register: the caller owns
    the membrane storage.

    Parameters
    ----------
    lanes : int
        Neurons updated per transfer (P).
    acc_bits : int
        Width of ``v``, ``x``, ``th`` (two's complement); defaults to the shared format.
    """

    def __init__(self, lanes: int, acc_bits: int = FORMATS.acc_bits):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"LIFUpdate lanes must be a positive integer, got {lanes!r}")
        if not isinstance(acc_bits, int) or acc_bits < 2:
            raise ValueError(f"LIFUpdate acc_bits must be an integer >= 2, got {acc_bits!r}")
        self.latency = LIF_LATENCY
        self.lanes = lanes
        self.acc_bits = acc_bits
        super().__init__({
            "i": In(stream.Signature(lif_in_layout(lanes, acc_bits))),
            "o": Out(stream.Signature(lif_out_layout(lanes, acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        # A one-deep pipeline: accept whenever the output register is empty or being emptied.
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        with m.If(self.i.valid & self.i.ready):
            p = self.i.payload
            for lane in range(self.lanes):
                spike, v_next, _ = lif_lane(m, p.v[lane], p.x[lane], p.th[lane], self.acc_bits, f"{lane}")
                m.d.sync += [self.o.payload.spike[lane].eq(spike), self.o.payload.v[lane].eq(v_next)]
        return m
