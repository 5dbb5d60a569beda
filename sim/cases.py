"""Seeded test cases for the hw/ components, shared by the fast tier (Amaranth simulator) and cocotb.

Pure Python (and numpy). Every generator takes a seed and returns the same cases for the same arguments,
edge cases first, so a failure can be reproduced from the seed in the test log.
"""

import random

import numpy as np

from dynaspike import cycles, ddr
from dynaspike.formats import FORMATS
from dynaspike.packing import BEAT_BYTES
from hw.reference import lif


def lif_cases(lanes: int, count: int, seed: int, acc_bits: int = FORMATS.acc_bits) -> list:
    """Return ``count`` random ``(v, x, th)`` lane vectors after the edge cases.

    Edge cases: extreme membranes and inputs (the sum needs acc_bits + 1 bits), negative odd sums (floor
    shift), ``h == th`` (spike, ``>=``), ``h == th - 1`` (no spike), every lane spiking, no lane spiking.
    """
    rng = random.Random(seed)
    hi, lo = (1 << (acc_bits - 1)) - 1, -(1 << (acc_bits - 1))
    edge_pairs = [(hi, hi, hi), (lo, lo, 1), (hi, lo, 1), (lo, hi, -1), (-1, 0, 1), (1, 0, 1), (-3, 0, -2),
                  (5, 0, 2), (4, 1, 3), (hi, hi - 1, hi - 1), (hi, hi - 1, hi), (0, 0, 1), (0, 0, 0),
                  (lo, lo + 1, lo), (2, 2, 2), (2, 1, 2)]
    cases = []
    for start in range(0, len(edge_pairs), lanes):
        chunk = (edge_pairs[start:start + lanes] * lanes)[:lanes]
        cases.append(tuple(list(c) for c in zip(*chunk)))
    cases.append(([hi] * lanes, [hi] * lanes, [1] * lanes))        # all lanes spike
    cases.append(([lo] * lanes, [lo] * lanes, [hi] * lanes))        # no lane spikes
    cases.append(([0] * lanes, [0] * lanes, [1] * lanes))           # all-zero input
    for _ in range(count):
        scale = rng.choice([8, 1 << 12, hi])  # small values make spikes and resets frequent
        v = [rng.randint(max(lo, -scale), min(hi, scale)) for _ in range(lanes)]
        x = [rng.randint(max(lo, -scale), min(hi, scale)) for _ in range(lanes)]
        th = [rng.randint(1, min(hi, scale)) for _ in range(lanes)]
        cases.append((v, x, th))
    return cases


def acc_memory(lanes: int, weight_rows: int, bias_rows: int, seed: int, kind: str = "random",
               acc_bits: int = FORMATS.acc_bits, weight_bits: int = FORMATS.weight_bits):
    """Return ``(W, bias)``: ``weight_rows`` x ``lanes`` weights and ``bias_rows`` x ``lanes`` biases.

    ``kind``: ``random`` (uniform int8, biases up to +-2**16), ``max`` (every weight +w_max, biases such that
    all rows present reach exactly acc_max), ``min`` (the mirror image: exactly -acc_max).
    """
    rng = random.Random(seed)
    wmax = (1 << (weight_bits - 1)) - 1
    amax = (1 << (acc_bits - 1)) - 1
    if kind == "random":
        W = [[rng.randint(-wmax, wmax) for _ in range(lanes)] for _ in range(weight_rows)]
        bias = [[rng.randint(-(1 << 16), 1 << 16) for _ in range(lanes)] for _ in range(bias_rows)]
    elif kind in ("max", "min"):
        sign = 1 if kind == "max" else -1
        W = [[sign * wmax] * lanes for _ in range(weight_rows)]
        bias = [[sign * (amax - wmax * weight_rows)] * lanes for _ in range(bias_rows)]
    else:
        raise ValueError(f"acc_memory kind must be random, max or min, got {kind!r}")
    return W, bias


