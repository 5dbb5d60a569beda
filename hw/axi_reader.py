"""An AXI read master: a command's run of 64-bit beats read from memory (DDR, through the PYNQ-Z2's HP ports),
out as a stream. The first piece of weights and state in DDR (issue 11): the sequencer will ask it for weight
tiles and membrane rows.

``AxiReader`` takes a command (``addr``: the byte address, a multiple of the beat's bytes; ``beats``: how many)
and issues INCR bursts of at most ``burst`` beats (16: the Zynq-7000 HP ports are AXI3, whose bursts are 16
beats at most), each inside one aligned block of ``burst`` beats, so no burst crosses a 4 KiB boundary, with up
to ``outstanding`` bursts in flight. The read data goes out on ``o`` in order (ID 0 throughout: the slave
answers in order), ``last`` on the command's last beat; ``rready`` is ``o.ready``, so backpressure on ``o`` holds
the read channel. A read response other than OKAY sets ``error`` (sticky until ``clear``) and keeps the first
such response in ``resp``; the data still flows, so a command always ends (the consumer decides what an error
means). ``busy`` holds from a command's acceptance to its last beat; a command of 0 beats does nothing. A read
that never returns is the consumer's time-out to catch (the driver's, through the core's status).

Ports are the AXI signal names (Verilog ``<port>__araddr`` etc.: cocotbext-axi's ``AxiReadBus.from_prefix(dut,
"m_axi", bus_separator="__")``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

BURST = 16          # beats: the AXI3 limit of the Zynq-7000 HP ports
OUTSTANDING = 4     # bursts in flight
OKAY = 0


def axi_read_signature(addr_bits: int = 32, data_bits: int = 64, id_bits: int = 1) -> wiring.Signature:
    """An AXI4 read channel pair as the master sees it (AR out, R in); ``arlen`` is 8 bits (AXI4), used up to
    ``BURST - 1``."""
    return wiring.Signature({
        "arid": Out(id_bits), "araddr": Out(addr_bits), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
        "arlock": Out(1), "arcache": Out(4), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    })


def command_layout(addr_bits: int = 32, beat_count_bits: int = 16) -> data.StructLayout:
    return data.StructLayout({"addr": addr_bits, "beats": beat_count_bits})


def beat_layout(data_bits: int = 64) -> data.StructLayout:
    return data.StructLayout({"data": data_bits, "last": 1})


def check_shape(who: str, data_bits: int, burst: int, outstanding: int):
    """ValueError unless ``burst`` and ``outstanding`` are powers of two >= 1 (burst <= 256, AXI4's INCR limit)
    and ``data_bits`` is a power of two of whole bytes."""
    for name, v in (("burst", burst), ("outstanding", outstanding)):
        if v < 1 or v & (v - 1):
            raise ValueError(f"{who} {name} must be a power of two >= 1, got {v}")
    if burst > 256:
        raise ValueError(f"{who} burst must be at most 256 beats (AXI4 INCR), got {burst}")
    if data_bits % 8 or data_bits & (data_bits - 1):
        raise ValueError(f"{who} data_bits must be a power of two of whole bytes, got {data_bits}")


class AxiReader(wiring.Component):
    """See the module docstring. ``burst`` and ``outstanding`` are powers of two >= 1."""

    def __init__(self, addr_bits: int = 32, data_bits: int = 64, *, burst: int = BURST,
                 outstanding: int = OUTSTANDING, beat_count_bits: int = 16):
        check_shape("AxiReader", data_bits, burst, outstanding)
        self.addr_bits, self.data_bits, self.burst, self.outstanding = addr_bits, data_bits, burst, outstanding
        self.beat_bytes = data_bits // 8
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_bits, beat_count_bits))),
            "o": Out(stream.Signature(beat_layout(data_bits))),
            "m_axi": Out(axi_read_signature(addr_bits, data_bits)),
            "busy": Out(1), "error": Out(1), "resp": Out(2), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ax = self.m_axi
        shift = (self.beat_bytes - 1).bit_length()          # byte address -> beat address
        beat_bits = self.addr_bits - shift
        cnt = len(self.cmd.payload.beats)
        beat = Signal(beat_bits)                 # the next burst's first beat address
        ar_left = Signal(cnt)                    # beats still to request
        r_left = Signal(cnt)                     # beats still to come back
        in_flight = Signal(range(self.outstanding + 1))

        # the next burst: up to the end of its aligned block of `burst` beats, and no further than the command
        to_block = self.burst - beat[:max(1, (self.burst - 1).bit_length())] if self.burst > 1 else 1
        length = Signal(range(self.burst + 1))
        m.d.comb += length.eq(Mux(ar_left < to_block, ar_left, to_block))

        m.d.comb += [ax.arid.eq(0), ax.araddr.eq(beat << shift), ax.arlen.eq(length - 1), ax.arsize.eq(shift),
                     ax.arburst.eq(1), ax.arlock.eq(0), ax.arcache.eq(0b0011), ax.arprot.eq(0)]
        m.d.comb += ax.arvalid.eq((ar_left != 0) & (in_flight != self.outstanding))
        issued = ax.arvalid & ax.arready
        with m.If(issued):
            m.d.sync += [beat.eq(beat + length), ar_left.eq(ar_left - length)]

        # read data straight out: the consumer's ready is the read channel's
        m.d.comb += [self.o.valid.eq(ax.rvalid & (r_left != 0)), self.o.payload.data.eq(ax.rdata),
                     self.o.payload.last.eq(r_left == 1), ax.rready.eq(self.o.ready & (r_left != 0))]
        got = ax.rvalid & ax.rready
        burst_done = got & ax.rlast
        with m.If(got):
            m.d.sync += r_left.eq(r_left - 1)
            with m.If((ax.rresp != OKAY) & ~self.error):
                m.d.sync += [self.error.eq(1), self.resp.eq(ax.rresp)]
        m.d.sync += in_flight.eq(in_flight + issued - burst_done)
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.resp.eq(OKAY)]

        # one command at a time: the next once every beat of this one is out
        m.d.comb += [self.busy.eq(r_left != 0), self.cmd.ready.eq(r_left == 0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            c = self.cmd.payload
            m.d.sync += [beat.eq(c.addr >> shift), ar_left.eq(c.beats), r_left.eq(c.beats)]
        return m
