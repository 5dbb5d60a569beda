"""cocotb bench: run images through the whole core and record one component's signals every cycle.

For ``sim.gate_toggles``, through ``sim.core_run.run_core(..., testbench="tb_record")`` and its case file.
The parameters name the component (``component``, an instance under the core's top, e.g. ``acc``), its
``signals`` and the first image to record (``first``). The bench loads ``model0``, runs every image,
records from the first cycle of image ``first`` to the end of the last, and writes ``rec`` (an .npz:
``s<i>`` the i-th signal's values, one little-endian row of bytes a cycle) and ``out`` (JSON: the
signals, their widths and each recorded image's counters).
"""

import json

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from sim import cocotb_tb as tb
from sim.core_host import CoreHost
from sim.runner import tb_params


async def record(dut, handles: dict, out: dict, state: dict):
    """Append every handle's value after each rising edge while ``state["on"]``."""
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if state["on"]:
            for n, h in handles.items():
                out[n].append(int(h.value))


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def record_component(dut):
    p = tb_params()
    case = np.load(p["case"])
    await tb.start(dut)
    unit = getattr(dut, p["component"])
    # Verilator's names of escaped identifiers (\$signal$30 ) keep the backslash and the space
    kids = {h._name.lstrip("\\").rstrip(): h for h in unit}
    missing = [n for n in p["signals"] if n not in kids]
    assert not missing, f"{p['component']} has no signals {missing}"
    handles = {n: kids[n] for n in p["signals"]}
    values = {n: [] for n in handles}
    state = {"on": False}
    cocotb.start_soon(record(dut, handles, values, state))
    host = CoreHost(dut)
    await host.load_model(case["model0"])
    counters = []
    for k, beats in enumerate(case["image_beats"]):
        state["on"] = state["on"] or k == p["first"]
        _, _, c = await host.run_image(case["images"][k][:beats])
        if k >= p["first"]:
            counters.append(c)
    state["on"] = False
    widths = {n: len(h) for n, h in handles.items()}
    rows = {n: np.frombuffer(b"".join(v.to_bytes((widths[n] + 7) // 8, "little") for v in values[n]), np.uint8)
            .reshape(len(values[n]), -1) for n in handles}
    np.savez(p["rec"], **{f"s{i}": rows[n] for i, n in enumerate(p["signals"])})
    with open(p["out"], "w") as f:
        json.dump({"signals": p["signals"], "widths": widths, "counters": counters}, f)
