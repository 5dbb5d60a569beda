"""Benchmark: golden-model throughput on the shipped model, against the dense run and the torch model.

    python -m bench.golden_speed [--model ARTIFACT] [--images N] [--batch B] [--json FILE]

Prints images/s of the golden model (dynamic and dense) over the digits test split, batched, and the
ratios measured in the same run. Figures are measurements on this machine, not asserted anywhere.
"""

import argparse
import time

import torch

from dynaspike.artifact import IntModel
from dynaspike.jsonfile import write_json
from train.evaluate import SHIPPED_MODEL, test_split
from train.golden import GoldenModel


def images_per_s(fn, x, batch, repeat=3):
    """Best of `repeat` passes over x in batches of `batch`: images per second."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i:i + batch])
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.golden_speed")
    ap.add_argument("--model", default=SHIPPED_MODEL)
    ap.add_argument("--batch", type=int, default=450)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="build/bench_golden.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = IntModel.load(a.model)
    x, _ = test_split(model)
    g = GoldenModel(model)
    dyn = images_per_s(lambda b: g.run(b), x, a.batch)
    dense = images_per_s(lambda b: g.run(b, dense=True), x, a.batch)
    one = images_per_s(lambda b: g.run(b), x[:50], 1, repeat=1)
    r = {"images": len(x), "batch": a.batch, "threads": a.threads,
         "golden_images_per_s": dyn, "golden_dense_images_per_s": dense,
         "golden_unbatched_images_per_s": one, "dynamic_over_dense_speed": dyn / dense}
    print(f"golden model, {len(x)} images, batch {a.batch}, {a.threads} threads:")
    print(f"  dynamic  {dyn:9.0f} images/s")
    print(f"  dense    {dense:9.0f} images/s   (dynamic / dense speed {dyn / dense:.2f}x)")
    print(f"  batch 1  {one:9.0f} images/s")
    write_json(a.json, r)


if __name__ == "__main__":
    main()
