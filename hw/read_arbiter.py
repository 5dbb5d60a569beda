"""One AXI read channel shared by several clients (issue 11; docs/hardware.md "DDR mode", plan item 2): the
tile loader's weight tiles and the membrane rows both come through the HP port's one AR/R pair.

``ReadArbiter`` sits in front of one ``hw.axi_reader.AxiReader``. It passes one client's command at a time
to the reader's ``cmd`` (round robin: when several offer in the same cycle, the first after the client
granted last wins), notes in a FIFO which client each command with beats was, and routes the reader's beats
(``o``, in command order: AXI returns one ID's reads in order) to that client's ``outs[k]`` up to the
command's ``last``; the client's ``ready`` is the reader's, so a client's backpressure holds the channel.

Both paths are combinational: a command reaches the reader in the cycle its client offers it, and a beat
reaches its client in the cycle the reader has it, so ``dynaspike.ddr.shared_read_beats`` (the order the
arbiter grants, then ``read_beats``) gives the timing of every command and beat exactly. The FIFO holds
``OUTSTANDING + 1`` commands: every command in it but the one being addressed has a burst in flight, so it
never fills (it is checked anyway: a command waits while it is full). A command of 0 beats passes to the
reader, which does nothing with it, and takes no FIFO entry.

``SharedReader`` is the pair as the core uses it: the arbiter and the reader behind one AXI read port.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from dynaspike.ddr import BURST, OUTSTANDING

from .axi_master import beat_layout, command_layout
from .axi_reader import AxiReader, axi_read_signature
from .params import check_ints


class ReadArbiter(wiring.Component):
    """See the module docstring. Ports: ``cmds`` (In, one command stream per client), ``outs`` (Out, one beat
    stream per client), ``cmd`` (Out, to the reader's ``cmd``), ``i`` (In, the reader's ``o``), ``busy``
    (a command's beats still to come)."""

    def __init__(self, clients: int = 2, *, addr_bits: int = 32, data_bits: int = 64, beat_count_bits: int = 16,
                 depth: int = OUTSTANDING + 1):
        check_ints("ReadArbiter", clients=(clients, 2), depth=(depth, 1))
        self.clients, self.depth = clients, depth
        cmd, beat = command_layout(addr_bits, beat_count_bits), beat_layout(data_bits)
        super().__init__({
            "cmds": In(stream.Signature(cmd)).array(clients),
            "outs": Out(stream.Signature(beat)).array(clients),
            "cmd": Out(stream.Signature(cmd)),
            "i": In(stream.Signature(beat)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.clients
        m.submodules.owners = owners = SyncFIFO(width=max(1, (n - 1).bit_length()), depth=self.depth)
        last = Signal(range(n), init=n - 1)        # the client granted last: client 0 has the first turn
        grant = Signal(range(n))
        # round robin: the first offering client after `last` (a chain from the lowest priority up, so the
        # highest-priority assignment comes last and wins)
        for k in reversed(range(1, n + 1)):
            for cur in range(n):
                with m.If((last == cur) & self.cmds[(cur + k) % n].valid):
                    m.d.comb += grant.eq((cur + k) % n)
        offered = Signal()
        m.d.comb += offered.eq(Cat(c.valid for c in self.cmds).any())
        for k in range(n):
            with m.If(grant == k):
                m.d.comb += self.cmd.payload.eq(self.cmds[k].payload)
        # (a client that starts offering while another waits may take the offer over before the reader is ready:
        # the reader takes whatever is offered when it is, so the offer needs no holding)
        room = owners.w_rdy
        m.d.comb += self.cmd.valid.eq(offered & room)
        for k in range(n):
            m.d.comb += self.cmds[k].ready.eq((grant == k) & self.cmd.ready & room)
        taken = self.cmd.valid & self.cmd.ready
        with m.If(taken):
            m.d.sync += last.eq(grant)
        m.d.comb += [owners.w_en.eq(taken & (self.cmd.payload.beats != 0)), owners.w_data.eq(grant)]

        # the beats to the client whose command is at the FIFO's head
        head = owners.r_data
        for k in range(n):
            m.d.comb += [self.outs[k].payload.eq(self.i.payload),
                         self.outs[k].valid.eq(self.i.valid & owners.r_rdy & (head == k))]
            with m.If(head == k):
                m.d.comb += self.i.ready.eq(owners.r_rdy & self.outs[k].ready)
        m.d.comb += owners.r_en.eq(self.i.valid & self.i.ready & self.i.payload.last)
        m.d.comb += self.busy.eq(owners.r_rdy)
        return m


class SharedReader(wiring.Component):
    """A ``ReadArbiter`` in front of an ``AxiReader``: one AXI read port (``m_axi``) for ``clients`` clients,
    each with its command stream ``cmds[k]`` and beat stream ``outs[k]``; ``busy`` (a command still being
    read), ``error``, ``resp`` and ``clear`` are the reader's (one sticky error for the port)."""

    def __init__(self, clients: int = 2, *, addr_bits: int = 32, data_bits: int = 64, burst: int = BURST,
                 outstanding: int = OUTSTANDING, beat_count_bits: int = 16):
        check_ints("SharedReader", clients=(clients, 2))
        # the parts are made in elaborate (one made here and never elaborated would warn)
        self.clients, self.addr_bits, self.data_bits = clients, addr_bits, data_bits
        self.burst, self.outstanding, self.beat_count_bits = burst, outstanding, beat_count_bits
        super().__init__({
            "cmds": In(stream.Signature(command_layout(addr_bits, beat_count_bits))).array(clients),
            "outs": Out(stream.Signature(beat_layout(data_bits))).array(clients),
            "m_axi": Out(axi_read_signature(addr_bits, data_bits)),
            "busy": Out(1), "error": Out(1), "resp": Out(2), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        arb = ReadArbiter(self.clients, addr_bits=self.addr_bits, data_bits=self.data_bits,
                          beat_count_bits=self.beat_count_bits, depth=self.outstanding + 1)
        reader = AxiReader(self.addr_bits, self.data_bits, burst=self.burst, outstanding=self.outstanding,
                           beat_count_bits=self.beat_count_bits)
        m.submodules.arb, m.submodules.reader = arb, reader
        for k in range(self.clients):
            wiring.connect(m, wiring.flipped(self.cmds[k]), arb.cmds[k])
            wiring.connect(m, arb.outs[k], wiring.flipped(self.outs[k]))
        wiring.connect(m, arb.cmd, reader.cmd)
        wiring.connect(m, reader.o, arb.i)
        wiring.connect(m, reader.m_axi, wiring.flipped(self.m_axi))
        m.d.comb += [self.busy.eq(arb.busy | reader.busy), self.error.eq(reader.error), self.resp.eq(reader.resp),
                     reader.clear.eq(self.clear)]
        return m
