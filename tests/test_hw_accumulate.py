# amaranth: UnusedElaboratable=no
"""hw/accumulate.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.accumulate import AccumulateEngine
from sim import amaranth_tb as atb
from sim.cases import acc_events, acc_memory, acc_rows

SEED = 4321


def run_engine(lanes, weight_rows, bias_rows, W, bias, rows, idle, stall, seed, spikes=cycles.ACC_SPIKES):
    dut = AccumulateEngine(lanes, weight_rows, bias_rows, spikes=spikes)
    ev = dut.i.payload.shape()
    load_cycles = len(W) + len(bias)

    async def load(ctx):  # one row per cycle through the write ports, as the stream loader will do
        await atb.write_rows(ctx, (dut.w_wr, W), (dut.b_wr, bias))

    drv = atb.StreamDriver(dut.i, [ev.const(e) for e in acc_events(rows, spikes)], idle=idle, seed=seed,
                           delay=load_cycles)
    mon = atb.StreamMonitor(dut.o, len(rows), stall=stall, seed=seed + 1)
    atb.run(dut, load, drv, mon)
    return drv, mon


def check(W, bias, rows, mon):
    assert len(mon.payloads) == len(rows)
    for n, ((spikes, w_base, b_row), out) in enumerate(zip(rows, mon.payloads)):
        expected = ref.accumulate(bias[b_row], W[w_base:], spikes)
        got = [int(a) for a in out]
        for p, (g, e) in enumerate(zip(got, expected)):
            assert g == e, (f"row {n} (w_base={w_base}, b_row={b_row}, {len(spikes)} spikes {spikes}) lane {p}: "
                            f"got {g}, expected {e}")


@pytest.mark.parametrize("kind", ["random", "max", "min"])
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.5)])
def test_accumulate_matches_reference(kind, idle, stall):
    lanes, weight_rows, bias_rows = 4, 24, 3
    W, bias = acc_memory(lanes, weight_rows, bias_rows, SEED, kind)
    rows = acc_rows(weight_rows, bias_rows, 20, SEED, fan_in=16)
    _, mon = run_engine(lanes, weight_rows, bias_rows, W, bias, rows, idle, stall, SEED)
    check(W, bias, rows, mon)


@pytest.mark.parametrize("spikes", [1, 3])
def test_accumulate_other_spike_slots(spikes):
    # the engine takes any number of spike slots; the core uses cycles.ACC_SPIKES (both BRAM ports)
    lanes, weight_rows, bias_rows = 4, 24, 3
    W, bias = acc_memory(lanes, weight_rows, bias_rows, SEED)
    rows = acc_rows(weight_rows, bias_rows, 20, SEED, fan_in=16)
    _, mon = run_engine(lanes, weight_rows, bias_rows, W, bias, rows, 0.2, 0.2, SEED, spikes)
    check(W, bias, rows, mon)


def test_block_ram_reads_follow_the_work():
    """The weight memory reads one row per present spike and the bias memory one row per output row, with
    idle input and backpressure: what dynaspike/energy.py counts as the engine's block RAM accesses."""
    lanes, weight_rows, bias_rows = 4, 24, 3
    W, bias = acc_memory(lanes, weight_rows, bias_rows, SEED)
    rows = acc_rows(weight_rows, bias_rows, 20, SEED, fan_in=16)
    dut = AccumulateEngine(lanes, weight_rows, bias_rows)
    reads = [0, 0]

    async def load(ctx):
        await atb.write_rows(ctx, (dut.w_wr, W), (dut.b_wr, bias))

    async def count(ctx):
        async for _, _, en in ctx.tick().sample(dut.read_enables):
            reads[0] += sum((en >> k) & 1 for k in range(cycles.ACC_SPIKES))
            reads[1] += en >> cycles.ACC_SPIKES

    drv = atb.StreamDriver(dut.i, [dut.i.payload.shape().const(e) for e in acc_events(rows, cycles.ACC_SPIKES)],
                           idle=0.3, seed=SEED, delay=len(W) + len(bias))
    mon = atb.StreamMonitor(dut.o, len(rows), stall=0.5, seed=SEED + 1)
    atb.run(dut, load, drv, mon, background=[count])
    check(W, bias, rows, mon)
    assert reads == [sum(len(spikes) for spikes, _, _ in rows), len(rows)]


def test_accumulate_64_lanes():
    lanes, weight_rows, bias_rows = 64, 64, 2
    W, bias = acc_memory(lanes, weight_rows, bias_rows, SEED)
    rows = acc_rows(weight_rows, bias_rows, 3, SEED)
    _, mon = run_engine(lanes, weight_rows, bias_rows, W, bias, rows, 0.1, 0.1, SEED)
    check(W, bias, rows, mon)


def test_accumulate_cycles_match_model():
    lanes, weight_rows, bias_rows = 4, 24, 3
    W, bias = acc_memory(lanes, weight_rows, bias_rows, SEED)
    rows = acc_rows(weight_rows, bias_rows, 30, SEED, fan_in=16)
    drv, mon = run_engine(lanes, weight_rows, bias_rows, W, bias, rows, 0.0, 0.0, SEED)
    check(W, bias, rows, mon)
    start = drv.cycles[0]
    assert drv.cycles == list(range(start, start + len(drv.cycles))), "the engine stalled its input"
    counts = [len(r[0]) for r in rows]
    assert [c - start for c in mon.cycles] == cycles.acc_done_cycles(counts)
    assert mon.cycles[-1] - start == cycles.acc_cycles(counts)


