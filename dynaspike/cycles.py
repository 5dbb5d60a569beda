"""The cycle model of the hardware components: exact cycle counts, predicted from the inputs alone.

Pure Python (no numpy, torch or Amaranth): the golden model, the testbenches and the driver import it.
Every RTL component in ``hw/`` takes its latency constants from here, and its tests assert that the RTL
takes exactly the predicted number of cycles. The sequencer's per-pass costs are here too; the
whole-inference count, which needs the golden model's spike maps, is ``train/cycle_model.py``.

Convention: a component's cycle count for a job is measured from the clock cycle of the first input
transfer (cycle 0) to the clock cycle of the last output transfer, inclusive of neither end's idle time,
with the producer always valid and the consumer always ready. Idle insertion and backpressure only ever
add cycles; they never change results.
"""


def _pipelined(n: int, latency: int, what: str) -> int:
    """Cycles for ``n`` back-to-back items through a pipeline of ``latency``: one per cycle, then the latency."""
    if n < 1:
        raise ValueError(f"{what} needs at least one item, got {n}")
    return n - 1 + latency


#: LIF update (hw/lif.py): one pipeline register between input and output transfer.
LIF_LATENCY = 1

#: Accumulate engine (hw/accumulate.py): one cycle of synchronous BRAM read, one to add an event's weight
#: rows lane by lane, one to add that sum into the accumulators.
ACC_LATENCY = 3

#: Present spikes the accumulate engine adds per cycle: its weight memory is read on both ports of the
#: block RAMs, one weight row per port and cycle (the sequencer takes a token's spikes from both ends of its
#: spike vector, the lowest and the highest left, so a row of ``s`` spikes takes ``ceil(s / 2)`` cycles).
ACC_SPIKES = 2

#: Rows of P lanes the accumulate engine computes at once: its accumulators (and its weight and bias rows) are
#: ``ACC_ROWS * P`` lanes wide, two chunks of a layer's output side by side (``packing.weight_layout``). The
#: LIF layer and the residual adds behind it take one row of P lanes per cycle, so the sequencer gives every
#: engine row at least ``ACC_ROWS`` event beats (``row_beats``): results never arrive faster than they drain.
ACC_ROWS = 2


