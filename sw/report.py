"""The figures of ``sw/run_on_board.py``: per image and in total, measured next to estimated.

- accuracy (labels) and agreement with the golden model (predictions and bit-exact logits);
- latency measured: the core's cycle counter / f_clk, and the driver's wall clock per image; estimated:
  ``train.cycle_model.predict_cycles`` / f_clk (n/a while that module does not exist);
- energy estimated: the 45 nm operation model (``GoldenResult.energy_uj``: 4.6 pJ/MAC + 0.9 pJ/AC) and the
  FPGA model ``power x latency`` with ``power`` = ``--power-w`` if given (a meter reading) else
  ``ASSUMED_POWER_W`` (an assumption, labelled as such); measured: ``--power-w`` x the measured latency,
  n/a without a power figure (the PYNQ-Z2 has no on-board power sensors);
- time steps and tokens actually used: (module, step) pairs run out of ``2L x T`` (``SKIPPED_MODULE_STEPS``)
  and token-block-step units processed out of ``N x L x T`` (``PROCESSED_UNITS``).
"""

import numpy as np

# Assumed power of the programmable logic while the core runs, for the FPGA energy estimate when no
# meter reading is given: 0.6 W is a typical Vivado report_power total on-chip PL figure (dynamic +
# static) for an XC7Z020 design at 100 MHz using about half the LUTs. An assumption, not a measurement.
ASSUMED_POWER_W = 0.6


def reference(model, images, lanes: int, dense: bool = False) -> dict:
    """The host-side golden figures of ``images`` (needs torch): golden logits and predictions, 45 nm
    energy per image, and the cycle model's estimate (None without ``train.cycle_model``)."""
    import torch

    from train.golden import GoldenModel

    g = GoldenModel(model)
    x = torch.as_tensor(np.asarray(images))
    parts = [g.run(x[i:i + 512], dense=dense) for i in range(0, len(x), 512)]
    ref = {"logits": torch.cat([p.logits for p in parts]).numpy(),
           "energy_uj_45nm": torch.cat([p.energy_uj for p in parts]).numpy(), "cycles_estimated": None}
    try:
        from train.cycle_model import predict_cycles
    except ImportError:
        return ref
    ref["cycles_estimated"] = np.asarray(predict_cycles(model, np.asarray(images), lanes, dense=dense), np.int64)
    return ref


def figures(target: str, result, labels, ref: dict, cfg, clock_hz: int, power_w: float | None) -> dict:
    """Every figure, per image (``per_image``) and in total, as a JSON-serialisable dict."""
    B = len(result.logits)
    labels = np.asarray(labels)[:B]
    gold_pred = ref["logits"].argmax(1)
    est = ref["cycles_estimated"]
    power = power_w if power_w is not None else ASSUMED_POWER_W
    # CYCLES is never 0 on a core; it reads 0 only from the golden transport without a cycle model
    cycles = result.cycles if result.cycles.any() else None
    lat_meas = cycles / clock_hz * 1e6 if cycles is not None else None   # us
    lat_est = est / clock_hz * 1e6 if est is not None else None
    M, T, N, L = cfg.num_modules, cfg.t_max, cfg.num_tokens, cfg.blocks
    steps = (M * T - result.counters["SKIPPED_MODULE_STEPS"]) / M      # time steps per module, mean
    tokens = result.counters["PROCESSED_UNITS"] / (N * L * T)
    e_fpga_est = power * lat_est if lat_est is not None else None  # W x us = uJ
    e_meas = power_w * lat_meas if power_w is not None and lat_meas is not None else None
    mean = lambda a: None if a is None else float(np.mean(a))  # noqa: E731
    per = []
    for i in range(B):
        per.append({
            "tag": int(result.tags[i]), "label": int(labels[i]), "pred": int(result.pred[i]),
            "golden_pred": int(gold_pred[i]), "logits_equal": bool((result.logits[i] == ref["logits"][i]).all()),
            "cycles_measured": None if cycles is None else int(cycles[i]),
            "cycles_estimated": None if est is None else int(est[i]),
            "latency_us_measured": None if cycles is None else float(lat_meas[i]),
            "latency_us_estimated": None if est is None else float(lat_est[i]),
            "wall_ms": float(result.wall_s[i] * 1e3), "energy_uj_45nm": float(ref["energy_uj_45nm"][i]),
            "energy_uj_fpga_estimated": None if e_fpga_est is None else float(e_fpga_est[i]),
            "energy_uj_measured": None if e_meas is None else float(e_meas[i]),
            "timesteps_per_module": float(steps[i]), "token_fraction": float(tokens[i]),
            "counters": {k: int(v[i]) for k, v in result.counters.items()},
        })
    wall_total = float(result.wall_s.sum())
    return {
        "target": target, "images": B, "clock_hz": clock_hz,
        "accuracy": float((result.pred == labels).mean()),
        "golden_agreement": float((result.pred == gold_pred).mean()),
        "logits_bit_exact": float(np.mean([p["logits_equal"] for p in per])),
        "cycles_measured_mean": mean(cycles),
        "cycles_estimated_mean": mean(est),
        "cycles_equal_estimate": None if est is None or cycles is None else float((cycles == est).mean()),
        "latency_us_measured_mean": mean(lat_meas),
        "latency_us_estimated_mean": mean(lat_est),
        "wall_ms_mean": wall_total / B * 1e3, "wall_batched": bool(result.batched),
        "throughput_images_per_s_cycles": None if cycles is None else clock_hz / float(np.mean(cycles)),
        "throughput_images_per_s_wall": B / wall_total if wall_total > 0 else None,
        "energy_uj_estimated_mean": mean(ref["energy_uj_45nm"]),
        "energy_uj_fpga_estimated_mean": mean(e_fpga_est),
        "energy_uj_measured_mean": mean(e_meas),
        "power_w": power, "power_source": ("measured: --power-w" if power_w is not None else
                                           "assumed: no meter reading, see sw/report.py"),
        "timesteps_per_module_mean": mean(steps), "timesteps_max": T,
        "token_fraction_mean": mean(tokens),
        "per_image": per,
    }


