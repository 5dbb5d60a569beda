"""An AXI write master: a command's run of beats, taken from a stream, written to memory (DDR, through the
PYNQ-Z2's HP ports). With ``hw.axi_reader.AxiReader``, the second piece of weights and state in DDR
(issue 11): the sequencer will write membrane rows back with it.

``AxiWriter`` serves a command ``(addr, beats)`` by writing the next ``beats`` beats of ``i`` in the bursts of
``hw.axi_master`` (at most ``burst`` beats, each inside its aligned block, none across 4 KiB), every byte
strobed. A burst's data follows its address (the lengths wait in a FIFO for the W channel: from the
second cycle after the address, or right after the burst before); up to ``outstanding`` bursts wait for
their write response. The next command is taken as soon as this one's last burst is addressed
(``cmd.ready``), so commands follow each other on the bus without waiting for their responses. A response
other than OKAY sets the sticky ``error`` (``resp``: the first one). ``busy`` holds from a command's
acceptance until every burst taken has its response, so when ``busy`` falls the data is in memory. A
command of 0 beats does nothing. ``i.last`` is not used: the command's count decides.
``dynaspike.ddr.write_schedule`` gives each command's acceptance and last response against a memory that
answers a fixed number of cycles after a burst's last beat.

Ports are the AXI signal names (Verilog ``<port>__awaddr`` etc.: cocotbext-axi's ``AxiWriteBus.from_prefix(dut,
"m_axi", bus_separator="__")``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dynaspike.ddr import BURST, OUTSTANDING

from .axi_master import AxiMaster, address_members


def axi_write_signature(addr_bits: int = 32, data_bits: int = 64, id_bits: int = 1) -> wiring.Signature:
    """An AXI4 write channel triple as the master sees it (AW and W out, B in)."""
    return wiring.Signature({
        **address_members("aw", addr_bits, id_bits),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    })


class AxiWriter(AxiMaster):
    """See the module docstring."""

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, *, burst: int = BURST,
                 outstanding: int = OUTSTANDING, beat_count_bits: int = 16):
        super().__init__("i", In, axi_write_signature(addr_bits, data_bits), addr_bits, data_bits, burst,
                         outstanding, beat_count_bits)

    def elaborate(self, platform):
        m = Module()
        ax = self.m_axi
        b_wait = Signal(range(self.outstanding + 1))    # bursts addressed whose response has not come
        w_in_burst = Signal(range(self.burst + 1))       # beats left in the burst the W channel is in
        # the addressed bursts' lengths, in order, for the W channel (at most `outstanding` wait for a response)
        m.submodules.lengths = lengths = SyncFIFO(width=len(w_in_burst), depth=self.outstanding)
        issued, length, aw_left = self.bursts(m, "aw", b_wait != self.outstanding, [])
        m.d.comb += [lengths.w_en.eq(issued), lengths.w_data.eq(length)]
        # busy: bursts still to address, or addressed ones without their response (which follows their data)
        m.d.comb += [self.busy.eq((aw_left != 0) | (b_wait != 0)), self.cmd.ready.eq(aw_left == 0)]

        # W: the input's beats, burst after burst as addressed; WLAST on each burst's last beat
        in_burst = w_in_burst != 0
        m.d.comb += [ax.wdata.eq(self.i.payload.data), ax.wstrb.eq((1 << self.beat_bytes) - 1),
                     ax.wlast.eq(w_in_burst == 1), ax.wvalid.eq(in_burst & self.i.valid),
                     self.i.ready.eq(in_burst & ax.wready)]
        sent = ax.wvalid & ax.wready
        start_next = (~in_burst | (sent & ax.wlast)) & lengths.r_rdy
        m.d.comb += lengths.r_en.eq(start_next)
        with m.If(start_next):
            m.d.sync += w_in_burst.eq(lengths.r_data)
        with m.Elif(sent):
            m.d.sync += w_in_burst.eq(w_in_burst - 1)

        # B: count the responses; keep the first error
        m.d.comb += ax.bready.eq(1)
        got = ax.bvalid & ax.bready
        self.responses(m, got, ax.bresp)
        m.d.sync += b_wait.eq(b_wait + issued - got)
        return m
