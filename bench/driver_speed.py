"""Benchmark: the driver over the golden transport (batched fast path and per-image protocol) on the
shipped model, against the golden model alone.

    python -m bench.driver_speed [--model ARTIFACT] [--threads 2] [--json build/bench_driver.json]

Images/s, best of 5 passes over the digits test split (450 images); measured here, not asserted (the
issue's target for the batched golden transport is >= 2,000 images/s on 2 cores).
"""

import argparse
import json
import os
import time

import torch

from dynaspike.artifact import IntModel
from sw.driver import Driver
from sw.transports.golden import GoldenTransport
from train.evaluate import SHIPPED_MODEL, test_split
from train.golden import GoldenModel


def best_rate(fn, n, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.driver_speed")
    ap.add_argument("--model", default=SHIPPED_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="build/bench_driver.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = IntModel.load(a.model)
    x = test_split(model)[0].numpy()
    g = GoldenModel(model)
    t = GoldenTransport(model.config, 64)
    d = Driver(t)
    d.load_model(model)
    golden = best_rate(lambda: g.run(x), len(x))
    batched = best_rate(lambda: d.run(x), len(x))
    fast, t.run_images = t.run_images, None
    per_image = best_rate(lambda: d.run(x[:100]), 100, repeat=2)
    t.run_images = fast
    r = {"images": len(x), "threads": a.threads, "golden_model_images_per_s": golden,
         "golden_transport_batched_images_per_s": batched, "golden_transport_per_image_images_per_s": per_image,
         "driver_overhead_fraction": 1 - batched / golden}
    print(f"driver over the golden transport, {len(x)} images, {a.threads} threads:")
    print(f"  golden model alone       {golden:8.0f} images/s")
    print(f"  batched (run_images)     {batched:8.0f} images/s ({100 * r['driver_overhead_fraction']:.1f} % overhead)")
    print(f"  per-image protocol       {per_image:8.0f} images/s")
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(r, f, indent=1)
    print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
