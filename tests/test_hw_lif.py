# amaranth: UnusedElaboratable=no
"""hw/lif.py against hw/reference.py: fast tier (Amaranth simulator) and cocotb + Verilator (`make sim`)."""

import pytest

from dynaspike import cycles
from dynaspike.formats import FORMATS
from hw import reference as ref
from hw.lif import LIFUpdate
from sim import amaranth_tb as atb
from sim.cases import lif_cases

SEED = 1234


def run_lif(lanes, cases, idle, stall, seed):
    dut = LIFUpdate(lanes)
    layout = dut.i.payload.shape()
    payloads = [layout.const({"v": v, "x": x, "th": th}) for v, x, th in cases]
    drv = atb.StreamDriver(dut.i, payloads, idle=idle, seed=seed)
    mon = atb.StreamMonitor(dut.o, len(cases), stall=stall, seed=seed + 1)
    atb.run(dut, drv, mon)
    return drv, mon


def check(cases, mon):
    for n, ((v, x, th), out) in enumerate(zip(cases, mon.payloads)):
        v_exp, s_exp = ref.lif(v, x, th)
        v_got = [int(a) for a in out.v]
        s_got = [(int(out.spike) >> p) & 1 for p in range(len(v))]
        for p in range(len(v)):
            assert (v_got[p], s_got[p]) == (v_exp[p], s_exp[p]), (
                f"case {n} lane {p}: v={v[p]} x={x[p]} th={th[p]}: got v'={v_got[p]} spike={s_got[p]}, "
                f"expected v'={v_exp[p]} spike={s_exp[p]}")


@pytest.mark.parametrize("lanes,idle,stall", [(4, 0.0, 0.0), (4, 0.3, 0.4), (64, 0.2, 0.2)])
def test_lif_matches_reference(lanes, idle, stall):
    cases = lif_cases(lanes, 60 if lanes < 16 else 10, SEED)
    _, mon = run_lif(lanes, cases, idle, stall, SEED)
    check(cases, mon)


def test_lif_cycles_match_model():
    cases = lif_cases(4, 20, SEED)
    drv, mon = run_lif(4, cases, 0.0, 0.0, SEED)
    assert drv.cycles == list(range(len(cases))), f"input transfers at {drv.cycles}: the LIF stalled"
    assert [o - i for i, o in zip(drv.cycles, mon.cycles)] == [cycles.LIF_LATENCY] * len(cases)
    assert mon.cycles[-1] - drv.cycles[0] == cycles.lif_cycles(len(cases))


@pytest.mark.parametrize("kwargs,shown", [({"lanes": 0}, "lanes .* got 0"), ({"lanes": 2.0}, "got 2.0"),
                                          ({"lanes": 4, "acc_bits": 1}, "acc_bits .* got 1")])
def test_lif_rejects_bad_parameters(kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        LIFUpdate(**kwargs)


def test_lif_default_width_is_the_shared_format():
    assert LIFUpdate(2).acc_bits == FORMATS.acc_bits


@pytest.mark.sim
@pytest.mark.parametrize("lanes", [8, 64])
def test_lif_verilator(lanes):
    from sim.runner import run_cocotb

    run_cocotb("lif", LIFUpdate, {"lanes": lanes}, "tb_lif", {"seed": SEED, "count": 200})
