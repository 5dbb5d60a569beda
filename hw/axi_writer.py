"""An AXI write master: a command's run of 64-bit beats, taken from a stream, written to memory (DDR, through
the PYNQ-Z2's HP ports). With ``hw.axi_reader.AxiReader``, the second piece of weights and state in DDR
(issue 11): the sequencer will write membrane rows back with it.

``AxiWriter`` takes a command (``addr``: the byte address, its low bits below a beat ignored; ``beats``: how
many) and writes the next ``beats`` beats of ``i`` there in INCR bursts of at most ``burst`` beats, each inside
one aligned block of ``burst`` beats (so none crosses a 4 KiB boundary), every byte strobed. A burst's data
follows its address (from the next cycle, or right after the burst before); up to ``outstanding`` bursts
wait for their write response. A response other than OKAY sets ``error`` (sticky until ``clear``) and
keeps the first such response in ``resp``. ``busy`` holds from a command's acceptance until the last burst's
response; the next command is taken then, so when ``busy`` falls the data is in memory. A command of 0 beats
does nothing. ``i.last`` is not used: the command's count decides.

Ports are the AXI signal names (Verilog ``<port>__awaddr`` etc.: cocotbext-axi's ``AxiWriteBus.from_prefix(dut,
"m_axi", bus_separator="__")``).
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi_reader import BURST, OKAY, OUTSTANDING, beat_layout, check_shape, command_layout


def axi_write_signature(addr_bits: int = 32, data_bits: int = 64, id_bits: int = 1) -> wiring.Signature:
    """An AXI4 write channel triple as the master sees it (AW and W out, B in)."""
    return wiring.Signature({
        "awid": Out(id_bits), "awaddr": Out(addr_bits), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
        "awlock": Out(1), "awcache": Out(4), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    })


class AxiWriter(wiring.Component):
    """See the module docstring. ``burst`` and ``outstanding`` are powers of two >= 1."""

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, *, burst: int = BURST,
                 outstanding: int = OUTSTANDING, beat_count_bits: int = 16):
        check_shape("AxiWriter", data_bits, burst, outstanding)
        self.addr_bits, self.data_bits, self.burst, self.outstanding = addr_bits, data_bits, burst, outstanding
        self.beat_bytes = data_bits // 8
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_bits, beat_count_bits))),
            "i": In(stream.Signature(beat_layout(data_bits))),
            "m_axi": Out(axi_write_signature(addr_bits, data_bits)),
            "busy": Out(1), "error": Out(1), "resp": Out(2), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ax = self.m_axi
        shift = (self.beat_bytes - 1).bit_length()
        cnt = len(self.cmd.payload.beats)
        beat = Signal(self.addr_bits - shift)    # the next burst's first beat address
        aw_left = Signal(cnt)                    # beats whose address is still to go out
        w_left = Signal(cnt)                     # beats still to write
        b_wait = Signal(range(self.outstanding + 1))   # bursts addressed whose response has not come
        w_in_burst = Signal(range(self.burst + 1))      # beats left in the burst the W channel is in
        w_bursts = Signal(range(self.outstanding + 1))  # bursts addressed whose data has not all gone
        lens = [Signal(range(self.burst + 1), name=f"len{k}") for k in range(self.outstanding)]
        wr_ptr, rd_ptr = Signal(range(self.outstanding)), Signal(range(self.outstanding))

        to_block = self.burst - beat[:max(1, (self.burst - 1).bit_length())] if self.burst > 1 else 1
        length = Signal(range(self.burst + 1))
        m.d.comb += length.eq(Mux(aw_left < to_block, aw_left, to_block))

        # AW: a burst's address, while fewer than `outstanding` bursts wait for their response; its length is
        # queued for the W channel (which follows the addresses in order)
        m.d.comb += [ax.awid.eq(0), ax.awaddr.eq(beat << shift), ax.awlen.eq(length - 1), ax.awsize.eq(shift),
                     ax.awburst.eq(1), ax.awlock.eq(0), ax.awcache.eq(0b0011), ax.awprot.eq(0),
                     ax.awvalid.eq((aw_left != 0) & (b_wait != self.outstanding))]
        issued = ax.awvalid & ax.awready
        with m.If(issued):
            m.d.sync += [beat.eq(beat + length), aw_left.eq(aw_left - length),
                         wr_ptr.eq(wr_ptr + 1)]
            with m.Switch(wr_ptr):
                for k in range(self.outstanding):
                    with m.Case(k):
                        m.d.sync += lens[k].eq(length)

        # W: the input's beats, burst after burst as addressed (a burst's data starts the cycle after its
        # address, or right after the burst before); WLAST on each burst's last beat
        in_burst = w_in_burst != 0
        m.d.comb += [ax.wdata.eq(self.i.payload.data), ax.wstrb.eq((1 << self.beat_bytes) - 1),
                     ax.wlast.eq(w_in_burst == 1), ax.wvalid.eq(in_burst & self.i.valid),
                     self.i.ready.eq(in_burst & ax.wready)]
        sent = ax.wvalid & ax.wready
        start_next = (~in_burst | (sent & ax.wlast)) & (w_bursts != 0)
        with m.If(start_next):
            m.d.sync += [w_in_burst.eq(Array(lens)[rd_ptr]), rd_ptr.eq(rd_ptr + 1)]
        with m.Elif(sent):
            m.d.sync += w_in_burst.eq(w_in_burst - 1)
        with m.If(sent):
            m.d.sync += w_left.eq(w_left - 1)
        m.d.sync += w_bursts.eq(w_bursts + issued - start_next)

        # B: count the responses; keep the first error
        m.d.comb += ax.bready.eq(1)
        got = ax.bvalid & ax.bready
        with m.If(got & (ax.bresp != OKAY) & ~self.error):
            m.d.sync += [self.error.eq(1), self.resp.eq(ax.bresp)]
        m.d.sync += b_wait.eq(b_wait + issued - got)
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.resp.eq(OKAY)]

        idle = (aw_left == 0) & (w_left == 0) & (b_wait == 0)
        m.d.comb += [self.busy.eq(~idle), self.cmd.ready.eq(idle)]
        with m.If(self.cmd.valid & self.cmd.ready):
            c = self.cmd.payload
            m.d.sync += [beat.eq(c.addr >> shift), aw_left.eq(c.beats), w_left.eq(c.beats)]
        return m
