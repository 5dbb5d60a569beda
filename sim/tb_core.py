"""cocotb testbench of the whole core (hw/core.py): load a model, run images, record what comes back.

The pytest side (tests/test_core_sim.py) writes a case file (``case`` in the test parameters: an .npz with
the model packet and the image packets) and compares what this bench records (``out``, JSON: result and
tap packets, counters, the sequencer's state log) with the golden model and the cycle model.
"""

import json

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from dynaspike import packing
from sim import cocotb_tb as tb
from sim.core_host import CoreError, CoreHost
from sim.runner import tb_params


async def log_states(dut, log):
    """Record (cycle, state) whenever the sequencer's state changes."""
    cycle, last = 0, None
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        s = int(dut.seq.seq_state.value)
        if s != last:
            log.append((cycle, s))
            last = s
        cycle += 1


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def core_runs_images(dut):
    p = tb_params()
    case = np.load(p["case"])
    await tb.start(dut)
    host = CoreHost(dut, idle=p.get("idle", 0.0), stall=p.get("stall", 0.0), seed=p.get("seed", 0))
    states = []
    if p.get("log_states"):
        cocotb.start_soon(log_states(dut, states))
    out = {"images": [], "states": states}
    await host.load_model(case["model"])

    for k, img in enumerate(case["images"]):
        n = int(case["image_beats"][k])
        rec = {}
        if p.get("soft_reset_at") == k:
            # abort an inference in the middle, then run the same image again
            await host.send(img[:n])
            await ClockCycles(dut.clk, 4)
            await host.ctrl("START")
            await ClockCycles(dut.clk, int(p.get("soft_reset_after", 300)))
            await host.ctrl("SOFT_RESET")
            await ClockCycles(dut.clk, 4)
            rec["status_after_reset"] = await host.status()
        try:
            tap, result, counters = await host.run_image(img[:n], taps=p.get("taps", False),
                                                         dense=p.get("dense", False))
        except CoreError as e:
            rec["error"] = str(e)
            out["images"].append(rec)
            break
        rec.update({"result": [int(x) for x in result], "counters": counters})
        if tap is not None:
            rec["tap"] = [int(x) for x in tap]
        out["images"].append(rec)
    with open(p["out"], "w") as f:
        json.dump(out, f)
