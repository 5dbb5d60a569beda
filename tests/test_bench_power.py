"""bench/power.py's calibration: the difference of an N- and a 2N-image run, per image and per event."""

import pytest

from bench.power import calibrate


def run(images, k, beats=0):
    comps = {"acc": 1000 + 300 * k, "lif": 500 + 100 * k, "att": 50 + 10 * k, "emb": 5 + 40 * k, "head": 3 + 2 * k,
             "seq": 10_000 + 2000 * k, "loader": 7000, "tiles": 4 * k + 3 * beats * k, "tile_pass": beats * k}
    return {"images": images, "components": {n: {"toggles": t} for n, t in comps.items()},
            "toggles_distinct": sum(comps.values()) - 1000 * k,
            "events": {"cycles": 1000 * k, "engine_acs": 30 * k, "lif_lanes": 20 * k, "attn_acs": 5 * k,
                       "dsp_ops": 21 * k, "tile_beats": beats * k}}


def test_calibration_cancels_the_load_and_divides_by_the_events():
    c = calibrate(run(10, 10), run(20, 20))
    assert c["images"] == 10
    assert c["toggles_per_image"] == {"acc": 300, "lif": 100, "att": 10, "emb": 40, "head": 2, "seq": 2000,
                                      "loader": 0, "tiles": 4, "tile_pass": 0}
    e = c["toggles_per_event"]
    assert e["acc"] == pytest.approx(10) and e["lif"] == pytest.approx(5) and e["att"] == pytest.approx(2)
    # on chip no tile beats: the idle tile units' toggles are in the rest
    assert e["emb+head"] == pytest.approx(2) and e["rest per active cycle"] == pytest.approx(2.004)
    assert e["tiles+tile_pass"] is None
    assert c["toggles_per_image_total"] == 2456 and c["cycles_per_image"] == 1000
    assert c["toggles_per_image_distinct"] == 2456 - 1000


def test_calibration_with_the_weights_in_ddr_counts_the_tile_units_per_tile_beat():
    e = calibrate(run(3, 3, beats=100), run(6, 6, beats=100))["toggles_per_event"]
    assert e["tiles+tile_pass"] == pytest.approx((4 + 400) / 100) and e["rest per active cycle"] == pytest.approx(2)


def test_calibration_counts_each_net_once_where_the_runs_have_the_nets():
    a, b = run(10, 10), run(20, 20)
    for r, k in ((a, 10), (b, 20)):
        r["net_toggles_by_component"] = {"acc": 100 * k, "lif": 40 * k, "seq": 700 * k, "(top)": 5}
    c = calibrate(a, b)
    assert c["counts"] == "nets" and c["toggles_per_image"] == {"acc": 100, "lif": 40, "seq": 700, "(top)": 0}
    assert c["signal_toggles_per_image_total"] == 2456
    e = c["toggles_per_event"]
    assert e["acc"] == pytest.approx(100 / 30) and e["lif"] == pytest.approx(2)
    assert e["rest per active cycle"] == pytest.approx(0.7)