def _f(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def print_table(r: dict, out=print):
    """The per-image table and the totals."""
    out(f"{'#':>4} {'tag':>5} {'lbl':>3} {'pred':>4} {'gold':>4} {'ok':>2} {'cycles':>8} {'est':>8} "
        f"{'lat_us':>8} {'est_us':>8} {'wall_ms':>8} {'E45_uJ':>7} {'Efpga_uJ':>8} {'steps':>5} {'tokens':>6}")
    for i, p in enumerate(r["per_image"]):
        ok = "=" if p["logits_equal"] else "X"
        out(f"{i:>4} {p['tag']:>5} {p['label']:>3} {p['pred']:>4} {p['golden_pred']:>4} {ok:>2} "
            f"{_f(p['cycles_measured'], 'd'):>8} {_f(p['cycles_estimated'], 'd'):>8} "
            f"{_f(p['latency_us_measured'], '.2f'):>8} "
            f"{_f(p['latency_us_estimated'], '.2f'):>8} {p['wall_ms']:>8.3f} {p['energy_uj_45nm']:>7.3f} "
            f"{_f(p['energy_uj_fpga_estimated'], '.3f'):>8} {p['timesteps_per_module']:>5.2f} "
            f"{100 * p['token_fraction']:>5.1f}%")
    pct = lambda v: _f(None if v is None else 100 * v, ".2f") + " %"  # noqa: E731
    out("")
    out(f"target {r['target']}, {r['images']} images, f_clk {r['clock_hz'] / 1e6:g} MHz")
    out(f"accuracy {pct(r['accuracy'])}; golden agreement {pct(r['golden_agreement'])} "
        f"(bit-exact logits {pct(r['logits_bit_exact'])})")
    out(f"cycles: measured {_f(r['cycles_measured_mean'], '.1f')} mean, estimated "
        f"{_f(r['cycles_estimated_mean'], '.1f')} (equal on {pct(r['cycles_equal_estimate'])} of images)")
    out(f"latency: measured {_f(r['latency_us_measured_mean'], '.2f')} us (cycle counter), "
        f"{r['wall_ms_mean']:.3f} ms wall clock{' (batch average)' if r['wall_batched'] else ''}; "
        f"estimated {_f(r['latency_us_estimated_mean'], '.2f')} us")
    out(f"throughput: {_f(r['throughput_images_per_s_cycles'], '.0f')} images/s from the cycle counter, "
        f"{_f(r['throughput_images_per_s_wall'], '.0f')} images/s wall clock (this host and transport)")
    out(f"energy per image: 45 nm op model {r['energy_uj_estimated_mean']:.4f} uJ; FPGA model "
        f"{_f(r['energy_uj_fpga_estimated_mean'], '.4f')} uJ at {r['power_w']:g} W ({r['power_source']}); "
        f"measured {_f(r['energy_uj_measured_mean'], '.4f')} uJ"
        + ("" if r["energy_uj_measured_mean"] is not None else " (no power measurement: pass --power-w)"))
    out(f"used: {r['timesteps_per_module_mean']:.2f} of {r['timesteps_max']} time steps per module, "
        f"{100 * r['token_fraction_mean']:.1f} % of token-block-step units")
