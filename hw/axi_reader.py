"""An AXI read master: a command's run of beats read from memory (DDR, through the PYNQ-Z2's HP ports), out
as a stream. The first piece of weights and state in DDR (issue 11): ``hw.tile_loader.TileLoader`` asks it
for weight tiles; the sequencer will ask it for membrane rows.

``AxiReader`` serves a command ``(addr, beats)`` in the bursts of ``hw.axi_master`` (at most ``burst`` beats,
each inside its aligned block, none across 4 KiB), with up to ``outstanding`` bursts in flight. The next
command is taken as soon as this one's last burst is addressed (``cmd.ready``), so the commands' reads
follow each other on the bus without waiting for each other's data. The read data goes out on ``o`` in
order, ``last`` on each command's last beat (a flag per burst in flight says whether it ends its
command); ``rready`` is ``o.ready``, so backpressure on ``o`` holds the read channel. A read response other
than OKAY sets the sticky ``error`` (``resp``: the first one); the data still flows. ``busy`` holds from a
command's acceptance to the last beat of every command taken; a command of 0 beats does nothing. A read
that never returns is the consumer's time-out to catch (the driver's, through the core's status).
``dynaspike.ddr.read_schedule`` gives the cycle of every command's acceptance and last beat against a
memory of a fixed latency.

Ports are the AXI signal names (Verilog ``<port>__araddr`` etc.: cocotbext-axi's ``AxiReadBus.from_prefix(dut,
"m_axi", bus_separator="__")``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dynaspike.ddr import BURST, OUTSTANDING

from .axi_master import AxiMaster, address_members


def axi_read_signature(addr_bits: int = 32, data_bits: int = 64, id_bits: int = 1) -> wiring.Signature:
    """An AXI4 read channel pair as the master sees it (AR out, R in); ``arlen`` is 8 bits (AXI4)."""
    return wiring.Signature({
        **address_members("ar", addr_bits, id_bits),
        "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    })


class AxiReader(AxiMaster):
    """See the module docstring."""

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, *, burst: int = BURST,
                 outstanding: int = OUTSTANDING, beat_count_bits: int = 16):
        super().__init__("o", Out, axi_read_signature(addr_bits, data_bits), addr_bits, data_bits, burst,
                         outstanding, beat_count_bits)

    def elaborate(self, platform):
        m = Module()
        ax = self.m_axi
        in_flight = Signal(range(self.outstanding + 1))  # bursts addressed whose last beat has not come
        # per burst in flight, in order: does it end its command?
        m.submodules.ends = ends = SyncFIFO(width=1, depth=self.outstanding)
        issued, length, ar_left = self.bursts(m, "ar", in_flight != self.outstanding, [])
        m.d.comb += [self.busy.eq((ar_left != 0) | (in_flight != 0)), self.cmd.ready.eq(ar_left == 0)]
        m.d.comb += [ends.w_en.eq(issued), ends.w_data.eq(ar_left == length)]

        # read data straight out: the consumer's ready is the read channel's
        m.d.comb += [self.o.valid.eq(ax.rvalid), self.o.payload.data.eq(ax.rdata),
                     self.o.payload.last.eq(ax.rlast & ends.r_data), ax.rready.eq(self.o.ready)]
        got = ax.rvalid & ax.rready
        m.d.comb += ends.r_en.eq(got & ax.rlast)
        self.responses(m, got, ax.rresp)
        m.d.sync += in_flight.eq(in_flight + issued - (got & ax.rlast))
        return m
