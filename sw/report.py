"""The figures of ``sw/run_on_board.py``: per image and in total, measured next to estimated.

- accuracy (labels) and agreement with the golden model (predictions and bit-exact logits);
- latency measured: the core's cycle counter / f_clk, and the driver's wall clock per image; estimated:
  ``train.cycle_model.predict_cycles`` / f_clk (n/a while that module does not exist);
- energy estimated: the 45 nm operation model (``GoldenResult.energy_uj``: 4.6 pJ/MAC + 0.9 pJ/AC) and the
  FPGA activity model (``dynaspike.energy``: the XC7Z020's static and clock power for the latency plus block
  RAM accesses, logic toggles and DSP operations derived from the image's own counters, so it moves with
  the work each image needed; coefficients fitted to the bitstream's Vivado power report when its manifest
  carries one with ``make power``'s activity, else the documented defaults); measured (the PYNQ-Z2 has no
  power sensor: a meter on the board's supply, see the README): ``--power-w`` under load and
  ``--idle-power-w`` with the bitstream loaded and the core idle, over the time and images of the run (or of
  ``--repeat-seconds``): ``(P_load - P_idle) x time / images`` next to the estimate's part above idle, and
  ``P_load x time / images`` for the whole board;
- time steps and tokens actually used: (module, step) pairs run out of ``2L x T`` (``SKIPPED_MODULE_STEPS``)
  and token-block-step units processed out of ``N x L x T`` (``PROCESSED_UNITS``).
"""

import numpy as np

from dynaspike import energy
from dynaspike.ddr import BEAT_BYTES


def coefficients_for(manifest: dict | None) -> tuple:
    """``(Coefficients, source)``: fitted to the manifest's Vivado power report when it was made with
    ``make power``'s activity (``manifest["power"]["activity"]["events"]``), else the documented defaults."""
    power = (manifest or {}).get("power") or {}
    act = power.get("activity") or {}
    if power and act.get("events") and act.get("duration_s"):
        k = energy.fit(power, act, energy.CoreFacts.from_manifest(manifest))
        return k, (f"fitted to Vivado's report_power with the SAIF of {act.get('images')} {act.get('dataset')} "
                   f"images ({power.get('source')})")
    return energy.Coefficients(), "documented defaults (dynaspike/energy.py, docs/hardware.md 'Energy')"


def reference(model, images, lanes: int, dense: bool = False, memory=None) -> dict:
    """The host-side golden figures of ``images`` (needs torch): golden logits and predictions, 45 nm
    energy per image, and the cycle model's estimates (None without ``train.cycle_model``): each image's
    CYCLES, and when each one's RESULT would leave the core with the images sent back to back (``--stream``,
    ``cycle_model.stream_ends``). With ``memory`` (``dynaspike.ddr.Memory``), of the model with its weights in
    DDR (a buffer at a ``ddr.BUFFER_ALIGN`` boundary, as every transport places it), and its tiles' bytes read
    from DDR per image (``ddr_read_bytes_estimated``)."""
    import torch

    from train.golden import GoldenModel

    g = GoldenModel(model)
    x = torch.as_tensor(np.asarray(images))
    parts = [g.run(x[i:i + 512], dense=dense) for i in range(0, len(x), 512)]
    ref = {"logits": torch.cat([p.logits for p in parts]).numpy(),
           "energy_uj_45nm": torch.cat([p.energy_uj for p in parts]).numpy(), "cycles_estimated": None,
           "stream_ends_estimated": None, "ddr_read_bytes_estimated": None}
    try:
        from train.cycle_model import predict, stream_ends
    except ImportError:
        return ref
    pred = predict(model, np.asarray(images), lanes, dense=dense, gm=g, memory=memory)
    ref["cycles_estimated"] = np.asarray(pred.cycles, np.int64)
    ref["stream_ends_estimated"] = stream_ends(pred.cycles, pred.front, model.config.num_classes)
    if memory is not None:
        ref["ddr_read_bytes_estimated"] = np.asarray(pred.ddr_read_bytes, np.int64)
    return ref