def acc_rows(weight_rows: int, bias_rows: int, count: int, seed: int, fan_in: int | None = None) -> list:
    """Return ``count`` output rows ``(spikes, w_base, b_row)`` after the edge rows.

    Edge rows: no spike, a single spike at the first and at the last row, every row present. Random rows
    mix densities 0, ~10 %, ~50 %, 100 % (all-zero and all-one spike vectors included) over a random window.
    """
    rng = random.Random(seed)
    fan_in = weight_rows if fan_in is None else fan_in
    rows = [([], 0, 0), ([0], 0, bias_rows - 1), ([fan_in - 1], weight_rows - fan_in, 0),
            (list(range(fan_in)), weight_rows - fan_in, bias_rows - 1)]
    for _ in range(count):
        w_base = rng.randint(0, weight_rows - fan_in)
        density = rng.choice([0.0, 0.1, 0.5, 1.0])
        spikes = [s for s in range(fan_in) if rng.random() < density]
        rows.append((spikes, w_base, rng.randrange(bias_rows)))
    return rows


def acc_events(rows: list, spikes: int = cycles.ACC_SPIKES) -> list:
    """Spike events (dicts of the ``hw.accumulate.event_layout`` fields) for these rows, in order: each
    event carries the next ``spikes`` present spikes of its row (the last event of a row may carry fewer)."""
    events = []
    for row, w_base, b_row in rows:
        if not row:
            events.append({"index": [0] * spikes, "w_base": w_base, "b_row": b_row, "present": 0, "last": 1})
        for j in range(0, len(row), spikes):
            group = row[j:j + spikes]
            events.append({"index": group + [0] * (spikes - len(group)), "w_base": w_base, "b_row": b_row,
                           "present": (1 << len(group)) - 1, "last": int(j + spikes >= len(row))})
    return events


def event_vectors(width: int, count: int, seed: int) -> list:
    """Spike vectors (ints of ``width`` bits) for the event generator: none, one at each end, all, one in
    eight, then ``count`` random ones of every density."""
    rng = random.Random(seed)
    edge = [0, 1, 1 << (width - 1), (1 << width) - 1, sum(1 << k for k in range(0, width, 8))]
    return edge + [sum(1 << k for k in range(width) if rng.random() < d)
                   for d in (rng.choice([0.02, 0.1, 0.3, 0.6, 0.95]) for _ in range(count))]


def halt_case(tokens: int, count: int, seed: int, fmt=FORMATS) -> dict:
    """A halting test: LUT, params and ``count`` checks ``(token, x, final)`` after edge checks.

    Edge checks: the extreme features with the extreme ``lut_min`` (index clamped low and high), a final
    check. Each token is checked at most 32 times (``Hacc`` stays inside ``halt_acc_bits``, as the
    artifact guarantees).
    """
    rng = random.Random(seed)
    lut = [rng.randint(0, fmt.halt_score_max) for _ in range(fmt.halt_lut_size)]
    lut[0], lut[-1] = fmt.halt_score_max, 0
    shift = rng.choice([0, 1, 3, fmt.res_bits - 1])
    lut_min = rng.choice([-fmt.res_max, -8, 0, 5, fmt.res_max])
    threshold = rng.choice([1, fmt.halt_one - 3, 4 * fmt.halt_one, (1 << fmt.halt_acc_bits) - 1])
    checks = [(0, fmt.res_max, 0), (tokens - 1, fmt.res_min, 0), (0, 0, 1), (tokens - 1, -1, 0)]
    seen = [0] * tokens
    while len(checks) < count:
        k = rng.randrange(tokens)
        if seen[k] >= 30:
            continue
        seen[k] += 1
        x = rng.choice([rng.randint(fmt.res_min, fmt.res_max), rng.randint(-300, 300)])
        checks.append((k, x, int(rng.random() < 0.05)))
    return {"lut": lut, "shift": shift, "lut_min": lut_min, "threshold": threshold, "checks": checks}


