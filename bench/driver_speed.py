"""Benchmark: the driver over the golden transport (batched fast path and per-image protocol) on the
shipped model, against the golden model alone.

    python -m bench.driver_speed [--model ARTIFACT] [--threads 2] [--json build/bench_driver.json]

Images/s over the digits test split (450 images), with CYCLES computed by the cycle model and without;
measured here, not asserted (the issue's target for the batched golden transport is >= 2,000 images/s on
2 cores). Torch threads oversubscribed by other work on the machine slow everything down sharply: compare
``--threads 1`` and ``--threads 2``.
"""

import argparse
import time

import torch

from dynaspike.artifact import IntModel
from dynaspike.jsonfile import write_json
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
    golden = best_rate(lambda: g.run(x), len(x))
    r = {"images": len(x), "threads": a.threads, "golden_model_images_per_s": golden}
    print(f"driver over the golden transport, {len(x)} images, {a.threads} threads:")
    print(f"  golden model alone                  {golden:8.0f} images/s")
    for cycles in (False, True):
        t = GoldenTransport(model.config, 64, cycles=cycles)
        d = Driver(t)
        d.load_model(model)
        batched = best_rate(lambda: d.run(x), len(x), repeat=5 if not cycles else 2)
        fast, t.run_images = t.run_images, None
        per_image = best_rate(lambda: d.run(x[:50]), 50, repeat=1)
        t.run_images = fast
        key = "exact_cycles" if cycles else "no_cycles"
        r[f"golden_transport_batched_{key}_images_per_s"] = batched
        r[f"golden_transport_per_image_{key}_images_per_s"] = per_image
        what = "CYCLES exact (cycle model)" if cycles else "CYCLES not computed"
        print(f"  batched, {what:27s} {batched:8.0f} images/s; per-image protocol {per_image:6.0f} images/s")
    write_json(a.json, r)
    print(f"figures: {a.json}")


if __name__ == "__main__":
    main()
