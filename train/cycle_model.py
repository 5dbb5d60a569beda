"""The core's cycle model: the exact CYCLES count of an inference, from the golden model's spike maps.

The sequencer (hw/core_passes.py, docs/hardware.md "Sequencer") runs an inference as a fixed order of passes; each
pass costs what ``dynaspike.cycles`` says for the tokens it walks and the spikes it finds. This module
replays that order over the golden model's trace (which tokens were active at each block, every spike
map), so it predicts the RTL's cycle counter exactly, image by image, and splits the count by pass.

A model whose weights are in DDR (``memory``: the simulated memory, ``dynaspike.ddr.Memory``; ``weights_at``:
the weight buffer's byte address, the WEIGHTS_ADDR register) runs its event passes tile by tile; their cycles
are ``dynaspike.ddr.tile_pass_schedule``'s against a memory of that fixed read latency (exact in
simulation; on the board, the estimate the cycle counter is compared with).

``ideal`` is the bound the issue asks for: the accumulate operations actually needed, divided by the adds
the accumulate engine does per cycle (``ceil(ACs / (ACC_ROWS * P * ACC_SPIKES))``); ``work_bound`` adds the
multiplies the core does on its multipliers (the embedding's, of the non-zero window pixels only, on
``cycles.EMB_LANES`` x ``EMB_PIXELS`` DSPs; the classifier's on ``cycles.HEAD_MULTS``), the least any core
with these units could take.
"""

from dataclasses import dataclass, field

import numpy as np

from dynaspike import cycles as cy
from dynaspike import ddr
from dynaspike.artifact import IntModel
from dynaspike.packing import beats_per_token, result_payload_beats

from .golden import GoldenModel, GoldenResult


# Fixed sequencing costs measured once on the RTL (cocotb state log) and explained in docs/hardware.md.
EMB_EXTRA = 1 + cy.EMB_LATENCY   # a token's last pixel pair issued -> its vector reaches the merge
ATTN_EXTRA = 1    # from entering the attention pass to its last Y row, beyond attn_cycles
DECISION = 1      # STEP (the first step's only), BLOCK, ENDBLOCK: one cycle each (the halting checks ride
                  # on the block's last residual add)
TAKE = 1          # IDLE: the sequencer takes the embedded image from the front (hw/core_intake.py)
FRONT_KINDS = ("img", "emb")   # the front's passes: from the first beat to the merge's last token


@dataclass
class CyclePrediction:
    cycles: np.ndarray                       # (B,) the CYCLES register
    ideal: np.ndarray                        # (B,) ceil(ACs / (ACC_ROWS * P * ACC_SPIKES))
    work_bound: np.ndarray                   # (B,) ideal + multiplies on the multipliers
    by_pass: dict = field(default_factory=dict)   # pass kind -> (B,) cycles
    passes: list = field(default_factory=list)    # (kind, t, l, (B,) cycles) of every pass of the blocks and
                                                  # the readout, in the sequencer's order (l = -1: readout)
    ddr_read_bytes: np.ndarray | None = None     # (B,) weight-tile bytes read from DDR (with ``memory``)

    @property
    def front(self) -> np.ndarray:
        """(B,) the front's cycles (FRONT_KINDS): what a stream of images hides behind the previous image."""
        return sum(self.by_pass[k] for k in FRONT_KINDS)


def _x_pass(rows, early=False):
    """An x pass over ``rows`` X rows; one that may end early (``early``, per image) ends with its last read."""
    return rows + np.where(early, 1, cy.DRAIN_X + 1)


def _event_pass(events, has_tokens, early=False):
    """An event pass; one that may end early (``early``, per image) ends with its last event."""
    return np.where(has_tokens, 1 + events, 0) + np.where(early, 1, cy.DRAIN_EVENTS + 1)


def _ddr_event_pass(work, has_tokens, at: int, tiles: int, fan_in: int, thresholds: bool, lanes: int,
                    memory, before=0) -> np.ndarray:
    """A DDR-mode event pass of ``tiles`` tiles from byte address ``at``; ``work``: (B,) event beats of one
    tile (one engine row per active token). Its tiles start loading (``TilePass``) in the first cycle of the
    pass in front of it, ``before`` (B,) cycles earlier (the x or attention pass: hw/core_passes.py
    ``load_tiles``), or in its own first; it walks the tokens over each tile, and drains."""
    out = np.full(len(work), cy.DRAIN_EVENTS + 1, np.int64)
    before = np.broadcast_to(np.asarray(before, np.int64), np.shape(work))
    for b, (w, has, early) in enumerate(zip(np.asarray(work).tolist(), np.asarray(has_tokens).tolist(),
                                            before.tolist())):
        if has:
            last = ddr.tile_pass_schedule(at, fan_in, thresholds, [w] * tiles, lanes, memory.read_latency,
                                          start=-early, begin=0, lead=1)[-1]["done"]
            out[b] += last + 1
    return out


