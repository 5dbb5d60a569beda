"""The simulated board: the Verilator-built core under cocotb, behind the same synchronous driver calls.

Host side: ``run_in_simulation(fn, lanes, cfg, args)`` converts ``hw.core.Core(lanes, cfg)`` to Verilog,
builds it with Verilator and runs the testbench ``sim/tb_driver.py`` through ``sim.runner.run_cocotb``;
inside the simulator that testbench starts the clock, resets the core, builds a :class:`SimTransport` and
calls ``fn(transport, **args)`` (``fn`` given as ``"module:function"``) in a cocotb bridge thread
(``cocotb.bridge``), so plain blocking code (the driver) runs against the simulation. ``fn``'s return value
(JSON-serialisable) comes back to the host through a JSON file. ``simulate_run`` is the common case: load
a model file and run images on it, returning ``(capacity, RunResult)``.

Inside: each transport call is a coroutine run in the simulation with ``cocotb.resume``: AXI4-Lite reads
and writes with cocotbext-axi's ``AxiLiteMaster``, packets with ``AxiStreamSource`` / ``AxiStreamSink``
(64-bit beats, byte k of a packet's buffer in bits [8k+7:8k] of beat k // 8, exactly as the DMA moves
them; the sink is always ready and the source drives a beat every cycle the core is ready, so the cycles
the core counts are those it needs). The core's AXI read master (the weight tiles of a model in DDR) reads
cocotbext-axi's ``AxiRamRead`` (``RAM_BYTES``; ``place`` writes the buffer into it; its read latency is
``dynaspike.ddr.SIM_RAM_LATENCY``). Time is simulated: the driver's deadlines run on simulated seconds
(``now``) and every wait is capped at ``max_wait_cycles`` clock cycles (``limit``), so a core that never
answers ends in ``DriverTimeout`` after that many cycles instead of hours of simulation.
"""

import importlib
import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DriverError, DriverTimeout
from .base import Transport

TESTBENCH = "tb_driver"
CLOCK_HZ = 100_000_000          # sim.cocotb_tb.CLOCK_NS = 10
MAX_WAIT_CYCLES = 400_000       # 4 ms simulated per wait: far above a model load or an inference
RAM_BYTES = 16 << 20            # the simulated DDR behind the core's m_axi (the seed shape's 7.2 MB of weights fit)
RAM_BASE = 1 << 20              # where place() puts the first buffer


def resolve(ref: str):
    """``"package.module:function"`` -> the function."""
    mod, _, name = ref.partition(":")
    if not name:
        raise ValueError(f"expected 'module:function', got {ref!r}")
    return getattr(importlib.import_module(mod), name)


class SimTransport(Transport):
    """The transport inside the simulator (built by sim/tb_driver.py; every method runs in a bridge thread)."""

    name = "sim"

    def __init__(self, dut, manifest: dict, max_wait_cycles: int = MAX_WAIT_CYCLES, clock_hz: int = CLOCK_HZ):
        from sim.core_host import axi_ports

        self.dut, self._manifest = dut, manifest
        self.max_wait_cycles, self.clock_hz = max_wait_cycles, clock_hz
        self.axil, self.source, self.sink = axi_ports(dut)
        self.ram = None
        if hasattr(dut, "m_axi__arvalid"):   # the core (a stand-in may have no read master)
            from cocotbext.axi import AxiRamRead, AxiReadBus
            from sim.cocotb_tb import axi_ram
            self.ram = axi_ram(dut, AxiRamRead, AxiReadBus, RAM_BYTES)

    # Each public method turns one coroutine into a blocking call (cocotb.resume).
    def _block(self, coro_fn, *args):
        from cocotb.task import resume
        return resume(coro_fn)(*args)

    def read(self, offset: int) -> int:
        return self._block(self.axil.read_dword, offset)

    def write(self, offset: int, value: int) -> None:
        self._block(self.axil.write_dword, offset, int(value) & 0xFFFFFFFF)

    def send(self, beats: np.ndarray, stage: str) -> None:
        data = np.asarray(beats, dtype="<u8").tobytes()
        self._block(self.source.send, data)

    async def _waited(self, awaitable, timeout: float, stage: str, what: str):
        from cocotb.triggers import SimTimeoutError, with_timeout
        cycles = max(1, int(round(timeout * self.clock_hz)))
        try:
            return await with_timeout(awaitable, cycles * 10, "ns")
        except SimTimeoutError:
            raise DriverTimeout(stage, timeout, f"{what} (simulated time, {cycles} cycles)") from None

    def wait_sent(self, timeout: float, stage: str) -> None:
        async def wait():
            if not self.source.idle():
                await self._waited(self.source.wait(), timeout, stage, "the core did not take every input beat")
        self._block(wait)

    def recv(self, max_beats: int, timeout: float, stage: str) -> np.ndarray:
        async def recv():
            return await self._waited(self.sink.recv(), timeout, stage, "no packet with TLAST came out")
        frame = self._block(recv)
        data = bytes(frame.tdata)
        if len(data) % 8:
            raise DriverError(f"{stage}: the output packet has {len(data)} bytes, not whole 64-bit beats")
        beats = np.frombuffer(data, dtype="<u8").astype(np.uint64)
        if len(beats) > max_beats:
            raise DriverError(f"{stage}: a packet of {len(beats)} beats, at most {max_beats} expected")
        return beats

    def manifest(self) -> dict:
        return self._manifest

    def place(self, data: bytes, stage: str) -> int:
        if self.ram is None:
            raise DriverError(f"{stage}: the simulated design has no AXI read master (m_axi)")
        if RAM_BASE + len(data) > RAM_BYTES:
            raise DriverError(f"{stage}: {len(data)} bytes do not fit the simulated RAM ({RAM_BYTES} bytes)")
        self.ram.write(RAM_BASE, bytes(data))
        return RAM_BASE

    def now(self) -> float:
        from cocotb.simtime import get_sim_time
        return get_sim_time("ns") * 1e-9

    def limit(self, timeout: float) -> float:
        return min(timeout, self.max_wait_cycles / self.clock_hz)


