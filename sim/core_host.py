"""The host side of the core in cocotb: AXI4-Lite registers and the two AXI4-Stream ports, as coroutines.

``CoreHost(dut)`` wraps cocotbext-axi's AxiLiteMaster, AxiStreamSource and AxiStreamSink on the core's
``s_axil``, ``s_axis`` and ``m_axis`` ports; packets are ``dynaspike.packing`` beats (uint64 arrays).
Register offsets come from ``dynaspike.regmap`` only.
"""

import logging

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from dynaspike import regmap
from sim import cocotb_tb as tb

REG = regmap.REG


class CoreError(RuntimeError):
    """The core reported STATUS.ERROR."""


def axi_ports(dut):
    """cocotbext-axi's master on ``s_axil``, source on ``s_axis`` and sink on ``m_axis`` of the core."""
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"), dut.clk, dut.rst)
    src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis", bus_separator="__"), dut.clk, dut.rst)
    snk = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis", bus_separator="__"), dut.clk, dut.rst)
    for part in (axil.write_if, axil.read_if, src, snk):
        part.log.setLevel(logging.WARNING)  # frame dumps would drown the failure messages
    return axil, src, snk


class CoreHost:
    def __init__(self, dut, idle: float = 0.0, stall: float = 0.0, seed: int = 0):
        self.dut = dut
        self.axil, self.src, self.snk = axi_ports(dut)
        if idle:
            self.src.set_pause_generator(tb._pauses(idle, seed))
        if stall:
            self.snk.set_pause_generator(tb._pauses(stall, seed + 1))

    async def read(self, name: str, offset: int = 0) -> int:
        return await self.axil.read_dword(REG[name].offset + offset)

    async def write(self, name: str, value: int):
        await self.axil.write_dword(REG[name].offset, value)

    async def read64(self, name: str) -> int:
        lo = await self.read(name)
        return lo | (await self.read(name, 4)) << 32

    async def status(self) -> dict:
        word = await self.read("STATUS")
        return {f.name: f.get(word) for f in REG["STATUS"].fields}

    async def check_error(self):
        st = await self.status()
        if st["ERROR"]:
            code = await self.read("ERROR_CODE")
            raise CoreError(f"core error {regmap.ErrorCode.name(code)} at beat {await self.read('ERROR_BEAT')}")
        return st

    async def send(self, beats):
        await self.src.send(AxiStreamFrame(np.asarray(beats, dtype="<u8").tobytes()))

    async def recv(self) -> np.ndarray:
        frame = await self.snk.recv()
        return np.frombuffer(bytes(frame.tdata), dtype="<u8").astype(np.uint64)

    async def ctrl(self, *bits):
        await self.write("CTRL", sum(REG["CTRL"].field(b).put(1) for b in bits))

    async def load_model(self, beats, max_polls: int = 10_000):
        await self.send(beats)
        await self.src.wait()
        for _ in range(max_polls):
            st = await self.check_error()
            if st["MODEL_LOADED"] and not st["LOADING"]:
                return
            await ClockCycles(self.dut.clk, 20)
        raise TimeoutError("model never loaded")

    async def run_stream(self, packets, dense: bool = False) -> dict:
        """RUN_CONFIG.STREAM: every image packet queued at once (back to back, no idle cycle between them on a
        source without pauses); return ``{"results": [RESULT beats], "first": cycle, "ends": [cycle]}``: the
        cycle the first image's first payload beat enters the core and the cycles each RESULT trailer
        leaves it (one cycle count for both: ``cycle_model.stream_ends`` predicts ``ends - first``)."""
        rc = REG["RUN_CONFIG"]
        await self.write("RUN_CONFIG", rc.field("STREAM").put(1) | rc.field("FORCE_DENSE").put(int(dense)))
        clock = {"first": None, "ends": [], "in": 0}
        d = self.dut

        async def watch():
            cycle = 0
            while True:
                await RisingEdge(d.clk)
                await ReadOnly()
                if d.s_axis__tvalid.value == 1 and d.s_axis__tready.value == 1:
                    if clock["in"] == 2:                 # header beats 0 and 1, then the payload
                        clock["first"] = cycle
                    clock["in"] += 1
                if d.m_axis__tvalid.value == 1 and d.m_axis__tready.value == 1 and d.m_axis__tlast.value == 1:
                    clock["ends"].append(cycle)
                cycle += 1

        watcher = cocotb.start_soon(watch())
        for beats in packets:
            await self.send(beats)
        results = [await self.recv() for _ in packets]
        watcher.cancel()
        await self.check_error()
        return {"results": [[int(x) for x in r] for r in results], "first": clock["first"], "ends": clock["ends"]}

    async def run_image(self, beats, taps: bool = False, dense: bool = False, start_first: bool = False):
        """Send an image packet and START; return ``(tap beats or None, result beats, counters)``."""
        rc = REG["RUN_CONFIG"]
        await self.write("RUN_CONFIG", rc.field("DEBUG_TAPS").put(int(taps)) | rc.field("FORCE_DENSE").put(int(dense)))
        if start_first:
            await self.ctrl("START")
            await self.send(beats)
        else:
            await self.send(beats)
            # Let the image's first beats reach the parser before START: the cycle count starts at the
            # first image beat taken after START either way.
            await ClockCycles(self.dut.clk, 4)
            await self.ctrl("START")
        tap = await self.recv() if taps else None
        result = await self.recv()
        for _ in range(100):
            st = await self.check_error()
            if st["DONE"]:
                break
            await RisingEdge(self.dut.clk)
        counters = {"CYCLES": await self.read64("CYCLES")}
        for name, _ in regmap.PERF_COUNTERS:
            counters[name] = await self.read(name)
        return tap, result, counters