def merge_images(max_tokens: int, dim: int, count: int, seed: int) -> list:
    """Images for the token merge: ``(threshold, [B[0], ..., B[n-1]])`` with spike vectors as ints.

    Edge images: all-zero vectors (everything joins token 0), all-one vectors, threshold -1 (no merge),
    threshold 0 (exact duplicates only), threshold = dim (everything joins token 0), one token, a short
    image. Random images are clusters: a few prototypes with a few flipped bits each.
    """
    rng = random.Random(seed)
    full = (1 << dim) - 1
    N = max_tokens
    images = [(2, [0] * N), (3, [full] * N), (-1, [0] * N), (0, [5, 5, 6, 5, 6] * N),
              (dim, [rng.getrandbits(dim) for _ in range(N)]), (1, [full]), (1, [1, 3, 2][:min(3, N)])]
    images[3] = (0, images[3][1][:N])
    for _ in range(count):
        protos = [rng.getrandbits(dim) for _ in range(rng.randint(1, 4))]
        n = rng.choice([N, N, rng.randint(1, N)])
        vecs = []
        for _ in range(n):
            v = rng.choice(protos)
            for _ in range(rng.choice([0, 0, 1, 2, 4, 8])):
                v ^= 1 << rng.randrange(dim)
            vecs.append(v)
        images.append((min(dim, rng.choice([-1, 0, 1, 2, 3, 5, 8])), vecs))  # artifact: <= dim
    return images


def attention_packets(max_tokens: int, dim: int, count: int, seed: int) -> list:
    """Attention packets ``(ks, vs, sizes, qs)``: spike vectors as ints, sizes summing to at most N.

    Edge packets: all-zero K/V/Q (Y = 0), all-one K/V/Q with every token active (the largest Y,
    ``head_dim * N``), one active token of size N (everything merged into it), K present where V is zero.
    Random packets mix densities and active-token counts.
    """
    rng = random.Random(seed)
    full, N = (1 << dim) - 1, max_tokens
    packets = [([0] * N, [0] * N, [1] * N, [0] * N), ([full] * N, [full] * N, [1] * N, [full] * N),
               ([full], [full], [N], [full, 0, full]), ([full] * 2, [0, 1], [1, 1], [full] * 2)]
    for _ in range(count):
        n = rng.randint(1, N)
        sizes = [1] * n
        for _ in range(N - n):  # merged tokens add to some representative's size
            sizes[rng.randrange(n)] += 1
        dens = lambda: rng.choice([0.0, 0.05, 0.2, 0.5, 1.0])  # noqa: E731
        vec = lambda p: sum(1 << d for d in range(dim) if rng.random() < p)  # noqa: E731
        dk, dv, dq = dens(), dens(), dens()
        packets.append(([vec(dk) for _ in range(n)], [vec(dv) for _ in range(n)], sizes,
                        [vec(dq) for _ in range(rng.randint(1, n))]))
    return packets


