"""Deliberately naive integer references for the hw/ components, straight from docs/integer_model.md.

Pure Python (no torch or Amaranth; `dynaspike.packing` only for its constants), one function per
component, so a test reads ``rtl(case) == ref(case)``. Arguments are plain ints and lists of ints.
"""

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS


def lif(v: list, x: list, th: list) -> tuple:
    """LIF update per lane: ``h = (v + x) >> 1``; spike ``h >= th``; hard reset. Returns ``(v', spikes)``."""
    if not (len(v) == len(x) == len(th)):
        raise ValueError(f"lane counts differ: v {len(v)}, x {len(x)}, th {len(th)}")
    v_next, spikes = [], []
    for vi, xi, ti in zip(v, x, th):
        h = (vi + xi) >> 1  # Python's >> on ints is the arithmetic (floor) shift
        s = int(h >= ti)
        spikes.append(s)
        v_next.append(0 if s else h)
    return v_next, spikes


def accumulate(bias: list, weight_rows: list, spikes: list, acc_bits: int = FORMATS.acc_bits) -> list:
    """Event-driven accumulate: ``acc[p] = bias[p] + sum_{s in spikes} weight_rows[s][p]``.

    The artifact loader guarantees that the result fits ``acc_bits``; this reference refuses inputs that
    would not (so a test can never compare against a wrapped value by accident).
    """
    acc = list(bias)
    for s in spikes:
        row = weight_rows[s]
        acc = [a + w for a, w in zip(acc, row)]
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    for p, a in enumerate(acc):
        if not lo <= a <= hi:
            raise ValueError(f"lane {p}: accumulator {a} outside the {acc_bits}-bit range: not a legal case")
    return acc


def halt_index(x: int, shift: int, lut_min: int, lut_size: int = FORMATS.halt_lut_size) -> int:
    """The halting LUT index of feature ``x``: ``clamp((x >> shift) - lut_min, 0, lut_size - 1)``."""
    return min(max((x >> shift) - lut_min, 0), lut_size - 1)


def halt_checks(checks: list, lut: list, shift: int, lut_min: int, threshold: int, tokens: int) -> tuple:
    """Run halting checks ``(token, x, final)`` in order from ``Hacc = 0``; return ``(halted list, Hacc)``."""
    hacc = [0] * tokens
    halted = []
    for token, x, final in checks:
        hacc[token] += lut[halt_index(x, shift, lut_min, len(lut))]
        halted.append(int(hacc[token] >= threshold or bool(final)))
    return halted, hacc


def merge(bits: list, threshold: int) -> tuple:
    """Token merge of docs/integer_model.md step 2 on spike vectors given as ints; return ``(rep, size)``."""
    n = len(bits)
    rep, size = list(range(n)), [1] * n
    if threshold >= 0:
        for j in range(1, n):
            for i in range(j):
                if rep[i] == i and bin(bits[i] ^ bits[j]).count("1") <= threshold:
                    rep[j] = i
                    size[i] += 1
                    size[j] = 0
                    break
    return rep, size


def attention(ks: list, vs: list, sizes: list, qs: list, dim: int, heads: int) -> list:
    """``Y = Q (K^T V)`` per head with size weights, spike vectors given as ints (channel d = bit d)."""
    dh = dim // heads
    bit = lambda x, d: (x >> d) & 1  # noqa: E731
    ys = []
    kv = [[[sum(s * bit(k, h * dh + a) * bit(v, h * dh + c) for k, v, s in zip(ks, vs, sizes))
            for c in range(dh)] for a in range(dh)] for h in range(heads)]
    for q in qs:
        ys.append([sum(bit(q, h * dh + a) * kv[h][a][c] for a in range(dh)) for h in range(heads)
                   for c in range(dh)])
    return ys


