"""cocotb testbench of the whole core (hw/core.py): load models, run images, record what comes back.

The pytest side (tests/test_core_sim.py) writes a case file (``case``: an .npz with model packets
``model0, model1, ...`` and image packets) and a plan (``plan``: one step per image: which model must be
loaded, run options, an optional soft reset in the middle of a first attempt); this bench records the
result and tap packets, the counters and (``log_states``) the sequencer's state log into ``out`` (JSON);
with ``stream``, then every image again, back to back in RUN_CONFIG.STREAM (``CoreHost.run_stream``).
Comparisons are made on the pytest side, against the golden model and the cycle model.
"""

import json

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus

from dynaspike import packing, regmap
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


async def ram_latency(dut, out):
    """The RAM's read latency: from the first AR handshake to the first R beat."""
    cycle, ar = 0, None
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycle += 1
        if ar is None and int(dut.m_axi__arvalid.value) and int(dut.m_axi__arready.value):
            ar = cycle
        if ar is not None and int(dut.m_axi__rvalid.value) and int(dut.m_axi__rready.value):
            out["ram_latency"] = cycle - ar
            return


def image(case, k):
    return case["images"][k][:int(case["image_beats"][k])]


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def core_runs_images(dut):
    p = tb_params()
    case = np.load(p["case"])
    await tb.start(dut)
    host = CoreHost(dut, idle=p.get("idle", 0.0), stall=p.get("stall", 0.0), seed=p.get("seed", 0))
    states = []
    if p.get("log_states"):
        cocotb.start_soon(log_states(dut, states))
    out = {"images": [], "states": states}
    ram = None
    if p.get("ddr"):   # models in DDR: their weight buffers in cocotbext-axi's RAM on m_axi
        d = p["ddr"]
        ram = tb.axi_ram(dut, AxiRamRead, AxiReadBus, d["ram_bytes"], d["pause"], p.get("seed", 0) + 11)
        cocotb.start_soon(ram_latency(dut, out))
        await host.write("WEIGHTS_ADDR", d["at"])
    loaded = None
    for k, step in enumerate(p["plan"]):
        rec = {}
        if step.get("model", 0) != loaded:
            loaded = step.get("model", 0)
            if ram is not None:
                ram.write(p["ddr"]["at"], case[f"weights{loaded}"].tobytes())
            await host.load_model(case[f"model{loaded}"])
        if "soft_reset_after" in step:
            # start this image, abort it in the middle of the inference, then run it again from scratch
            await host.send(image(case, k))
            await ClockCycles(dut.clk, 4)
            await host.ctrl("START")
            await ClockCycles(dut.clk, int(step["soft_reset_after"]))
            rec["busy_before_reset"] = (await host.status())["BUSY"]
            await host.ctrl("SOFT_RESET")
            rec["status_after_reset"] = await host.status()
        try:
            tap, result, counters = await host.run_image(image(case, k), taps=step.get("taps", False),
                                                         dense=step.get("dense", False))
        except CoreError as e:
            rec["error"] = str(e)
            out["images"].append(rec)
            break
        rec.update({"result": [int(x) for x in result], "counters": counters})
        if tap is not None:
            rec["tap"] = [int(x) for x in tap]
        out["images"].append(rec)
    if p.get("stream"):   # then every image again, back to back (RUN_CONFIG.STREAM)
        out["stream"] = await host.run_stream([image(case, k) for k in range(len(p["plan"]))])
    with open(p["out"], "w") as f:
        json.dump(out, f)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def core_refuses_bad_input(dut):
    """Malformed packets, an oversized model, START without a model: each a visible error, then recovery."""
    p = tb_params()
    case = np.load(p["case"])
    await tb.start(dut)
    host = CoreHost(dut)
    out = {}

    async def error_after(what, send=None, ctrl=None):
        if send is not None:
            await host.send(send)  # queued: an image is only taken after START
        if ctrl:
            await host.ctrl(ctrl)
        await host.src.wait()
        for _ in range(200):
            st = await host.status()
            if st["ERROR"]:
                break
            await ClockCycles(dut.clk, 10)
        out[what] = {"status": st, "code": regmap.ErrorCode.name(await host.read("ERROR_CODE")),
                     "beat": await host.read("ERROR_BEAT")}
        await host.ctrl("SOFT_RESET")
        out[what]["after_reset"] = await host.status()

    await error_after("start_without_model", ctrl="START")
    good = case["model0"]
    bad = good.copy()
    bad[0] ^= np.uint64(1)
    await error_after("bad_magic", send=bad)
    bad = good.copy()
    bad[5] ^= np.uint64(1 << 40)
    await error_after("bad_checksum", send=bad)
    await error_after("oversized_model", send=case["model_big"])
    await error_after("inconsistent_model", send=case["model_inconsistent"])
    # a good model and image after all that
    await host.load_model(good)
    await error_after("short_image", send=case["image_short"], ctrl="START")
    out["model_loaded_after_errors"] = (await host.status())["MODEL_LOADED"]
    _, result, counters = await host.run_image(image(case, 0))
    out["result"] = [int(x) for x in result]
    out["counters"] = counters
    with open(p["out"], "w") as f:
        json.dump(out, f)