def embed_case(lanes: int, dim: int, patch_dim: int, tokens: int, seed: int, kind: str = "random",
               stride: int | None = None, fmt=FORMATS) -> dict:
    """Embedding weights (dim, patch_dim), biases (tokens, dim), windows (tokens, patch_dim) and the memory
    images for ``hw.embed.Embedding`` (``w_rows``, ``b_rows``, lanes past ``dim`` zero; ``pix_rows`` at
    ``stride`` rows per token, its window memory's ``beat_stride``, default ``bpt``; ``bpt``; ``nnz``, the
    non-zero pixels of each window).

    ``kind``: ``random`` (mixed magnitudes), ``extreme`` (the largest weights and pixels: both clamps hit),
    ``boundary`` (all-zero windows, biases one step either side of each clamp and of the floor shift).
    """
    rng = random.Random(seed)
    wmax = fmt.emb_weight_max
    if kind == "random":
        w = [[rng.choice([rng.randint(-wmax, wmax), rng.randint(-300, 300)]) for _ in range(patch_dim)]
             for _ in range(dim)]
        b = [[rng.randint(-(1 << 20), 1 << 20) for _ in range(dim)] for _ in range(tokens)]
        pix = [[rng.choice([0, 255, rng.randrange(256)]) for _ in range(patch_dim)] for _ in range(tokens)]
    elif kind == "extreme":
        w = [[wmax if d % 2 else -wmax] * patch_dim for d in range(dim)]
        b = [[0 if d % 3 else (1 << 20) for d in range(dim)] for _ in range(tokens)]
        pix = [[255] * patch_dim if k % 2 else [0] * patch_dim for k in range(tokens)]
    elif kind == "boundary":
        sh = fmt.emb_shift
        edges = [(fmt.res_max + 1) << sh, (fmt.res_max << sh) + (1 << sh) - 1, fmt.res_max << sh,
                 fmt.res_min << sh, (fmt.res_min << sh) - 1, -1, 0, (1 << sh) - 1, -(1 << sh)]
        w = [[rng.randint(-wmax, wmax) for _ in range(patch_dim)] for _ in range(dim)]
        b = [[edges[(d + k) % len(edges)] for d in range(dim)] for k in range(tokens)]
        pix = [[0] * patch_dim for _ in range(tokens)]
    else:
        raise ValueError(f"embed_case kind must be random, extreme or boundary, got {kind!r}")
    chunks = -(-dim // lanes)
    lane = lambda row, c: [row[c * lanes + l] if c * lanes + l < dim else 0 for l in range(lanes)]  # noqa: E731
    w_rows = [lane([w[d][i] for d in range(dim)], c) for c in range(chunks) for i in range(patch_dim)]
    b_rows = [lane(b[k], c) for k in range(tokens) for c in range(chunks)]
    # the window memory: each window's bytes in beats (row k * stride + beat), the padding not zero and the
    # rows past the window's beats full of an earlier window's pixels (the embedding must trust neither)
    bpt = -(-patch_dim // BEAT_BYTES)
    stride = stride or bpt
    padded = [bytes(p + [0xA5] * (BEAT_BYTES * stride - patch_dim)) for p in pix]
    pix_rows = [int.from_bytes(w[BEAT_BYTES * j:BEAT_BYTES * (j + 1)], "little") for w in padded for j in range(stride)]
    return {"w": w, "b": b, "pix": pix, "chunks": chunks, "w_rows": w_rows, "b_rows": b_rows, "bpt": bpt,
            "pix_rows": pix_rows, "nnz": [sum(1 for v in p if v) for p in pix]}


def lif_layer_jobs(lanes: int, rows: int, count: int, seed: int, acc_bits: int = FORMATS.acc_bits,
                   back_to_back: bool = True) -> list:
    """Images of LIF-layer updates: a list of lists of ``(row, x, th)``; a clear precedes every image.

    Rows repeat, often back to back (the read-after-write path; never with ``back_to_back=False``, the
    order a non-transparent layer takes), inputs mix small values (frequent spikes and resets) with
    extreme ones.
    """
    rng = random.Random(seed)
    hi, lo = (1 << (acc_bits - 1)) - 1, -(1 << (acc_bits - 1))
    images = []
    for _ in range(3):
        ups = []
        for _ in range(count):
            row = ups[-1][0] if ups and rng.random() < 0.3 else rng.randrange(rows)
            if not back_to_back and ups and row == ups[-1][0]:
                row = (row + 1 + rng.randrange(rows - 1)) % rows   # any other row
            scale = rng.choice([8, 300, hi])
            x = [rng.randint(max(lo, -scale), min(hi, scale)) for _ in range(lanes)]
            th = [rng.randint(1, min(hi, scale)) for _ in range(lanes)]
            ups.append((row, x, th))
        images.append(ups)
    return images


def head_case(lanes: int, dim: int, classes: int, mults: int, max_weight: int, beats: int, seed: int,
              fmt=FORMATS) -> dict:
    """Readout beats, classifier weights/biases and the memory rows for ``hw.head.Head``.

    Weights are extreme (+-max) for half the classes; counts stay within ``count_bits`` (the artifact's
    N * T bound) by keeping the sum of weights below it.
    """
    rng = random.Random(seed)
    chunks, groups = -(-dim // lanes), -(-dim // mults)
    wmax = fmt.head_weight_max
    head_w = [[rng.choice([wmax, -wmax]) if c % 2 else rng.randint(-wmax, wmax) for _ in range(dim)]
              for c in range(classes)]
    head_b = [rng.randint(-(1 << 20), 1 << 20) for _ in range(classes)]
    budget = (1 << fmt.count_bits) - 1
    evs = []
    for _ in range(beats):
        w = rng.randint(1, max_weight)
        if budget < w:
            break
        budget -= w
        evs.append((rng.randrange(chunks), rng.getrandbits(lanes) if rng.random() < 0.8 else (1 << lanes) - 1, w))
    w_rows = [[head_w[c][g * mults + l] if g * mults + l < dim else 0 for l in range(mults)]
              for c in range(classes) for g in range(groups)]
    return {"beats": evs, "head_w": head_w, "head_b": head_b, "w_rows": w_rows}


def read_commands(seed: int, count: int = 12) -> list:
    """``(byte address, beats)`` commands of the AXI reader (hw/axi_reader.py): edge cases (one beat, a whole
    aligned 16-beat burst, runs crossing a burst block and a 4 KiB page, zero beats, a long run), then random."""
    rng = random.Random(seed)
    cmds = [(0x1000, 1), (0x2000, 16), (0x2078, 3), (0x0FF8, 2), (0x3000, 0), (0x4008, 40)]
    cmds += [(rng.randrange(0, 1 << 20) * 8, rng.choice([1, 2, 15, 16, 17, 33, 100])) for _ in range(count)]
    return cmds


def tile_commands(cfg, lanes: int, base: int) -> list:
    """``hw.tile_loader.TileLoader`` commands for every tile of a weight buffer at byte address ``base``
    (``dynaspike.ddr.tiles``), each writing where the on-chip layout keeps that tile's rows, so that the
    memories end up as ``packing.memory_images``."""
    return [{"addr": base + t["offset"], "fan_in": t["fan_in"], "thresholds": t["thresholds"],
             "w_base": t["w_base"], "b_row": t["b_row"], "th_row": t["th_row"] or 0} for t in ddr.tiles(cfg, lanes)]


def write_granules(rows: dict, addr: int, en: int, value: int, lanes: int, bits: int, granules: int):
    """Apply one cycle of a granular memory write port (``en`` one bit per granule, ``value`` the row of
    ``lanes`` signed ``bits``-bit lanes) to ``rows`` (row -> list of lanes; None where never written), as
    the memory would."""
    data = ddr.unpack_lanes(value.to_bytes(lanes * bits // 8, "little"), lanes, bits).tolist()
    row, per = rows.setdefault(addr, [None] * lanes), lanes // granules
    for g in range(granules):
        if en >> g & 1:
            row[g * per:(g + 1) * per] = data[g * per:(g + 1) * per]


def state_banks(lanes: int, half: int, seed: int, max_rows: int = 3, acc_bits: int = FORMATS.acc_bits) -> dict:
    """A staging LIF layer's rows ``0 .. half - 1`` as two banks (``hw.state_mover``): state rows read from
    DDR (``v_in``, at byte ``in_addr + r * row bytes`` for row ``r``), updates ``x``, ``th`` of every row,
    per bank the fill commands ``(row, rows, zero)`` (1 to ``max_rows`` rows, about a third of them zero)
    and the drain commands ``(row, rows)`` (two rows each, to rows of their own at ``out_addr``), and
    ``want``: per row the reference LIF's ``(spikes, new membranes)``."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    bank = half // 2
    v_in = nrng.integers(-(1 << (acc_bits - 2)), 1 << (acc_bits - 2), (half, lanes))
    x = nrng.integers(-(1 << (acc_bits - 2)), 1 << (acc_bits - 2), (half, lanes))
    th = nrng.integers(0, 1 << (acc_bits - 3), (half, lanes))
    fills, drains, zero = [], [], set()
    for b in range(2):
        cmds, r = [], b * bank
        while r < (b + 1) * bank:
            n = min(rng.randint(1, max_rows), (b + 1) * bank - r)
            z = rng.random() < 0.3
            cmds.append((r, n, z))
            if z:
                zero.update(range(r, r + n))
            r += n
        fills.append(cmds)
        drains.append([(r, min(2, (b + 1) * bank - r)) for r in range(b * bank, (b + 1) * bank, 2)])
    want = {}
    for r in range(bank * 2):
        v, spikes = lif([0] * lanes if r in zero else [int(a) for a in v_in[r]], [int(a) for a in x[r]],
                        [int(a) for a in th[r]])
        want[r] = (spikes, v)
    return {"bank": bank, "v_in": v_in, "x": x, "th": th, "fills": fills, "drains": drains, "want": want,
            "in_addr": 0x10000, "out_addr": 0x40000, "row_bytes": ddr.lane_row_bytes(lanes, acc_bits)}
