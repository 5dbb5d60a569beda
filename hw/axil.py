"""AXI4-Lite register block: the register map of ``dynaspike.regmap``, generated from its definition.

Nothing here re-declares an offset or a field: every register, its access kind and its fields come from
``dynaspike.regmap.REGISTERS``. The core side sees plain signals:

- ``ctrl`` (Out, fields of CTRL): one-cycle pulses when the host writes 1 to a bit;
- ``run_config`` (Out, fields of RUN_CONFIG) and ``weights_addr`` (Out, 32 bits): the registers' values;
- ``status`` (In, fields of STATUS), ``error_code``, ``error_beat``, ``images_done`` (In, 32 bits),
  ``cycles`` (In, 64 bits), ``perf`` (In, one 32-bit value per ``regmap.PERF_COUNTERS`` entry, in order),
  ``model`` (In, one value per ``ModelConfig`` field, in order);
- ID, VERSION and the capacity registers are constants of the build (``capacity`` argument).
"""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from dynaspike import regmap
from dynaspike.packing import STREAM_VERSION

OKAY = 0b00  # AXI response code; this block never answers SLVERR or DECERR


def axi_lite_signature(addr_bits: int = regmap.ADDR_BITS, data_bits: int = regmap.DATA_BITS) -> wiring.Signature:
    """AXI4-Lite as seen by the master (the host); a slave port is ``In(axi_lite_signature())``.

    Member names are the AXI signal names, so the flattened Verilog ports are ``<port>__awaddr`` etc.
    (cocotbext-axi: ``AxiLiteBus.from_prefix(dut, "<port>", bus_separator="__")``).
    """
    return wiring.Signature({
        "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def fields_layout(name: str) -> data.StructLayout:
    """The fields of register ``name`` as a struct layout (bit positions from ``regmap``)."""
    reg = regmap.REG[name]
    layout, pos = {}, 0
    for f in sorted(reg.fields, key=lambda f: f.lsb):
        if f.lsb > pos:
            layout[f"_pad{pos}"] = f.lsb - pos  # keep the struct's bit positions equal to the map's
        layout[f.name.lower()] = f.width
        pos = f.lsb + f.width
    return data.StructLayout(layout)


_STATUS_INPUTS = ("ERROR_CODE", "ERROR_BEAT", "IMAGES_DONE")


class RegisterBlock(wiring.Component):
    """AXI4-Lite slave implementing ``dynaspike.regmap``.

    Contract: a write is accepted when both AW and W are valid and no response is pending (``awready`` and
    ``wready`` rise together, which AXI allows); BVALID follows one cycle later (OKAY). A read is accepted
    when no read data is pending; RVALID follows one cycle later (OKAY). So one write and one read can be
    in flight; each takes at least two cycles. Bytes whose WSTRB bit is 0 are not written. Unlisted
    offsets read 0 and ignore writes; read-only registers ignore writes. Reading a 64-bit register's LO
    word snapshots its HI word, which the following HI read returns.

    Parameters
    ----------
    capacity : dynaspike.regmap.Capacity
        The build's capacity, read back from the capacity registers.
    """

    def __init__(self, capacity: regmap.Capacity):
        if not isinstance(capacity, regmap.Capacity):
            raise TypeError(f"RegisterBlock needs a dynaspike.regmap.Capacity, got {capacity!r}")
        self.capacity = capacity
        n_model = sum(1 for r in regmap.REGISTERS if r.name.startswith("MODEL_"))
        super().__init__({
            "axil": In(axi_lite_signature()),
            "ctrl": Out(fields_layout("CTRL")),
            "run_config": Out(fields_layout("RUN_CONFIG")),
            "weights_addr": Out(32),
            "status": In(fields_layout("STATUS")),
            **{name.lower(): In(32) for name in _STATUS_INPUTS},
            "cycles": In(64),
            "perf": In(data.ArrayLayout(32, len(regmap.PERF_COUNTERS))),
            "model": In(data.ArrayLayout(32, n_model)),
        })

    def _read_values(self):
        """``{offset: 32-bit value}`` of every readable word, except the HI words of 64-bit registers."""
        values = {
            regmap.REG["ID"].offset: Const(regmap.CORE_MAGIC, 32),
            regmap.REG["VERSION"].offset: Const(regmap.REG["VERSION"].field("REGMAP").put(regmap.REGMAP_VERSION)
                                                | regmap.REG["VERSION"].field("STREAM").put(STREAM_VERSION), 32),
            regmap.REG["STATUS"].offset: self.status.as_value(),
            regmap.REG["RUN_CONFIG"].offset: self.run_config.as_value(),
            regmap.REG["WEIGHTS_ADDR"].offset: self.weights_addr,
            regmap.REG["CYCLES"].offset: self.cycles[:32],
        }
        for name in _STATUS_INPUTS:
            values[regmap.REG[name].offset] = getattr(self, name.lower())
        for k, (name, _) in enumerate(regmap.PERF_COUNTERS):
            values[regmap.REG[name].offset] = self.perf[k]
        for offset, value in self.capacity.register_values().items():
            values[offset] = Const(value, 32)
        for k, reg in enumerate(r for r in regmap.REGISTERS if r.name.startswith("MODEL_")):
            values[reg.offset] = self.model[k]
        return values

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        word = lambda addr: addr[2:]  # noqa: E731 -- byte address to word index

        # ---- writes
        m.d.comb += [bus.bresp.eq(OKAY), bus.rresp.eq(OKAY)]
        take_w = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(take_w), bus.wready.eq(take_w)]
        m.d.sync += self.ctrl.eq(0)  # w1p: a pulse lasts one cycle
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(take_w):
            m.d.sync += bus.bvalid.eq(1)
            with m.If(word(bus.awaddr) == regmap.REG["WEIGHTS_ADDR"].offset >> 2):   # a beat's address: bits 2:0 stay 0
                for k in range(4):
                    with m.If(bus.wstrb[k]):
                        m.d.sync += self.weights_addr[max(3, 8 * k):8 * k + 8].eq(bus.wdata[max(3, 8 * k):8 * k + 8])
            with m.If(bus.wstrb[0]):  # CTRL and RUN_CONFIG live in byte 0
                with m.Switch(word(bus.awaddr)):
                    with m.Case(regmap.REG["CTRL"].offset >> 2):
                        m.d.sync += self.ctrl.eq(bus.wdata[:len(self.ctrl.as_value())])
                    with m.Case(regmap.REG["RUN_CONFIG"].offset >> 2):
                        m.d.sync += self.run_config.eq(bus.wdata[:len(self.run_config.as_value())])

        # ---- reads
        cycles_hi = Signal(32)  # snapshot taken when CYCLES LO is read
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0)]
            with m.Switch(word(bus.araddr)):
                for offset, value in sorted(self._read_values().items()):
                    with m.Case(offset >> 2):
                        m.d.sync += bus.rdata.eq(value)
                with m.Case((regmap.REG["CYCLES"].offset + 4) >> 2):
                    m.d.sync += bus.rdata.eq(cycles_hi)
            with m.If(word(bus.araddr) == regmap.REG["CYCLES"].offset >> 2):
                m.d.sync += cycles_hi.eq(self.cycles[32:])
        return m
