"""dynaspike/energy.py: the events derived from the counters and the energy, by hand on one case; more work
costs more (dense > dynamic on the shipped model); the fit to a Vivado report reproduces its categories."""

import numpy as np
import pytest

from dynaspike import energy as en
from dynaspike.config import ModelConfig

CFG = ModelConfig()     # N 16, D 64, hidden 256, L 2, T 4, patch_dim 16, 10 classes
K = en.Coefficients(static_w=0.1, clock_fj_per_ff=10.0, bram_pj_per_bit=1.0, dsp_pj_per_op=10.0, toggle_fj=100.0,
                    toggles_per_ac=1.0, toggles_per_attn_ac=2.0, toggles_per_lif_lane=1.0, toggles_per_dsp_op=1.0,
                    toggles_per_cycle=3.0)
FACTS = en.CoreFacts(lanes=32, clock_hz=100_000_000, flip_flops=1000)


def counters(**kw):
    c = {"CYCLES": 1000, "AC_QKV": 3 * 64 * 10, "AC_KV": 100, "AC_Y": 50, "AC_PROJ": 64 * 5, "AC_FC1": 256 * 3,
         "AC_FC2": 64 * 4, "AC_READOUT": 40, "SKIPPED_MODULE_STEPS": 8, "PROCESSED_UNITS": 20,
         "MERGED_TOKENS": 6, "HALTED_TOKENS": 3, "IN_WAIT_CYCLES": 0, "OUT_WAIT_CYCLES": 0, "EMB_PIXELS": 120, "DDR_READ_BEATS": 0}
    c.update(kw)
    return c


def test_events_by_hand():
    ev = en.events(counters(), CFG, 32)
    # dc = 2 rows per token, hch = 8: engine rows of two chunks dg = 1, hg = 4; weight rows = AC / width *
    # groups: 1920/64*1 + 320/64*1 + 256/64*1 + 768/256*4
    assert ev["weight_rows"] == 30 + 5 + 4 + 12
    assert ev["attn_runs"] == ev["mlp_runs"] == 20 * 8 / 16              # units x fraction of modules on
    assert ev["threshold_rows"] == 10 * 3 * 2 + 10 * 8                    # q, k, v: 3 dc; fc1: hch
    # LIF updates: attn 5 dc, mlp dc + hch, the readout dc per representative (10) and step (4); read, write
    assert ev["membrane_rows"] == 2 * (10 * 5 * 2 + 10 * (2 + 8) + 10 * 2 * 4)
    assert ev["bias_rows"] == 10 * 4 * 1 + 10 * (4 + 1)
    assert ev["x_reads"] == 10 * 2 * 2 + 10 * 2                           # attn: LIF and proj's add; fc2's add
    assert ev["x_rows"] == 60 + 40 + 32                                  # reads, writes, E rows
    assert ev["emb_weight_rows"] == 2 * 120                              # chunks of E x non-zero pixels
    assert ev["emb_bias_rows"] == 16 * 2                                 # every token's chunks
    assert ev["pixel_beats"] == 2 * 32 + 2 * 120                         # window writes (two copies), reads
    assert (ev["engine_acs"], ev["attn_acs"], ev["readout_acs"]) == (3264, 150, 40)
    assert ev["lif_lanes"] == 280 * 32 and ev["res_lanes"] == (40 + 32) * 32
    assert ev["dsp_ops"] == 240 * 32 + 10 * 8 * 8


def test_energy_by_hand():
    e = en.energy(counters(), CFG, FACTS, K)
    # block RAM ports per access (en.MEMORIES at P = 32): weights 57 x 9, biases LUT RAM, thresholds 12 x 72,
    # membranes 45 x 18, X 15 x 36, embedding weights 16 x 36 and biases 16 x 72, window beats 72
    bits = (51 * 513 + 140 * 864 + 560 * 810 + 132 * 540 + 240 * 576 + 32 * 1152 + 304 * 72)
    toggles = 3264 + 2 * 150 + 8960 + 8320 + 3 * 1000      # engine ACs, attention ACs, LIF lanes, DSP, cycles
    want = {"static": 0.1 * 1000 / 1e8 * 1e6, "clock": 1000 * 1000 * 10 * 1e-9, "bram": bits * 1e-6,
            "logic": toggles * 100 * 1e-9, "dsp": 8320 * 10 * 1e-6}
    assert e["bram_bits"] == bits and e["toggles"] == toggles
    assert e["bram_uj"]["weight_rows"] == 51 * 513 * 1e-6 and e["bram_uj"]["bias_rows"] == 0   # LUT RAM
    assert sum(e["bram_uj"].values()) == pytest.approx(want["bram"], rel=1e-12)
    for k, v in want.items():
        assert e["parts_uj"][k] == pytest.approx(v, rel=1e-12), k
    assert e["total_uj"] == pytest.approx(sum(want.values()), rel=1e-12)
    assert e["above_idle_uj"] == pytest.approx(want["bram"] + want["logic"] + want["dsp"], rel=1e-12)


