"""The DDR mode's traffic and latency: the bytes an inference moves between the core and DDR, and the
cycles it takes when the passes wait for them (docs/hardware.md, "DDR mode"; the layouts and the schedule's
rules are ``dynaspike.ddr``).

It walks the passes of ``train.cycle_model`` (the same passes in the same order, with their compute cycles)
over the golden model's trace and adds what each pass moves:

- *weights*: an event pass reads every tile of its layers once (``ddr.weight_buffer``), and nothing when
  no token is active;
- *membranes*: the rows of the pass's LIF layer for every active token (``ddr.state_buffer``): read unless
  the row is not yet written in this image, written back only if the time-step mask runs its module again
  at a later step (the readout: unless it is the last step). MIN's rows go
  with proj's pass when the attention module ran (its residual add feeds the MLP's input LIF), and the
  readout's rows all go with the readout pass (some really ride on the last block's residual add).

*Lower bound*: every weight a running pass needs, once, and every membrane row that carries state from one
step to a later one, read once and written once. The schedule reaches it for the weights and the reads; it
writes more only where a token halts (or its module stays masked) after its row was written.

*Latency* (an estimate until the RTL exists): a pass first waits for the port's ``read_latency`` and, if it
reads weights, for its first tile; then it takes the longest of its compute cycles (``cycle_model``), its
remaining beats on each channel (one a cycle; with ``Memory(ports=2)`` the membranes have their own port)
and its bytes over what the DDR gives a cycle. So transfers overlap compute within a pass but not across
passes. The front, the decisions and the classifier stay on chip.
"""

from dataclasses import dataclass, field

import numpy as np

from dynaspike import ddr
from dynaspike.artifact import IntModel

from .cycle_model import predict
from .golden import GoldenModel, GoldenResult

#: The weight layers of each event pass, and the state layer (``ddr.BLOCK_STATE``) each pass updates.
PASS_WEIGHTS = {"qkv": ("q", "k", "v"), "proj": ("proj",), "fc1": ("fc1",), "fc2": ("fc2",)}
PASS_STATE = {"ain": ("ain",), "qkv": ("q", "k", "v"), "attn": ("attn",), "min": ("min",), "fc1": ("hid",),
              "readout": (ddr.READOUT_STATE,)}


@dataclass
class TrafficPrediction:
    """Per image ``(B,)`` int64 arrays; bytes unless named cycles."""

    weight_read: np.ndarray
    state_read: np.ndarray
    state_write: np.ndarray
    bound: np.ndarray            # the lower bound above
    compute_cycles: np.ndarray   # the cycle model's CYCLES: the core with every operand on chip
    transfer_cycles: np.ndarray  # the passes' fills and beats alone (as if computing took no time)
    latency_cycles: np.ndarray   # the estimate: compute and transfer overlapped within each pass
    by_pass: dict = field(default_factory=dict)   # pass kind -> (B,) bytes read and written

    @property
    def read(self) -> np.ndarray:
        return self.weight_read + self.state_read

    @property
    def total(self) -> np.ndarray:
        return self.read + self.state_write


def predict_traffic(model: IntModel, images, lanes: int, *, memory: ddr.Memory = ddr.Memory(),
                    dense: bool = False, golden: GoldenResult | None = None,
                    gm: GoldenModel | None = None) -> TrafficPrediction:
    """DDR traffic and latency of ``images`` on a DDR-mode core with ``lanes`` P; ``golden``: the golden
    model's traced run of these images (run here if not given), as ``cycle_model.predict`` takes it."""
    cfg = model.config
    gm = gm or GoldenModel(model)
    r = golden if golden is not None and golden.trace else gm.run(images, dense=dense, trace=True)
    cyc = predict(model, images, lanes, dense=dense, golden=r, gm=gm)
    tr = {k: v.numpy() for k, v in r.trace.items()}
    B, N, T, L = r.logits.shape[0], cfg.num_tokens, cfg.t_max, cfg.blocks
    wbuf, sbuf = ddr.weight_buffer(cfg, lanes), ddr.state_buffer(cfg, lanes)
    row = sbuf["_row_bytes"]
    mask = r.mask.numpy()
    reps = r.rep.numpy() == np.arange(N)

    # the tokens active at each (t, l), as the passes see them
    active_at, active = {}, reps.copy()
    for t in range(T):
        for l in range(L):
            active_at[t, l] = active
            active = tr[f"t{t}.b{l}.active_after"].astype(bool)

    z = lambda: np.zeros(B, np.int64)  # noqa: E731
    weight, s_read, s_write, lat, xfer = z(), z(), z(), z(), z()
    by = {}
    written = {}   # state layer -> (B, N): rows written earlier in this image
    for kind, t, l, compute in cyc.passes:
        toks = reps if kind == "readout" else active_at[t, l]
        n = toks.sum(1)
        tiles = [wbuf[f"b{l}.{name}"] for name in PASS_WEIGHTS.get(kind, ())]
        w = np.where(n > 0, sum(x["tile_bytes"] * x["tiles"] for x in tiles), 0)
        first = np.where(n > 0, tiles[0]["tile_bytes"], 0) if tiles else z()   # read before the pass starts
        states = PASS_STATE.get(kind, ())
        if kind == "proj" and mask[2 * l + 1, t]:
            states = ("min",)
        rd, wr = z(), z()
        for s in states:
            key = s if s == ddr.READOUT_STATE else f"b{l}.{s}"
            chunks = sbuf[key]["chunks"]
            prev = written.get(key, np.zeros((B, N), bool))
            rd = rd + (toks & prev).sum(1) * chunks * row
            module = None if s == ddr.READOUT_STATE else 2 * l + (s in ("min", "hid"))
            if (t < T - 1) if module is None else mask[module, t + 1:].any():
                wr = wr + n * chunks * row
                written[key] = prev | toks
        weight, s_read, s_write = weight + w, s_read + rd, s_write + wr
        by[kind] = by.get(kind, z()) + w + rd + wr
        moves = (w + rd + wr) > 0
        fill = np.where(moves, memory.read_latency, 0) + first // ddr.BEAT_BYTES
        w_left = (w - first) // ddr.BEAT_BYTES
        if memory.ports == 1:   # weights and membranes on one read channel
            rest = np.maximum(w_left + rd // ddr.BEAT_BYTES, wr // ddr.BEAT_BYTES)
        else:                   # membranes on the second port
            rest = np.maximum(np.maximum(w_left, rd // ddr.BEAT_BYTES), wr // ddr.BEAT_BYTES)
        rest = np.maximum(rest, -(-(w - first + rd + wr) // memory.bytes_per_cycle))   # the DDR itself
        xfer += fill + rest
        lat += fill + np.maximum(compute, rest)
    on_chip = cyc.cycles - sum(c for _, _, _, c in cyc.passes)   # front, decisions, classifier
    # the bound: every read carries state written at an earlier step, and needs that one write
    return TrafficPrediction(weight, s_read, s_write, weight + 2 * s_read, cyc.cycles, xfer, on_chip + lat, by)