def figures(target: str, result, labels, ref: dict, cfg, clock_hz: int, power_w: float | None, *,
            lanes: int, idle_power_w: float | None = None, meter: dict | None = None,
            manifest: dict | None = None) -> dict:
    """Every figure, per image (``per_image``) and in total, as a JSON-serialisable dict.

    ``lanes``: the core's P; ``manifest``: the bitstream's (its flip-flops and power report feed the FPGA
    energy model); ``meter``: ``{"images", "seconds"}`` of a ``--repeat-seconds`` run (else the batch's
    wall clock) for the energy from ``power_w`` and ``idle_power_w``."""
    B = len(result.logits)
    labels = np.asarray(labels)[:B]
    gold_pred = ref["logits"].argmax(1)
    est = ref["cycles_estimated"]
    # CYCLES is never 0 on a core; it reads 0 only from the golden transport without a cycle model
    cycles = result.cycles if result.cycles.any() else None
    lat_meas = cycles / clock_hz * 1e6 if cycles is not None else None   # us
    lat_est = est / clock_hz * 1e6 if est is not None else None
    M, T, N, L = cfg.num_modules, cfg.t_max, cfg.num_tokens, cfg.blocks
    steps = (M * T - result.counters["SKIPPED_MODULE_STEPS"]) / M      # time steps per module, mean
    tokens = result.counters["PROCESSED_UNITS"] / (N * L * T)
    facts = (energy.CoreFacts.from_manifest(manifest) if manifest else
             energy.CoreFacts(lanes=lanes, clock_hz=clock_hz))
    coeffs, coeff_source = coefficients_for(manifest)
    c_used = cycles if cycles is not None else est
    e_fpga = None if c_used is None else energy.energy({**result.counters, "CYCLES": np.asarray(c_used)}, cfg,
                                                       facts, coeffs)
    e_fpga_est = None if e_fpga is None else e_fpga["total_uj"]
    mean = lambda a: None if a is None else float(np.mean(a))  # noqa: E731
    # the images sent back to back: each charged the stream's cycles per image (cycle model), not its latency
    ends = ref.get("stream_ends_estimated")
    stream_cycles = None if ends is None else float(ends[B - 1] + 1) / B
    e_stream = (None if stream_cycles is None else
                mean(energy.energy({**result.counters, "CYCLES": np.full(B, stream_cycles)}, cfg, facts,
                                   coeffs)["total_uj"]))
    wall_total = float(result.wall_s.sum())
    run = meter or {"images": B, "seconds": wall_total}
    per_img_s = run["seconds"] / run["images"] if run["images"] else None
    e_board = power_w * per_img_s * 1e6 if power_w is not None and per_img_s else None
    e_meas = ((power_w - idle_power_w) * per_img_s * 1e6
              if power_w is not None and idle_power_w is not None and per_img_s else None)
    above = mean(None if e_fpga is None else e_fpga["above_idle_uj"])
    # Vivado's figure side by side, where the bitstream's manifest has a power report: its PL power (device
    # static + the on-chip components but the PS7) over this run's mean latency
    vp = (manifest or {}).get("power") or {}
    lat_mean = mean(lat_meas if lat_meas is not None else lat_est)
    e_vivado = (None if vp.get("static_w") is None or vp.get("pl_dynamic_w") is None or lat_mean is None else
                (vp["static_w"] + vp["pl_dynamic_w"]) * lat_mean)
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
            "timesteps_per_module": float(steps[i]), "token_fraction": float(tokens[i]),
            "counters": {k: int(v[i]) for k, v in result.counters.items()},
        })
    return {
        "target": target, "images": B, "clock_hz": clock_hz,
        "accuracy": float((result.pred == labels).mean()),
        "golden_agreement": float((result.pred == gold_pred).mean()),
        "logits_bit_exact": float(np.mean([p["logits_equal"] for p in per])),
        "cycles_measured_mean": mean(cycles),
        "cycles_estimated_mean": mean(est),
        "cycles_equal_estimate": None if est is None or cycles is None else float((cycles == est).mean()),
        # DDR mode: the weight tiles' bytes the core read (its DDR_READ_BEATS counter) and the cycle model's
        "ddr_read_bytes_measured_mean": (mean(result.counters["DDR_READ_BEATS"] * BEAT_BYTES)
                                         if result.counters["DDR_READ_BEATS"].any() else None),
        "ddr_read_bytes_estimated_mean": mean(ref.get("ddr_read_bytes_estimated")),
        "latency_us_measured_mean": mean(lat_meas),
        "latency_us_estimated_mean": mean(lat_est),
        "wall_ms_mean": wall_total / B * 1e3, "wall_batched": bool(result.batched),
        "throughput_images_per_s_cycles": None if cycles is None else clock_hz / float(np.mean(cycles)),
        "throughput_images_per_s_wall": B / wall_total if wall_total > 0 else None,
        # the images sent back to back (--stream): the cycle model's cycle of the last RESULT's end
        "stream_images_per_s_estimated": None if stream_cycles is None else clock_hz / stream_cycles,
        "energy_uj_fpga_stream_estimated_mean": e_stream,
        "energy_uj_estimated_mean": mean(ref["energy_uj_45nm"]),
        "energy_uj_fpga_estimated_mean": mean(e_fpga_est),
        "energy_uj_fpga_estimated_above_idle_mean": above,
        "energy_uj_fpga_estimated_parts_mean": (None if e_fpga is None else
                                                {k: mean(v) for k, v in e_fpga["parts_uj"].items()}),
        "energy_coefficients": coeffs.to_dict(), "energy_coefficients_source": coeff_source,
        "energy_flip_flops": facts.flip_flops,
        "energy_uj_fpga_vivado_mean": e_vivado,
        "vivado_power_activity": None if not vp else (vp.get("activity") or {}).get("saif") or "vectorless",
        "energy_uj_fpga_measured_mean": e_meas,
        "energy_uj_board_measured_mean": e_board,
        "energy_fpga_measured_over_estimated": (e_meas / above if e_meas is not None and above else None),
        "power_w": power_w, "idle_power_w": idle_power_w,
        "meter_images": run["images"], "meter_seconds": run["seconds"],
        "meter_images_per_s": run["images"] / run["seconds"] if run["seconds"] else None,
        "meter_repeat": meter is not None,
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
    if r["ddr_read_bytes_measured_mean"] is not None or r["ddr_read_bytes_estimated_mean"] is not None:
        kb = lambda v: _f(None if v is None else v / 1e3, ".1f")  # noqa: E731
        out(f"DDR reads (weight tiles): measured {kb(r['ddr_read_bytes_measured_mean'])} KB per image "
            f"(DDR_READ_BEATS), estimated {kb(r['ddr_read_bytes_estimated_mean'])} KB (cycle model)")
    out(f"latency: measured {_f(r['latency_us_measured_mean'], '.2f')} us (cycle counter), "
        f"{r['wall_ms_mean']:.3f} ms wall clock{' (batch average)' if r['wall_batched'] else ''}; "
        f"estimated {_f(r['latency_us_estimated_mean'], '.2f')} us")
    out(f"throughput: {_f(r['throughput_images_per_s_cycles'], '.0f')} images/s from the cycle counter, "
        f"{_f(r['throughput_images_per_s_wall'], '.0f')} images/s wall clock (this host and transport); "
        f"back to back (--stream) {_f(r['stream_images_per_s_estimated'], '.0f')} images/s estimated (cycle model)")
    parts = r["energy_uj_fpga_estimated_parts_mean"]
    out(f"energy per image, estimated: 45 nm op model {r['energy_uj_estimated_mean']:.4f} uJ; FPGA activity "
        f"model {_f(r['energy_uj_fpga_estimated_mean'], '.3f')} uJ"
        + ("" if parts is None else " (" + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()) + "), "
           f"{r['energy_uj_fpga_estimated_above_idle_mean']:.3f} uJ above idle")
        + (f"; {r['energy_uj_fpga_stream_estimated_mean']:.3f} uJ per image back to back"
           if r["energy_uj_fpga_stream_estimated_mean"] is not None else "")
        + f"; coefficients: {r['energy_coefficients_source']}")
    if r["energy_uj_fpga_vivado_mean"] is not None:
        out(f"energy per image, Vivado report_power (PL static + dynamic x mean latency, activity "
            f"{r['vivado_power_activity']}): {r['energy_uj_fpga_vivado_mean']:.3f} uJ against the activity model's "
            f"{_f(r['energy_uj_fpga_estimated_mean'], '.3f')} uJ")
    if r["power_w"] is None:
        out("energy per image, measured: n/a (the PYNQ-Z2 has no power sensor: --power-w and --idle-power-w "
            "from a meter on its supply, with --repeat-seconds; see the README)")
    else:
        how = (f"{r['meter_images']} images in {r['meter_seconds']:.1f} s, {r['meter_images_per_s']:.1f} images/s"
               + (" (--repeat-seconds)" if r["meter_repeat"] else " (this run's wall clock)"))
        fpga = ("n/a (pass --idle-power-w)" if r["energy_uj_fpga_measured_mean"] is None else
                f"{r['energy_uj_fpga_measured_mean']:.1f} uJ ((P_load - P_idle) x time / images: "
                f"{r['power_w']:g} W - {r['idle_power_w']:g} W), measured / estimated above idle "
                f"{_f(r['energy_fpga_measured_over_estimated'], '.2f')}")
        out(f"energy per image, measured over {how}: board {r['energy_uj_board_measured_mean']:.1f} uJ "
            f"(P_load x time / images at {r['power_w']:g} W); above idle {fpga}")
    out(f"used: {r['timesteps_per_module_mean']:.2f} of {r['timesteps_max']} time steps per module, "
        f"{100 * r['token_fraction_mean']:.1f} % of token-block-step units")
