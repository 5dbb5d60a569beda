"""bench/power.py's calibration: the difference of an N- and a 2N-image run, per image and per event."""

import pytest

from bench.power import calibrate


def run(images, k):
    comps = {"acc": 1000 + 300 * k, "lif": 500 + 100 * k, "att": 50 + 10 * k, "emb": 5 + 40 * k, "head": 3 + 2 * k,
             "seq": 10_000 + 2000 * k, "loader": 7000}
    return {"images": images, "components": {n: {"toggles": t} for n, t in comps.items()},
            "toggles_distinct": sum(comps.values()) - 1000 * k,
            "events": {"cycles": 1000 * k, "engine_acs": 30 * k, "lif_lanes": 20 * k, "attn_acs": 5 * k,
                       "dsp_ops": 21 * k}}


def test_calibration_cancels_the_load_and_divides_by_the_events():
    c = calibrate(run(10, 10), run(20, 20))
    assert c["images"] == 10
    assert c["toggles_per_image"] == {"acc": 300, "lif": 100, "att": 10, "emb": 40, "head": 2, "seq": 2000,
                                      "loader": 0}
    e = c["toggles_per_event"]
    assert e["acc"] == pytest.approx(10) and e["lif"] == pytest.approx(5) and e["att"] == pytest.approx(2)
    assert e["emb+head"] == pytest.approx(2) and e["rest per active cycle"] == pytest.approx(2)
    assert c["toggles_per_image_total"] == 2452 and c["cycles_per_image"] == 1000
    assert c["toggles_per_image_distinct"] == 2452 - 1000
