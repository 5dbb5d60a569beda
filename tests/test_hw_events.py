# amaranth: UnusedElaboratable=no
"""hw/events.py (the two-ended spike-event generator) against its reference, in Amaranth's simulator."""

import pytest

from dynaspike import cycles
from hw.events import EventGenerator, reference_events
from sim import amaranth_tb as atb
from sim.cases import event_vectors


def run(width: int, word: int, vecs: list, rewinds: int = 1) -> list:
    """Scan each vector ``1 + rewinds`` times (rewind at the end of a scan, load the next vector at the end
    of the last, as the sequencer does), stepping every cycle; return the pairs seen per scan."""
    dut = EventGenerator(width, word)
    scans = []

    async def tb(ctx):
        ctx.set(dut.load, 1)
        ctx.set(dut.bits, vecs[0])
        await ctx.tick()
        for n, v in enumerate(vecs):
            for r in range(1 + rewinds):
                pairs = []
                while True:
                    idx0, idx1, present, last = (ctx.get(dut.idx[0]), ctx.get(dut.idx[1]), ctx.get(dut.present),
                                                 ctx.get(dut.last))
                    pairs.append((idx0 if present & 1 else None, idx1 if present & 2 else None))
                    more_scans = r < rewinds
                    ctx.set(dut.step, 1)
                    ctx.set(dut.rewind, last and more_scans)
                    ctx.set(dut.load, last and not more_scans and n + 1 < len(vecs))
                    if n + 1 < len(vecs):
                        ctx.set(dut.bits, vecs[n + 1])
                    await ctx.tick()
                    ctx.set(dut.rewind, 0)
                    ctx.set(dut.load, 0)
                    if last:
                        break
                    assert len(pairs) <= width, "the scan does not end"
                scans.append(pairs)

    atb.run(dut, tb, deadline_cycles=200_000)
    return scans


@pytest.mark.parametrize("width,word", [(256, 32), (64, 32), (24, 8), (8, 8), (5, 2)])
def test_events_match_reference(width, word):
    vecs = event_vectors(width, 40, width)
    scans = run(width, word, vecs)
    for n, v in enumerate(vecs):
        want = reference_events(v)
        for r in range(2):
            assert scans[2 * n + r] == want, f"vector {v:#x}, scan {r}: got {scans[2 * n + r]}, expected {want}"
        assert len(want) == cycles.acc_beats(bin(v).count("1"))


def test_events_reference_pairs_both_ends():
    assert reference_events(0) == [(None, None)]
    assert reference_events(0b1) == [(0, None)]
    assert reference_events(0b1011_0110) == [(1, 7), (2, 5), (4, None)]


def test_events_rejects_bad_parameters():
    with pytest.raises(ValueError, match="width"):
        EventGenerator(0)
    with pytest.raises(ValueError, match="word"):
        EventGenerator(64, 24)


@pytest.mark.sim
def test_events_verilator():
    from sim.runner import run_cocotb

    run_cocotb("events", EventGenerator, {"width": 256, "word": 32}, "tb_events", {"seed": 11, "count": 60})
