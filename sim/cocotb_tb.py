"""Shared cocotb pieces: clock and reset, Amaranth stream ports through cocotbext-axi, cycle stamps.

An Amaranth stream port ``i`` appears in the Verilog as ``i__payload``, ``i__valid``, ``i__ready``; the
payload is the flat bit vector of its ``data`` layout, packed and unpacked here with the same Amaranth
layout object the RTL uses (one source of truth for the bit positions).
"""

import logging
import random

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi.stream import define_stream

PayloadBus, PayloadTransaction, PayloadSource, PayloadSink, PayloadMonitor = define_stream(
    "Payload", signals=["payload", "valid", "ready"])

CLOCK_NS = 10  # 100 MHz, the PYNQ-Z2's FCLK0
TIMEOUT_MS = 2  # simulated time per cocotb test (200,000 cycles): a deadlocked design fails, never hangs


_clock = None


async def start(dut, reset_cycles: int = 2):
    """Start the clock (once per cocotb test) and hold reset for ``reset_cycles`` cycles."""
    global _clock
    # cocotb cancels a test's tasks when it ends, so a finished task means a new test: start a clock.
    if _clock is None or _clock.done():
        _clock = Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, reset_cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def pack(layout, value) -> int:
    """A Python value (dict/list/int) as the flat integer of ``layout``'s bits."""
    return layout.const(value).as_bits()


def unpack(layout, bits) -> data.Const:
    """The integer seen on a payload port as a ``data.Const`` view of ``layout`` (fields and indexing)."""
    return data.Const(layout, int(bits))


def source(dut, prefix: str, idle: float = 0.0, seed: int = 0):
    """A cocotbext-axi source on stream port ``prefix``, idling with probability ``idle`` per cycle."""
    src = PayloadSource(PayloadBus.from_prefix(dut, prefix, bus_separator="__"), dut.clk, dut.rst)
    if idle:
        src.set_pause_generator(_pauses(idle, seed))
    return src


def sink(dut, prefix: str, stall: float = 0.0, seed: int = 1):
    """A cocotbext-axi sink on stream port ``prefix``, dropping ready with probability ``stall`` per cycle."""
    snk = PayloadSink(PayloadBus.from_prefix(dut, prefix, bus_separator="__"), dut.clk, dut.rst)
    if stall:
        snk.set_pause_generator(_pauses(stall, seed))
    return snk


def axi_ram(dut, ram_cls, bus_cls, size: int, pause: float = 0.0, seed: int = 0, prefix: str = "m_axi", mem=None):
    """A cocotbext-axi RAM model (``AxiRamRead``, ``AxiRamWrite`` with ``AxiReadBus``, ``AxiWriteBus``) of
    ``size`` bytes on the AXI master port ``prefix``, each of its channels paused with probability ``pause``
    per cycle (``mem``: another RAM model's ``mem``, so that a read and a write port see one memory). One per
    cocotb test: its coroutines run until the test ends."""
    ram = ram_cls(bus_cls.from_prefix(dut, prefix, bus_separator="__"), dut.clk, dut.rst, size=size, mem=mem)
    ram.log.setLevel(logging.WARNING)
    if pause:
        names = ("ar_channel", "r_channel", "aw_channel", "w_channel", "b_channel")
        for k, ch in enumerate(getattr(ram, n) for n in names if hasattr(ram, n)):
            ch.set_pause_generator(_pauses(pause, seed + 1 + k))
    return ram


def _pauses(p: float, seed: int):
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


class TransferLog:
    """Record the clock cycle (counted from its start) of every transfer on some stream ports."""

    def __init__(self, dut, *prefixes):
        self.dut = dut
        self.ports = {p: (getattr(dut, f"{p}__valid"), getattr(dut, f"{p}__ready")) for p in prefixes}
        self.cycles = {p: [] for p in prefixes}
        self.cycle = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()  # values that the edge just registered are visible in the next cycle
            # Sample the handshakes of the cycle that ends at the *next* edge.
            for p, (valid, ready) in self.ports.items():
                if int(valid.value) and int(ready.value):
                    self.cycles[p].append(self.cycle)
            self.cycle += 1