def engine_rows(chunks: int) -> int:
    """Engine rows of a layer whose output is ``chunks`` chunks of P lanes: ``ceil(chunks / ACC_ROWS)``."""
    return -(-chunks // ACC_ROWS)


def lif_cycles(vectors: int) -> int:
    """Cycles for ``vectors`` back-to-back P-lane LIF updates: one per cycle plus the pipeline latency."""
    return _pipelined(vectors, LIF_LATENCY, "lif_cycles")


def acc_beats(spikes: int) -> int:
    """Event beats the accumulate engine spends on one output row with ``spikes`` present input spikes.

    One beat (one cycle) per ``ACC_SPIKES`` present spikes; a row with no spike at all still needs one beat
    to emit its bias (the empty-list marker), so absent spikes cost zero cycles and an all-zero row costs one.
    """
    if spikes < 0:
        raise ValueError(f"spike count must be >= 0, got {spikes}")
    return max(1, -(-spikes // ACC_SPIKES))


def row_beats(spikes: int) -> int:
    """Event beats the core's sequencer spends on one engine row (``ACC_ROWS`` chunks of P output channels)
    with ``spikes`` present input spikes: :func:`acc_beats`, padded with empty beats to ``ACC_ROWS``."""
    return max(ACC_ROWS, acc_beats(spikes))


def acc_cycles(spike_counts) -> int:
    """Cycles for back-to-back accumulate rows with these present-spike counts (no bubbles between rows)."""
    counts = list(spike_counts)
    if not counts:
        raise ValueError("acc_cycles needs at least one row")
    return sum(acc_beats(n) for n in counts) - 1 + ACC_LATENCY


def acc_done_cycles(spike_counts) -> list:
    """Cycle of each row's output transfer (relative to the first event transfer), in order."""
    done, t = [], -1
    for n in spike_counts:
        t += acc_beats(n)
        done.append(t + ACC_LATENCY)
    return done

#: Halting unit (hw/halt.py): one cycle of LUT read, one of accumulate-and-compare.
HALT_LATENCY = 2


def halt_cycles(tokens: int) -> int:
    """Cycles for ``tokens`` back-to-back halting checks."""
    return _pipelined(tokens, HALT_LATENCY, "halt_cycles")

#: Token merge (hw/merge.py): the consecutive token indices whose vectors it reads and compares a token with in
#: one cycle (one read port each); it skips groups that hold no earlier representative.
MERGE_GROUP = 4


def merge_compares(rep, merging: bool, group: int = MERGE_GROUP) -> list:
    """Per token of one image, the cycles the token merge (hw/merge.py) compares it, given every token's
    representative ``rep`` (the merge's outcome: the golden model's, or ``hw.reference.merge``): the groups
    of ``group`` consecutive token indices that hold an earlier representative, in index order, up to the
    group of its own representative if it was merged, all of them if not; 0 for every token when not
    ``merging`` (a negative threshold: nothing is compared)."""
    out = []
    for j, r in enumerate(rep):
        stop = 0 if not merging else j if r == j else r + 1
        out.append(len({i // group for i in range(stop) if rep[i] == i}))
    return out


def merge_decisions(arrivals, compares) -> list:
    """The cycle each token's merge decision is offered (hw/merge.py, always taken), for tokens that came in
    the cycles ``arrivals`` and are compared in ``compares`` cycles (:func:`merge_compares`): a token's
    vector is read the cycle after it came or in the cycle its predecessor is decided, whichever is later;
    it is decided the cycle after (no comparison) or ``2 + c`` cycles after the read, and offered the cycle
    after that."""
    out, decided = [], None
    for a, c in zip(arrivals, compares):
        read = a + 1 if decided is None else max(a + 1, decided)
        decided = read + 1 if c == 0 else read + 2 + c
        out.append(decided + 1)
    return out

#: Attention K^T V / Q (K^T V) unit (hw/attention.py): one cycle to switch from the KV phase to the Y
#: phase, one cycle for the last row's output register.
ATTN_PHASE_OVERHEAD = 2


def _head_counts(bits: int, dim: int, heads: int) -> list:
    dh = dim // heads
    return [bin((bits >> (h * dh)) & ((1 << dh) - 1)).count("1") for h in range(heads)]


def attn_token_cycles_kv(k: int, v: int, dim: int, heads: int) -> int:
    """Cycles of one KV token (K, V spike vectors as ints): the largest per-head K count whose V is not zero."""
    kc, vc = _head_counts(k, dim, heads), _head_counts(v, dim, heads)
    return max(1, max(kn if vn else 0 for kn, vn in zip(kc, vc)))


def attn_token_cycles_q(q: int, dim: int, heads: int) -> int:
    """Cycles of one Y token: the largest per-head Q spike count."""
    return max(1, max(_head_counts(q, dim, heads)))


def attn_cycles(ks: list, vs: list, qs: list, dim: int, heads: int) -> int:
    """Cycles from the first KV token's transfer to the last Y row's transfer (no idle, no backpressure)."""
    if not ks or not qs or len(ks) != len(vs):
        raise ValueError(f"attn_cycles needs >= 1 KV token with K and V and >= 1 Q token, got "
                         f"{len(ks)} K, {len(vs)} V, {len(qs)} Q")
    return (sum(attn_token_cycles_kv(k, v, dim, heads) for k, v in zip(ks, vs))
            + sum(attn_token_cycles_q(q, dim, heads) for q in qs) + ATTN_PHASE_OVERHEAD)

#: Embedding (hw/embed.py): weight read, registered multiply, accumulate (in the DSPs), then the sum of the
#: pixel slots, shifted and clamped into the output register.
EMB_LATENCY = 4

#: Pixels the embedding multiplies per cycle and channel: its weight memory is read on both ports of the
#: block RAMs (the rows of two pixels of a window), so each of its E lanes has two DSPs.
EMB_PIXELS = 2


def embed_beats(nnz: int) -> int:
    """Cycles the embedding spends on one (token, chunk) whose window has ``nnz`` non-zero pixels: zero
    pixels are skipped, ``EMB_PIXELS`` non-zero ones per cycle (the lowest and the highest left, like the
    accumulate engine's spikes), and an all-zero window takes one cycle (the bias alone)."""
    if nnz < 0:
        raise ValueError(f"non-zero pixel count must be >= 0, got {nnz}")
    return max(1, -(-nnz // EMB_PIXELS))


def embed_cycles(nnzs, chunks: int) -> int:
    """Cycles from the first window's transfer to the last (token, chunk) output's transfer, for windows with
    ``nnzs`` non-zero pixels (one count per token, all windows in memory)."""
    nnzs = list(nnzs)
    if not nnzs or chunks < 1:
        raise ValueError(f"embed_cycles needs >= 1 token and >= 1 chunk, got {len(nnzs)}, {chunks}")
    return sum(chunks * embed_beats(n) for n in nnzs) + EMB_LATENCY


def embed_token_ends(nnzs, chunks: int, bpt: int) -> list:
    """The cycle (counted from the image's first beat, one beat per cycle, ``bpt`` beats per window) at which
    the embedding issues each token's last pixel pair. Token ``k`` starts when its window is in (the
    cycle after its last beat, ``(k + 1) * bpt``) and the token before it is done, whichever is later: a
    window of few non-zero pixels can be embedded faster than the stream brings the next one."""
    ends, end = [], 0
    for k, n in enumerate(nnzs):
        end = max(end, (k + 1) * bpt) + chunks * embed_beats(n)
        ends.append(end)
    return ends

#: LIF layer with stored membranes (hw/lif_layer.py): membrane read, then update into the output register.
LIF_LAYER_LATENCY = 2


def lif_layer_cycles(updates: int) -> int:
    """Cycles for ``updates`` back-to-back row updates of a LIF layer."""
    return _pipelined(updates, LIF_LAYER_LATENCY, "lif_layer_cycles")

#: Classifier (hw/head.py): weight read, registered multiply, sum-and-accumulate into the output register.
HEAD_LATENCY = 3


def head_cycles(classes: int, dim: int, mults: int) -> int:
    """Cycles from the classifier's ``go`` to the last logit's transfer: one cycle per group of ``mults``."""
    if min(classes, dim, mults) < 1:
        raise ValueError(f"head_cycles needs positive counts, got {classes}, {dim}, {mults}")
    return classes * -(-dim // mults) + HEAD_LATENCY

# ---------------------------------------------------------------------------------------------- core
#: The lane count P the project builds, ships, benches and drives by default. At 32 lanes the core fits the
#: XC7Z020's LUT budget (README, "Benchmarks"); a token's D = 64 channels are two rows of P lanes.
DEFAULT_LANES = 32

# The core's multipliers (DSPs). Embedding MACs are D * nnz per token and image, nnz the window's non-zero
# pixels (at most N * D * patch_dim: 16K for the digits model, 124K for Fashion-MNIST's 121-pixel windows,
# about 45 % of that on real images): 32 lanes of EMB_PIXELS = 2 DSPs do them in
# ceil(D / 32) * embed_beats(nnz) cycles per token; the classifier's classes * D MACs take classes * D / 16
# cycles on 16 (40 cycles fewer per image than on 8). 80 DSPs in all, 36 % of the XC7Z020's 220.
EMB_LANES = 32
HEAD_MULTS = 16


def emb_lanes(lanes: int) -> int:
    """Embedding multipliers of a core with ``lanes`` P (never more than P: a chunk of E lanes fills part of a row)."""
    return min(EMB_LANES, lanes)

# The sequencer (hw/core_passes.py) runs an inference as passes. A pass walks the tokens of a mask through one
# pipeline: one cycle to enter it (its walker loads), its issue cycles, then DRAIN cycles for the
# pipeline to empty and one to leave. The drains are the pipelines' depths past the last issue.
DRAIN_X = 3        # X read -> LIF layer -> spike write (ain, min, readout)
DRAIN_EVENTS = 6   # event -> accumulate engine -> ACC_ROWS halves: threshold read -> LIF layer -> spike or X write
DRAIN_ATTN = 2     # last Y row -> LIF layer -> spike write

# Active tokens from which a pass ends with its last issue instead of draining (hw/core_passes.py derives the bounds):
# the x passes in front of an event pass, the attention pass in front of proj, fc1 in front of fc2 ...
EARLY_END_TOKENS = 4
# ... and q, k, v in front of the attention pass, which takes a token's K and V a cycle after the last's
EARLY_END_TOKENS_QKV = 7