def embedding(emb_w: list, emb_b: list, patches: list, fmt=FORMATS) -> list:
    """``E[k][d] = clampR((sum_i emb_w[d][i] * patch[k][i] + emb_b[k][d]) >> emb_shift)`` (lists of ints)."""
    out = []
    for k, patch in enumerate(patches):
        row = []
        for d, w in enumerate(emb_w):
            e = (sum(wi * pi for wi, pi in zip(w, patch)) + emb_b[k][d]) >> fmt.emb_shift
            row.append(min(max(e, fmt.res_min), fmt.res_max))
        out.append(row)
    return out


def lif_layer(updates: list, rows: int, lanes: int) -> list:
    """Apply ``(row, x, th)`` updates to membranes that start at zero; return ``(row, spikes, v')`` each."""
    state = [[0] * lanes for _ in range(rows)]
    out = []
    for row, x, th in updates:
        state[row], spikes = lif(state[row], x, th)
        out.append((row, spikes, list(state[row])))
    return out


def head(beats: list, head_w: list, head_b: list, dim: int, lanes: int) -> tuple:
    """Readout counts from beats ``(chunk, spikes as int, w)``, then ``logits = head_b + head_w . C``."""
    counts = [0] * dim
    for chunk, spikes, w in beats:
        for p in range(lanes):
            d = chunk * lanes + p
            if d < dim and (spikes >> p) & 1:
                counts[d] += w
    logits = [b + sum(wc * c for wc, c in zip(row, counts)) for row, b in zip(head_w, head_b)]
    return counts, logits


def stream_in_beats(beats: list) -> list:
    """The stream parser's output for one packet: ``(kind, section, index, data)`` of every payload data beat."""
    kind = (int(beats[0]) >> 40) & 0xFF
    payload = [int(b) for b in beats[2:-1]]
    if kind == packing.Kind.IMAGE:
        return [(kind, 0, i, b) for i, b in enumerate(payload)]
    out, pos = [], 0
    while pos < len(payload):
        sid, n = payload[pos] & 0xFFFF, payload[pos] >> 32
        out += [(kind, sid, i, payload[pos + 1 + i]) for i in range(n)]
        pos += 1 + n
    return out


def register_reads(inputs: dict, run_config: int, cap) -> dict:
    """The register block (hw/axil.py) read naively from the map: ``{offset: value}`` for every readable
    word, given its ``inputs`` (``register_inputs``), RUN_CONFIG and the capacity ``cap`` (HI words of
    64-bit registers excluded: they return the snapshot)."""
    v = {regmap.REG["ID"].offset: regmap.CORE_MAGIC,
         regmap.REG["VERSION"].offset: regmap.REGMAP_VERSION | (packing.STREAM_VERSION << 16),
         regmap.REG["STATUS"].offset: inputs["status"], regmap.REG["RUN_CONFIG"].offset: run_config,
         regmap.REG["ERROR_CODE"].offset: inputs["error_code"],
         regmap.REG["ERROR_BEAT"].offset: inputs["error_beat"],
         regmap.REG["IMAGES_DONE"].offset: inputs["images_done"],
         regmap.REG["CYCLES"].offset: inputs["cycles"] & 0xFFFFFFFF}
    for k, (name, _) in enumerate(regmap.PERF_COUNTERS):
        v[regmap.REG[name].offset] = inputs["perf"][k]
    v.update(cap.register_values())
    for k, reg in enumerate(r for r in regmap.REGISTERS if r.name.startswith("MODEL_")):
        v[reg.offset] = inputs["model"][k]
    return v


def register_inputs(rng) -> dict:
    """Random values for every input of the register block (``rng``: a ``random.Random``)."""
    n_model = len(ModelConfig().to_dict())
    return {"status": rng.getrandbits(5), "error_code": rng.randrange(12), "error_beat": rng.getrandbits(32),
            "images_done": rng.getrandbits(32), "cycles": rng.getrandbits(64),
            "perf": [rng.getrandbits(32) for _ in regmap.PERF_COUNTERS],
            "model": [rng.randrange(1 << 16) for _ in range(n_model)]}
