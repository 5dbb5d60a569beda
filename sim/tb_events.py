"""cocotb testbench of hw/events.py (EventGenerator); run by tests/test_hw_events.py."""

import cocotb
from cocotb.triggers import FallingEdge

from dynaspike import cycles
from hw.events import EventGenerator, reference_events
from sim import cocotb_tb as tb
from sim.cases import event_vectors
from sim.runner import tb_params

TIMEOUT_MS = tb.TIMEOUT_MS


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def events_scan_rewind_load(dut):
    """Every vector scanned twice (rewind at the end of the first scan, load of the next vector at the end
    of the second), one pair taken per cycle: the pairs equal the reference, ceil(s / 2) cycles each."""
    p = tb_params()
    width = p["rtl"]["width"]
    idx_layout = EventGenerator(width, p["rtl"]["word"]).idx.shape()
    vecs = event_vectors(width, p["count"], p["seed"])
    await tb.start(dut)
    await FallingEdge(dut.clk)              # drive and sample between rising edges
    dut.load.value, dut.bits.value = 1, vecs[0]
    await FallingEdge(dut.clk)
    for n, v in enumerate(vecs):
        want = reference_events(v)
        assert len(want) == cycles.acc_beats(bin(v).count("1"))
        for scan in range(2):
            got = []
            while True:
                present, last = int(dut.present.value), int(dut.last.value)
                idx = tb.unpack(idx_layout, dut.idx.value)
                got.append((int(idx[0]) if present & 1 else None, int(idx[1]) if present & 2 else None))
                dut.step.value = 1
                dut.rewind.value = int(last and scan == 0)
                dut.load.value = int(last and scan == 1 and n + 1 < len(vecs))
                if n + 1 < len(vecs):
                    dut.bits.value = vecs[n + 1]
                await FallingEdge(dut.clk)
                dut.rewind.value = dut.load.value = 0
                if last:
                    break
                assert len(got) <= width, f"vector {v:#x}: the scan does not end"
            assert got == want, f"vector {v:#x}, scan {scan}: got {got}, expected {want}"