# ------------------------------------------------------------------------------------------ host side
def run_in_simulation(fn: str, lanes: int, cfg, args: dict | None = None, *, make_component=None,
                      name: str = "core", rtl_params: dict | None = None, sim_ms: float = 100.0,
                      max_wait_cycles: int = MAX_WAIT_CYCLES, optimize: bool = True) -> dict:
    """Build the core (``make_component(**rtl_params)``, default ``hw.core.Core(lanes, cfg)``), run
    ``fn(transport, **args)`` inside the simulation and return ``{"value": fn's return value, "timing":
    run_cocotb's timings}``. ``sim_ms`` bounds the simulated time of the whole session; ``optimize=False``
    makes a quick (-O0) build (``sim.runner.OPT_LEVEL``). A failure inside (an exception from ``fn``) raises
    ``sim.runner.SimFailure`` with its message."""
    from bitstreams import manifest as mf
    from dynaspike import packing
    from sim.core_run import make_core
    from sim.runner import build_dir_for, run_cocotb

    rtl = rtl_params if rtl_params is not None else {"lanes": lanes, "cfg": cfg.to_dict()}
    bdir = build_dir_for(name, rtl, optimize)
    bdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bdir) as tmp:
        out = Path(tmp) / "value.json"
        manifest = mf.make(packing.capacity_for(cfg, lanes), cfg, tool=None, utilization=None, timing=None)
        params = {"fn": fn, "args": args or {}, "out": str(out), "manifest": manifest, "sim_ms": sim_ms,
                  "max_wait_cycles": max_wait_cycles}
        timing = run_cocotb(name, make_component or make_core, rtl, TESTBENCH, params, optimize=optimize)
        if not out.exists():
            raise DriverError(f"the simulation ended without a value from {fn}")
        return {"value": json.loads(out.read_text()), "timing": timing}


def driver_session(transport, model: str, images: str, tags=None, taps: bool = False, dense: bool = False,
                   stream: bool = False, timeout: float = 1.0, progress: str | None = None,
                   weights_in_ddr: bool = False) -> dict:
    """Inside the simulation: load the model file ``model``, run the images of the ``.npy`` file
    ``images``; return ``{"capacity", "result": RunResult.to_dict()}``. With ``progress`` (a file name),
    one line is appended to that file per image done."""
    from dataclasses import asdict

    from dynaspike.artifact import IntModel

    from ..driver import Driver

    d = Driver(transport, timeout=timeout)
    cap = d.load_model(IntModel.load(model), weights_in_ddr)
    def tick(n):
        with open(progress, "a") as f:
            f.write(f"{n}\n")
    r = d.run(np.load(images), tags=tags, taps=taps, dense=dense, stream=stream, progress=tick if progress else None)
    return {"capacity": asdict(cap), "result": r.to_dict()}


def simulate_run(model_path, images, lanes: int, *, tags=None, taps=False, dense=False, stream=False, sim_ms=None,
                 progress=None, weights_in_ddr=False) -> tuple:
    """``(capacity dict, RunResult, timings)`` of ``images`` on the simulated core with the model file
    ``model_path``. The core is the shipped one (``hw.build.sizing_config``: the core every shipped model
    fits, as the bitstream has it) if the model fits it, else one sized for the model's configuration.
    ``progress(n)`` is called from a watcher thread as images finish inside the simulation."""
    import threading
    from dynaspike.artifact import IntModel
    from hw.build import sizing_config

    from ..driver import RunResult

    model_path = str(Path(model_path).resolve())
    cfg = sizing_config(IntModel.load(model_path).config, lanes)
    with tempfile.TemporaryDirectory() as tmp:
        npy = str(Path(tmp) / "images.npy")
        np.save(npy, np.asarray(images))
        ticks = Path(tmp) / "progress.txt"
        ticks.touch()
        budget = sim_ms if sim_ms is not None else 20.0 + 2.0 * len(images)
        stop = threading.Event()

        def watch():
            seen = 0
            while not stop.wait(0.5):
                n = len(ticks.read_text().split())
                if progress and n != seen:
                    seen = n
                    progress(n)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            got = run_in_simulation("sw.transports.sim:driver_session", lanes, cfg,
                                    {"model": model_path, "images": npy,
                                     "tags": None if tags is None else [int(t) for t in tags],
                                     "taps": taps, "dense": dense, "stream": stream, "progress": str(ticks),
                                     "weights_in_ddr": weights_in_ddr},
                                    sim_ms=budget)
        finally:
            stop.set()
            watcher.join()
    return got["value"]["capacity"], RunResult.from_dict(got["value"]["result"]), got["timing"]