def test_a_weight_write_takes_one_event_cycle_and_the_other_bank_reads_on():
    # DDR mode: the tile loader writes the next tile's rows into one bank while the engine reads the other;
    # each write takes the cycle (port A), and nothing else changes
    lanes, bank, bias_rows = 4, 12, 3
    W, bias = acc_memory(lanes, 2 * bank, bias_rows, SEED)
    W2, _ = acc_memory(lanes, bank, bias_rows, SEED + 1)
    rows = [(sp, w, b) for sp, w, b in acc_rows(bank, bias_rows, 30, SEED, fan_in=bank) if sp]   # bank 0
    later = [(sp, w + bank, b) for sp, w, b in acc_rows(bank, bias_rows, 6, SEED + 2, fan_in=bank) if sp]
    dut = AccumulateEngine(lanes, 2 * bank, bias_rows)
    ev = dut.i.payload.shape()
    load_cycles = 2 * bank + bias_rows
    write_at = [load_cycles + 4 + 3 * k for k in range(bank)]   # bank 1's new rows, one every third cycle

    async def load(ctx):
        await atb.write_rows(ctx, (dut.w_wr, W), (dut.b_wr, bias))
        cycle = load_cycles
        for k, at in enumerate(write_at):
            for _ in range(at - cycle):
                await ctx.tick()
            cycle = at + 1
            ctx.set(dut.w_wr.en, 1)
            ctx.set(dut.w_wr.addr, bank + k)
            ctx.set(dut.w_wr.data, W2[k])
            await ctx.tick()
            ctx.set(dut.w_wr.en, 0)

    drv = atb.StreamDriver(dut.i, [ev.const(e) for e in acc_events(rows + later)], delay=load_cycles)
    mon = atb.StreamMonitor(dut.o, len(rows) + len(later))
    atb.run(dut, load, drv, mon)
    check(W[:bank] + W2, bias, rows + later, mon)
    start, end = drv.cycles[0], drv.cycles[-1]
    assert write_at[-1] < end - 40, "the test writes bank 1 while bank 0 is read"
    assert drv.cycles == [c for c in range(start, end + 1) if c not in write_at]


def test_cycle_model_counts_one_cycle_per_spike_pair():
    # Two present spikes per cycle (cycles.ACC_SPIKES); absent spikes cost nothing; an empty row costs its
    # one marker beat; latency is added once.
    assert cycles.ACC_SPIKES == 2
    assert cycles.acc_cycles([5]) == 3 - 1 + cycles.ACC_LATENCY
    assert cycles.acc_cycles([4]) == 2 - 1 + cycles.ACC_LATENCY
    assert cycles.acc_cycles([0, 0, 3]) == 1 + 1 + 2 - 1 + cycles.ACC_LATENCY
    assert cycles.acc_done_cycles([2, 0, 1]) == [0 + cycles.ACC_LATENCY, 1 + cycles.ACC_LATENCY,
                                                 2 + cycles.ACC_LATENCY]
    with pytest.raises(ValueError, match="-1"):
        cycles.acc_beats(-1)


def test_core_rows_take_at_least_acc_rows_beats():
    # The core's engine rows hold ACC_ROWS chunks that drain one per cycle: a row that fits fewer beats is
    # padded with empty ones; beyond that a row costs its spike pairs.
    assert cycles.ACC_ROWS == 2
    assert [cycles.row_beats(s) for s in (0, 1, 2, 3, 4, 5, 9)] == [2, 2, 2, 2, 2, 3, 5]


@pytest.mark.parametrize("kwargs,shown", [
    ({"lanes": 0, "weight_rows": 8, "bias_rows": 1}, "lanes .* got 0"),
    ({"lanes": 4, "weight_rows": 1, "bias_rows": 1}, "weight_rows .* got 1"),
    ({"lanes": 4, "weight_rows": 8, "bias_rows": 0}, "bias_rows .* got 0"),
    ({"lanes": 4, "weight_rows": 8, "bias_rows": 1, "acc_bits": 4}, "acc_bits .* got 4"),
])
def test_accumulate_rejects_bad_parameters(kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        AccumulateEngine(**kwargs)


def test_reference_refuses_an_overflowing_case():
    with pytest.raises(ValueError, match="lane 0"):
        ref.accumulate([(1 << 23) - 1], [[1]], [0])


@pytest.mark.sim
@pytest.mark.parametrize("lanes,weight_rows,bias_rows,fan_in", [(8, 96, 4, 64), (64, 320, 9, 256)])
def test_accumulate_verilator(lanes, weight_rows, bias_rows, fan_in):
    from sim.runner import run_cocotb

    run_cocotb("accumulate", AccumulateEngine,
               {"lanes": lanes, "weight_rows": weight_rows, "bias_rows": bias_rows},
               "tb_accumulate", {"seed": SEED, "count": 60, "fan_in": fan_in})
