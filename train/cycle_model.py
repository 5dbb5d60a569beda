"""The core's cycle model: the exact CYCLES count of an inference, from the golden model's spike maps.

The sequencer (hw/core.py, docs/hardware.md "Sequencer") runs an inference as a fixed order of passes; each
pass costs what ``dynaspike.cycles`` says for the tokens it walks and the spikes it finds. This module
replays that order over the golden model's trace (which tokens were active at each block, every spike
map), so it predicts the RTL's cycle counter exactly, image by image, and splits the count by pass.

``ideal`` is the bound the issue asks for: the accumulate operations actually needed, divided by the P
lanes (``ceil(ACs / P)``); ``work_bound`` adds the multiplies on the core's multipliers (embedding on
``cycles.EMB_LANES``, classifier on ``cycles.HEAD_MULTS``), the least any core with these units could take.
"""

from dataclasses import dataclass, field

import numpy as np

from dynaspike import cycles as cy
from dynaspike.artifact import IntModel
from dynaspike.packing import beats_per_token

from .golden import GoldenModel, GoldenResult


# Fixed sequencing costs measured once on the RTL (cocotb state log) and explained in docs/hardware.md.
IMG_EXTRA = 1     # from the first image beat: the beats, then the trailer and the parser's ok
EMB_EXTRA = 1 + cy.EMB_LATENCY + cy.MERGE_LATENCY   # enter, multiply, last chunk out, merge out
ATTN_EXTRA = 1    # from entering the attention pass to its last Y row, beyond attn_cycles
DECISION = 1      # STEP, BLOCK, MLP, HALTDEC, ENDBLOCK: one cycle each


@dataclass
class CyclePrediction:
    cycles: np.ndarray                       # (B,) the CYCLES register
    ideal: np.ndarray                        # (B,) ceil(ACs / P)
    work_bound: np.ndarray                   # (B,) ideal + multiplies on the multipliers
    by_pass: dict = field(default_factory=dict)   # pass kind -> (B,) cycles


def _x_pass(n):
    return n + cy.DRAIN_X + 1


def _event_pass(events, n):
    return (1 + events if n else 0) + cy.DRAIN_EVENTS + 1


def head_tail(cfg, lanes: int) -> int:
    """Cycles from the last readout pass's end to the last logit (the classifier on cycles.HEAD_MULTS)."""
    return cy.head_cycles(cfg.num_classes, cfg.dim, cy.HEAD_MULTS)


def predict(model: IntModel, images, lanes: int, *, dense: bool = False, golden: GoldenResult | None = None,
            gm: GoldenModel | None = None) -> CyclePrediction:
    """Cycle counts of ``images`` on a core with ``lanes`` P (for the model's own capacity)."""
    cfg = model.config
    gm = gm or GoldenModel(model)
    r = golden if golden is not None and golden.trace else gm.run(images, dense=dense, trace=True)
    tr = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in r.trace.items()}
    B, N, D, L, T, H = r.logits.shape[0], cfg.num_tokens, cfg.dim, cfg.blocks, cfg.t_max, cfg.heads
    hch = -(-cfg.hidden_dim // lanes)
    mask = r.mask.numpy()
    rep = r.rep.numpy()
    reps = rep == np.arange(N)
    kinds = ("img", "emb", "decisions", "ain", "qkv", "attn", "proj", "min", "fc1", "fc2", "halt", "readout", "head")
    by = {k: np.zeros(B, np.int64) for k in kinds}
    bpt = beats_per_token(cfg)
    by["img"][:] = N * bpt + IMG_EXTRA
    E = cy.emb_lanes(lanes)
    by["emb"][:] = N * (-(-D // E)) * cfg.patch_dim + EMB_EXTRA
    by["head"][:] = head_tail(cfg, lanes)
    nnz = lambda a: a.reshape(a.shape[0], -1).sum(1) if a.ndim > 1 else a  # noqa: E731
    for b in range(B):
        active = reps[b].copy()
        for t in range(T):
            by["decisions"][b] += DECISION                                    # STEP
            for l in range(L):
                p = f"t{t}.b{l}."
                n = int(active.sum())
                by["decisions"][b] += 3 * DECISION                            # BLOCK, MLP, HALTDEC
                a_on, f_on = bool(mask[2 * l, t]), bool(mask[2 * l + 1, t])
                if a_on:
                    S = tr[p + "ain"][b][active].sum(1)
                    by["ain"][b] += _x_pass(n)
                    by["qkv"][b] += _event_pass(int((3 * np.maximum(1, S)).sum()), n)
                    if n:
                        K, V, Q = (tr[p + x][b][active] for x in ("k", "v", "q"))
                        ks = [int(sum(int(v) << i for i, v in enumerate(row))) for row in K]
                        vs = [int(sum(int(v) << i for i, v in enumerate(row))) for row in V]
                        qs = [int(sum(int(v) << i for i, v in enumerate(row))) for row in Q]
                        attn = cy.attn_cycles(ks, vs, qs, D, H) + ATTN_EXTRA
                    else:
                        attn = 0
                    by["attn"][b] += attn + cy.DRAIN_ATTN + 1
                    A = tr[p + "attn"][b][active].sum(1)
                    by["proj"][b] += _event_pass(int(np.maximum(1, A).sum()), n)
                if f_on:
                    S2 = tr[p + "min"][b][active].sum(1)
                    Z = tr[p + "hid"][b][active].sum(1)
                    by["min"][b] += _x_pass(n)
                    by["fc1"][b] += _event_pass(int((hch * np.maximum(1, S2)).sum()), n)
                    by["fc2"][b] += _event_pass(int(np.maximum(1, Z).sum()), n)
                if (a_on or f_on) and not dense:
                    by["halt"][b] += n + cy.DRAIN_HALT + 1
                by["decisions"][b] += DECISION                                # ENDBLOCK
                active = tr[p + "active_after"][b].astype(bool)
            by["readout"][b] += _x_pass(int(reps[b].sum()))
    total = sum(by.values())
    acs = r.acs_total.numpy()
    ideal = -(-acs // lanes)
    macs_emb = N * D * cfg.patch_dim
    work = ideal + -(-macs_emb // E) + -(-(cfg.num_classes * D) // cy.HEAD_MULTS)
    return CyclePrediction(total, ideal, work, by)


def predict_cycles(model: IntModel, images, lanes: int, *, dense: bool = False) -> np.ndarray:
    """The CYCLES register of each image: ``(B,)`` int64."""
    return predict(model, images, lanes, dense=dense).cycles