def test_more_work_costs_more_and_arrays_work():
    base = en.energy(counters(), CFG, FACTS)["total_uj"]
    for k, v in (("CYCLES", 2000), ("AC_FC1", 256 * 30), ("PROCESSED_UNITS", 40), ("SKIPPED_MODULE_STEPS", 0),
                 ("AC_KV", 1000)):
        assert en.energy(counters(**{k: v}), CFG, FACTS)["total_uj"] > base, k
    batch = {k: np.array([v, v]) for k, v in counters().items()}
    e = en.energy(batch, CFG, FACTS)["total_uj"]
    assert e.shape == (2,) and e[0] == pytest.approx(base)
    assert all(np.shape(v) == (2,) for v in en.energy(batch, CFG, FACTS)["parts_uj"].values())


def test_missing_counter_and_unknown_coefficient_are_named():
    c = counters()
    del c["AC_FC2"]
    with pytest.raises(KeyError, match="AC_FC2"):
        en.events(c, CFG, 32)
    with pytest.raises(ValueError, match="watts"):
        en.Coefficients.from_dict({"watts": 1})
    assert en.Coefficients.from_dict(K.to_dict()) == K
    assert set(en.SOURCES) == set(K.to_dict())          # every coefficient names its source


def test_shipped_model_dense_costs_more_than_dynamic():
    torch = pytest.importorskip("torch")
    from dynaspike.artifact import IntModel
    from hw.build import SHIPPED_MODEL
    from sw.transports.golden import counters as golden_counters
    from train import cycle_model
    from train.evaluate import test_split
    from train.golden import GoldenModel

    model = IntModel.load(SHIPPED_MODEL)
    x = test_split(model)[0][:8].numpy()
    gm = GoldenModel(model)
    e = {}
    for dense in (False, True):
        c = golden_counters(gm.run(torch.as_tensor(x), dense=dense), model.config)
        c["CYCLES"] = cycle_model.predict(model, x, 32, dense=dense, gm=gm).cycles
        e[dense] = en.energy(c, model.config, en.CoreFacts(32))
    assert (e[True]["total_uj"] > e[False]["total_uj"]).all()
    assert (e[True]["above_idle_uj"] > e[False]["above_idle_uj"]).all()


def test_fit_reproduces_vivados_categories():
    ev = en.total_events([counters(), counters(CYCLES=1200, AC_FC1=256 * 5)], CFG, 32)
    assert ev["cycles"] == 2200 and ev["engine_acs"] == 3264 + 3264 + 256 * 2
    dur = 3000 / 1e8                                  # the SAIF covers more cycles than the images' CYCLES
    power = {"static_w": 0.12, "components": {"Clocks": 0.02, "Signals": 0.01, "Slice Logic": 0.005,
                                              "Block RAM": 0.03, "DSPs": 0.002, "PS7": 1.5}}
    k = en.fit(power, {"events": ev, "duration_s": dur}, FACTS)
    e = en.energy_of(ev, FACTS, k)
    assert k.static_w == 0.12
    assert e["parts_uj"]["bram"] == pytest.approx(0.03 * dur * 1e6, rel=1e-9)
    assert e["parts_uj"]["dsp"] == pytest.approx(0.002 * dur * 1e6, rel=1e-9)
    assert e["parts_uj"]["logic"] == pytest.approx(0.015 * dur * 1e6, rel=1e-9)
    # the clock runs for the whole duration: per cycle, Clocks / f
    assert e["parts_uj"]["clock"] == pytest.approx(0.02 * ev["cycles"] / 1e8 * 1e6, rel=1e-9)
    assert en.fit({}, {"events": ev, "duration_s": dur}, FACTS) == en.Coefficients()


def test_core_facts_from_a_manifest():
    f = en.CoreFacts.from_manifest({"capacity": {"lanes": 32}, "clock_hz": 100_000_000,
                                    "utilization": {"ff": 17000}})
    assert f == en.CoreFacts(32, 100_000_000, 17000)
    assert en.CoreFacts.from_manifest({"capacity": {"lanes": 32}, "clock_hz": 1, "utilization": None}).flip_flops \
        == en.DEFAULT_FLIP_FLOPS
