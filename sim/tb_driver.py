"""cocotb testbench: a blocking host function (the driver) against the core, through sw/transports/sim.py.

Parameters (``sim.runner.tb_params``): ``fn`` ("module:function"), ``args``, ``out`` (where fn's JSON value
goes), ``manifest``, ``sim_ms`` (simulated-time limit of the session), ``max_wait_cycles``.
"""

import json
from pathlib import Path

import cocotb
from cocotb.task import bridge

from sim import cocotb_tb as tb
from sim.runner import tb_params
from sw.transports.sim import SimTransport, resolve

SIM_MS = tb_params().get("sim_ms", 100)


@cocotb.test(timeout_time=SIM_MS, timeout_unit="ms")
async def driver_session(dut):
    """Reset the core, then run ``fn(transport, **args)`` in a bridge thread; write its value as JSON."""
    p = tb_params()
    await tb.start(dut)
    transport = SimTransport(dut, p["manifest"], p["max_wait_cycles"])
    value = await bridge(resolve(p["fn"]))(transport, **p["args"])
    Path(p["out"]).write_text(json.dumps(value))