def head_tail(cfg) -> int:
    """Cycles from the last readout pass's end to the last logit (the classifier on cycles.HEAD_MULTS)."""
    return cy.head_cycles(cfg.num_classes, cfg.dim, cy.HEAD_MULTS)


def predict(model: IntModel, images, lanes: int, *, dense: bool = False, golden: GoldenResult | None = None,
            gm: GoldenModel | None = None, memory: ddr.Memory | None = None, weights_at: int = 0) -> CyclePrediction:
    """Cycle counts of ``images`` on a core with ``lanes`` P (for the model's own capacity); with ``memory``,
    of the model with its weights in DDR at byte address ``weights_at`` (a beat's)."""
    cfg = model.config
    gm = gm or GoldenModel(model)
    r = golden if golden is not None and golden.trace else gm.run(images, dense=dense, trace=True)
    tr = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in r.trace.items()}
    B, N, D, L, T, H = r.logits.shape[0], cfg.num_tokens, cfg.dim, cfg.blocks, cfg.t_max, cfg.heads
    hch = -(-cfg.hidden_dim // lanes)    # hidden chunks of P lanes
    dc = -(-D // lanes)                  # rows of P lanes per token (chunks of D)
    dg, hg = cy.engine_rows(dc), cy.engine_rows(hch)   # engine rows of a D-wide / the hidden layer
    mask = r.mask.numpy()
    rep = r.rep.numpy()
    reps = rep == np.arange(N)
    kinds = ("img", "emb", "decisions", "ain", "qkv", "attn", "proj", "min", "fc1", "fc2", "readout", "head")
    by = {k: np.zeros(B, np.int64) for k in kinds}
    bpt = beats_per_token(cfg)
    E = cy.emb_lanes(lanes)
    ech = -(-D // E)                                    # the embedding's chunks of E channels
    nnz = r.emb_nonzero.numpy()                        # (B, N) non-zero pixels of each window
    # The embedding starts on a token once its window is in and the token before it is done
    # (cycles.embed_token_ends); each token's vector then goes to the merge, which decides the tokens in
    # order (cycles.merge_decisions); the front ends with the last decision. The image's first window
    # costs its beats ("img"), the rest is "emb".
    merging = not dense and model.params.merge_threshold >= 0
    for b, row in enumerate(nnz.tolist()):
        arrivals = [e + EMB_EXTRA for e in cy.embed_token_ends(row, ech, bpt)]
        by["emb"][b] = cy.merge_decisions(arrivals, cy.merge_compares(rep[b].tolist(), merging))[-1] - bpt
    by["img"][:] = bpt
    by["head"][:] = head_tail(cfg)

    def per_token(key, active):                        # (B, N) spike counts of the active tokens
        return np.where(active, tr[key].sum(-1), 0) if key in tr else np.zeros(active.shape, np.int64)

    def head_max(spikes, active, gate=None):           # (B, N) max over heads of per-head spike counts
        c = spikes.reshape(B, N, H, D // H).sum(-1)
        if gate is not None:
            c = np.where(gate.reshape(B, N, H, D // H).any(-1), c, 0)
        return np.where(active, np.maximum(1, c.max(-1)), 0)

    buf = ddr.weight_buffer(cfg, lanes) if memory is not None else None
    read = np.zeros(B, np.int64)                       # DDR mode: tile bytes read per image
    if weights_at % ddr.BEAT_BYTES:
        raise ValueError(f"the weight buffer must start at a beat (8 bytes), not at {weights_at:#x}")

    def event_pass(active_key, rows, early, l, layer, fan_in, thresholds, before=0):
        """An event pass over the spikes of ``active_key``, ``rows`` engine rows (tiles) of the ``layer`` of
        block l's weight buffer on; on chip one that may end early does so, in DDR mode none does, and its
        tiles start ``before`` (B,) cycles ahead, with the pass in front of it."""
        work = beats(active_key)
        if memory is None:
            return _event_pass(rows * work, has, early)
        read[:] += np.where(has, rows * ddr.tile_bytes(fan_in, lanes, thresholds), 0)
        return _ddr_event_pass(work, has, weights_at + buf[f"b{l}.{layer}"]["offset"], rows, fan_in, thresholds,
                               lanes, memory, before)

    def add(kind, t, l, c):
        by[kind] += c
        passes.append((kind, t, l, np.asarray(c, np.int64)))
        return c

    passes = []
    active = reps.copy()
    for t in range(T):
        if t == 0:
            by["decisions"] += TAKE + DECISION                  # IDLE's take, STEP (later steps: no cycle)
        for l in range(L):
            p = f"t{t}.b{l}."
            n = active.sum(1)
            has = n > 0
            a_on, f_on = bool(mask[2 * l, t]), bool(mask[2 * l + 1, t])
            # BLOCK; ENDBLOCK, except after the step's last block when one of its modules ran
            by["decisions"] += DECISION * (1 if l == L - 1 and (a_on or f_on) else 2)
            # event beats of one engine row per active token (cycles.row_beats, vectorised)
            beats = lambda key: np.where(active, np.maximum(cy.ACC_ROWS, -(-per_token(key, active) // cy.ACC_SPIKES)),  # noqa: E731
                                        0).sum(1)
            if a_on:
                ain = add("ain", t, l, _x_pass(n * dc, n >= cy.EARLY_END_TOKENS))
                add("qkv", t, l, event_pass(p + "ain", 3 * dg, n >= cy.EARLY_END_TOKENS_QKV, l, "q", D, True, ain))
                kv = head_max(tr[p + "k"], active, tr[p + "v"]).sum(1)
                q = head_max(tr[p + "q"], active)               # (B, N), 0 for the inactive tokens
                # A Y row goes to the LIF layer a chunk per cycle (dc cycles); the unit computes the next row
                # meanwhile, so a row costs max(its Q cycles, dc), the first its Q cycles, the last's drain dc - 1.
                q0 = q[np.arange(B), active.argmax(1)]         # the first active token's
                yy = np.where(active, np.maximum(q, dc), 0).sum(1) - (np.maximum(q0, dc) - q0) + (dc - 1)
                attn = add("attn", t, l, np.where(has, kv + yy + cy.ATTN_PHASE_OVERHEAD + ATTN_EXTRA, 0)
                           + np.where(n >= cy.EARLY_END_TOKENS, 1, cy.DRAIN_ATTN + 1))
                add("proj", t, l, event_pass(p + "attn", dg, False, l, "proj", D, False, attn))
            if f_on:
                # after an attention module, proj's residual add feeds the MLP's input LIF on chip (not in DDR
                # mode: hw/core_passes.py)
                mlp_in = 0
                if not a_on or memory is not None:
                    mlp_in = add("min", t, l, _x_pass(n * dc, n >= cy.EARLY_END_TOKENS))
                add("fc1", t, l, event_pass(p + "min", hg, n >= cy.EARLY_END_TOKENS, l, "fc1", D, True, mlp_in))
                add("fc2", t, l, event_pass(p + "hid", dg, False, l, "fc2", cfg.hidden_dim, False))
            if l == L - 1:   # the tokens whose readout rides on this block's last residual add
                fed = active if (a_on or f_on) else np.zeros_like(active)
            active = tr[p + "active_after"].astype(bool)
        add("readout", t, -1, _x_pass((reps & ~fed).sum(1) * dc, t != T - 1))
    total = sum(by.values())
    acs = r.acs_total.numpy()
    ideal = -(-acs // (cy.ACC_ROWS * lanes * cy.ACC_SPIKES))
    macs_emb = D * nnz.sum(1)                          # zero pixels are skipped
    work = ideal + -(-macs_emb // (E * cy.EMB_PIXELS)) + -(-(cfg.num_classes * D) // cy.HEAD_MULTS)
    return CyclePrediction(total, ideal, work, by, passes, read if memory is not None else None)


def stream_ends(cycles, front, num_classes: int) -> np.ndarray:
    """``(B,)`` the cycle each image's RESULT trailer leaves the core when the images arrive back to back
    (RUN_CONFIG.STREAM, every packet queued, the output always ready, no taps), counted from the cycle the
    first image's first payload beat enters the core (its handshake on the input stream: cycle 0);
    ``ends[-1] + 1`` cycles for the whole stream.

    The front takes that beat two cycles later (the stream parser's register, then F_IDLE starts the image).
    ``cycles``, ``front``: each image's CYCLES and its front's part (``CyclePrediction.cycles``, ``.front``).
    The front (first beat to the merge's last token) of an image runs while the sequencer
    has the one before; the sequencer takes it (``TAKE``) in the cycle after the front is ready or after the
    previous RESULT packet's trailer, whichever is later; the front takes the next image's first beat two
    cycles after the take (it leaves READY, then starts in F_IDLE). The RESULT packet follows the last logit:
    header, ``packing.result_payload_beats`` payload beats and trailer, one a cycle."""
    packet = 3 + result_payload_beats(num_classes)
    front = np.asarray(front, np.int64)
    back = np.asarray(cycles, np.int64) - front   # the take's cycle to the last logit, both included
    ends, start, idle = [], 2, None             # idle: the first cycle the sequencer is back in IDLE
    for f, b in zip(front.tolist(), back.tolist()):
        take = start + f if idle is None else max(start + f, idle)
        last_logit = take + b - 1
        ends.append(last_logit + packet)
        idle = last_logit + packet + 1
        start = take + 2
    return np.asarray(ends, np.int64)


def predict_cycles(model: IntModel, images, lanes: int, *, dense: bool = False) -> np.ndarray:
    """The CYCLES register of each image: ``(B,)`` int64."""
    return predict(model, images, lanes, dense=dense).cycles
