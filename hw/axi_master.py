"""What the AXI read and write masters share (``hw/axi_reader.py``, ``hw/axi_writer.py``): the command and
beat layouts, the checks of their shape, and ``AxiMaster``, their base: a command's burst addresses on the
address channel (AR or AW) and the sticky error of the responses (R or B).

A command ``(addr, beats)`` (``addr`` a byte address, its bits below a beat ignored) is served as INCR bursts
of at most ``burst`` beats (``dynaspike.ddr.BURST``, 16: the Zynq-7000 HP ports are AXI3), each inside one
aligned block of ``burst`` beats, so no burst crosses a 4 KiB boundary, with up to ``outstanding``
(``dynaspike.ddr.OUTSTANDING``) in flight; ID 0 throughout (the slave answers in order). A response other
than OKAY sets ``error`` (sticky until ``clear``) and keeps the first such response in ``resp``; the data
still flows, so a command always ends (its user decides what an error means).
"""

from amaranth.hdl import Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

OKAY = 0


def command_layout(addr_bits: int = 32, beat_count_bits: int = 16) -> data.StructLayout:
    return data.StructLayout({"addr": addr_bits, "beats": beat_count_bits})


def beat_layout(data_bits: int = 64) -> data.StructLayout:
    return data.StructLayout({"data": data_bits, "last": 1})


def address_members(prefix: str, addr_bits: int, id_bits: int) -> dict:
    """The address channel's members as the master sees them (``ar`` or ``aw``: ``araddr`` ...)."""
    return {f"{prefix}{name}": shape for name, shape in (
        ("id", Out(id_bits)), ("addr", Out(addr_bits)), ("len", Out(8)), ("size", Out(3)), ("burst", Out(2)),
        ("lock", Out(1)), ("cache", Out(4)), ("prot", Out(3)), ("valid", Out(1)), ("ready", In(1)))}


class AxiMaster(wiring.Component):
    """The base of ``AxiReader`` and ``AxiWriter``: ports ``cmd`` (In, ``command_layout``), the data stream
    ``data_port`` (``beat_layout``), ``m_axi`` (``axi``), ``busy``, ``error``, ``resp`` and ``clear``.
    ``burst`` and ``outstanding`` are powers of two >= 1 (``burst`` <= 256, AXI4's INCR limit)."""

    def __init__(self, data_port: str, data_dir, axi: wiring.Signature, addr_bits: int, data_bits: int,
                 burst: int, outstanding: int, beat_count_bits: int):
        who = type(self).__name__
        for name, v in (("burst", burst), ("outstanding", outstanding)):
            if v < 1 or v & (v - 1):
                raise ValueError(f"{who} {name} must be a power of two >= 1, got {v}")
        if burst > 256:
            raise ValueError(f"{who} burst must be at most 256 beats (AXI4 INCR), got {burst}")
        if data_bits % 8 or data_bits & (data_bits - 1):
            raise ValueError(f"{who} data_bits must be a power of two of whole bytes, got {data_bits}")
        self.addr_bits, self.data_bits, self.burst, self.outstanding = addr_bits, data_bits, burst, outstanding
        self.beat_bytes = data_bits // 8
        self.shift = (self.beat_bytes - 1).bit_length()      # byte address -> beat address
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_bits, beat_count_bits))),
            data_port: data_dir(stream.Signature(beat_layout(data_bits))),
            "m_axi": Out(axi),
            "busy": Out(1), "error": Out(1), "resp": Out(2), "clear": In(1),
        })

    def bursts(self, m, prefix: str, room, counters) -> tuple:
        """Drive the address channel ``prefix`` (``ar``/``aw``) with the bursts of the command taken on ``cmd``
        (when ``cmd.ready``, which the caller drives): a burst goes out while ``room`` holds. The command's
        beat count is also loaded into each of ``counters`` (the caller's). Returns ``(issued, length, left)``: a
        burst's address handshake this cycle, its beats, and the command's beats still to address."""
        ax, shift = self.m_axi, self.shift
        ch = lambda name: getattr(ax, f"{prefix}{name}")  # noqa: E731
        beat = Signal(self.addr_bits - shift, name=f"{prefix}_beat")   # the next burst's first beat address
        left = Signal.like(self.cmd.payload.beats, name=f"{prefix}_left")   # beats still to address
        # the next burst: up to the end of its aligned block of `burst` beats, and no further than the command
        to_block = self.burst - beat[:max(1, (self.burst - 1).bit_length())] if self.burst > 1 else 1
        length = Signal(range(self.burst + 1), name=f"{prefix}_length")
        m.d.comb += length.eq(Mux(left < to_block, left, to_block))
        m.d.comb += [ch("id").eq(0), ch("addr").eq(beat << shift), ch("len").eq(length - 1), ch("size").eq(shift),
                     ch("burst").eq(1), ch("lock").eq(0), ch("cache").eq(0b0011), ch("prot").eq(0),
                     ch("valid").eq((left != 0) & room)]
        issued = ch("valid") & ch("ready")
        with m.If(issued):
            m.d.sync += [beat.eq(beat + length), left.eq(left - length)]
        with m.If(self.cmd.valid & self.cmd.ready):
            c = self.cmd.payload
            m.d.sync += [beat.eq(c.addr >> shift), left.eq(c.beats)] + [n.eq(c.beats) for n in counters]
        return issued, length, left

    def responses(self, m, got, resp):
        """The sticky error of the responses ``resp`` taken when ``got``; ``clear`` resets it."""
        with m.If(got & (resp != OKAY) & ~self.error):
            m.d.sync += [self.error.eq(1), self.resp.eq(resp)]
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.resp.eq(OKAY)]
