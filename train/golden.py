"""The golden model: bit-exact integer inference of an exported model, batched, in PyTorch.

It implements docs/integer_model.md and nothing else; it is the single reference for the hardware:
logits, every intermediate spike map (``trace=True``), the mask applied, which tokens were active, halted or
merged at each (step, block), and the operation counts per layer and step.

Arithmetic is integer: int32/int64 tensors, except the products of binary spike maps with int8 weight
matrices, which use float32 matmuls. Those are exact because every partial sum is an integer below 2**24:
the artifact loader proves ``|bias| + sum|w| <= 2**(acc_bits-1) - 1 < 2**23`` for every such layer, and the
attention sums by ``N * dh`` (a KV entry is at most ``sum size = N``, a Y entry adds ``dh`` of them);
``GoldenModel`` refuses a format or shape that would break either bound.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from dynaspike.artifact import IntModel
from dynaspike.config import ModelConfig

PJ_PER_MAC = 4.6  # 45 nm, Horowitz 2014, as used by both seed papers
PJ_PER_AC = 0.9


class ImageError(ValueError):
    """Images that do not match the model's input format."""


def lif_step(state: torch.Tensor, x: torch.Tensor, threshold):
    """One integer LIF update: ``h = (state + x) >> 1``; spike if ``h >= threshold``; hard reset to 0.

    Returns ``(spikes (bool), new_state)``. All arguments are integer tensors (or an int threshold),
    broadcastable against each other.
    """
    h = (state + x) >> 1
    spikes = h >= threshold
    return spikes, torch.where(spikes, torch.zeros_like(h), h)


def patches(images: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*k*k): each token's embedding window (k = embed_kernel, stride patch_size,
    zero padding embed_pad); tokens row-major over the patch grid, channel-major then row-major inside."""
    k, p, pad = cfg.embed_kernel, cfg.patch_size, cfg.embed_pad
    x = torch.nn.functional.pad(images, (pad, pad, pad, pad)) if pad else images
    x = x.unfold(2, k, p).unfold(3, k, p)                           # (B, C, gy, gx, k, k)
    B, C, gy, gx = x.shape[:4]
    return x.permute(0, 2, 3, 1, 4, 5).reshape(B, gy * gx, C * k * k)


def check_images(images, cfg: ModelConfig) -> torch.Tensor:
    """Return images as a uint8 tensor (B, C, H, W); raise ImageError naming what is wrong."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ImageError(f"images must be uint8, got dtype {images.dtype}")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ImageError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ImageError(f"images must be uint8, got dtype {images.dtype}")
    want = (cfg.in_channels, cfg.img_size, cfg.img_size)
    if not (images.dim() == 4 and tuple(images.shape[1:]) == want or tuple(images.shape) == want):
        raise ImageError(f"images must have shape (B, {', '.join(map(str, want))}) or "
                         f"({', '.join(map(str, want))}), got {tuple(images.shape)}")
    return images if images.dim() == 4 else images.unsqueeze(0)


@dataclass
class GoldenResult:
    """What one batched golden run returns (B images)."""

    logits: torch.Tensor      # (B, classes) int64
    counts: torch.Tensor      # (B, D) int64, size-weighted output spike counts fed to the classifier
    macs: torch.Tensor        # (B,) int64
    acs: dict                 # layer -> (B, T) int64 accumulate operations, layers as in LAYERS
    units: torch.Tensor       # (B, T, L) int64 tokens processed at (step, block)
    halt_t: torch.Tensor      # (B, N) int64 step at which each token halted; -1 if merged away
    halt_l: torch.Tensor      # (B, N) int64 block after which it halted; -1 if merged away
    rep: torch.Tensor         # (B, N) int64 the representative of each token (itself unless merged)
    size: torch.Tensor        # (B, N) int64 tokens each representative stands for (0 if merged away)
    mask: torch.Tensor        # (M, T) uint8 the time-step mask applied
    emb_nonzero: torch.Tensor  # (B, N) int64 non-zero pixels of each token's window (the core skips the zero ones)
    trace: dict = field(default_factory=dict)  # name -> int tensor, on request

    @property
    def pred(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)  # ties go to the lowest index, as in the hardware

    @property
    def acs_total(self) -> torch.Tensor:
        return sum(a.sum(dim=1) for a in self.acs.values())

    @property
    def energy_uj(self) -> torch.Tensor:
        """45 nm energy per image in microjoules: 4.6 pJ/MAC + 0.9 pJ/AC."""
        return (PJ_PER_MAC * self.macs.double() + PJ_PER_AC * self.acs_total.double()) * 1e-6


def layers(cfg: ModelConfig):
    """Names of the AC-counted layers, in execution order."""
    names = []
    for l in range(cfg.blocks):
        names += [f"b{l}.qkv", f"b{l}.kv", f"b{l}.y", f"b{l}.proj", f"b{l}.fc1", f"b{l}.fc2"]
    return names + ["readout"]


class GoldenModel:
    """Integer inference of an IntModel; ``run(images)`` evaluates a batch.

    ``dense=True`` runs the same model with every (module, step) and every token on: mask all ones, no
    halting (every token runs to the end), no merging. It is the baseline for the dynamic savings.
    """

    def __init__(self, model: IntModel):
        self.model = model.validate()
        self.cfg = cfg = model.config
        f32 = lambda name: torch.from_numpy(model[name].astype(np.float32))
        i64 = lambda name: torch.from_numpy(model[name].astype(np.int64))
        self.emb_w, self.emb_b = i64("emb_w"), i64("emb_b")
        self.blocks = []
        for l in range(cfg.blocks):
            p = f"b{l}."
            blk = {n: f32(p + n + "_w").T.contiguous() for n in ("q", "k", "v", "proj", "fc1", "fc2")}
            blk.update({n + "_b": i64(p + n + "_b").to(torch.int32) for n in ("q", "k", "v", "proj", "fc1", "fc2")})
            blk.update({n + "_th": i64(p + n + "_th").to(torch.int32) for n in ("q", "k", "v", "fc1")})
            self.blocks.append(blk)
        self.head_w, self.head_b = i64("head_w"), i64("head_b")
        self.mask = torch.from_numpy(model["mask"].copy())
        self.halt_lut = i64("halt_lut")
        # The float32 products below are exact only while every partial sum is an integer below 2**24: the
        # validated artifact bounds the spike layers by acc_max (so acc_bits must stay <= 24), and the
        # attention sums by N * dh (a KV entry is at most sum size = N, a Y entry adds dh of them).
        fmt = model.formats
        if fmt.acc_bits > 24 or cfg.num_tokens * cfg.head_dim >= 2 ** 24:
            raise ValueError(f"the golden model's float32 products are exact below 2**24 only: acc_bits "
                             f"{fmt.acc_bits} (max 24), N * dh = {cfg.num_tokens * cfg.head_dim}")

    def run(self, images, *, dense: bool = False, trace: bool = False) -> GoldenResult:
        cfg, prm, fmt = self.cfg, self.model.params, self.model.formats
        images = check_images(images, cfg)
        B, N, D, L, T, H, dh = images.shape[0], cfg.num_tokens, cfg.dim, cfg.blocks, cfg.t_max, cfg.heads, cfg.head_dim
        res_lo, res_hi = fmt.res_min, fmt.res_max
        tr = {}

        # 1. embedding: the only multiplications, once per image
        x = patches(images.to(torch.int64), cfg)                                    # (B, N, C*p*p)
        E = ((x @ self.emb_w.T + self.emb_b) >> fmt.emb_shift).clamp(res_lo, res_hi).to(torch.int32)
        # 2. token merge on the spikes block 0's input LIF would emit at step 0 from rest
        bits = E >= 2 * prm.res_threshold                                           # (B, N, D)
        rep = torch.arange(N).repeat(B, 1)
        if prm.merge_threshold >= 0 and not dense:
            dist = (bits.unsqueeze(2) ^ bits.unsqueeze(1)).sum(-1)                  # (B, N, N)
            for j in range(1, N):
                is_rep = rep[:, :j] == torch.arange(j)                              # (B, j)
                ok = is_rep & (dist[:, :j, j] <= prm.merge_threshold)
                first = torch.where(ok.any(1), ok.int().argmax(1), torch.full((B,), j))
                rep[:, j] = first
        size = torch.zeros(B, N, dtype=torch.int64).scatter_add_(1, rep, torch.ones(B, N, dtype=torch.int64))
        reps = rep == torch.arange(N)                                               # (B, N)
        active = reps.clone()
        if trace:
            tr["emb"], tr["merge_bits"] = E.clone(), bits.clone()

        z = lambda n=D: torch.zeros(B, N, n, dtype=torch.int32)
        # one membrane per LIF layer: per block for the block's LIFs, one for the readout LIF
        st = {f"{l}.{k}": z(cfg.hidden_dim if k == "hid" else D)
              for l in range(L) for k in ("ain", "q", "k", "v", "attn", "min", "hid")}
        st["out"] = z()
        X = E.clone()
        hacc = torch.zeros(B, N, dtype=torch.int64)
        halt_t = torch.full((B, N), -1, dtype=torch.int64)
        halt_l = torch.full((B, N), -1, dtype=torch.int64)
        counts = torch.zeros(B, D, dtype=torch.int64)
        acs = {name: torch.zeros(B, T, dtype=torch.int64) for name in layers(cfg)}
        units = torch.zeros(B, T, L, dtype=torch.int64)
        mask = torch.ones_like(self.mask) if dense else self.mask
        sizef = size.to(torch.float32)

        def lif(key, inp, th, act):
            s, new = lif_step(st[key], inp, th)
            a = act.unsqueeze(-1)
            st[key] = torch.where(a, new, st[key])
            return s & a

        def nnz(s):
            return s.sum(dim=(1, 2)).to(torch.int64)

        def affine(spikes, w, b):  # bias + weight rows of the present spikes; exact in float32
            return (spikes.to(torch.float32) @ w).to(torch.int32) + b

        for t in range(T):
            X = torch.where(active.unsqueeze(-1), E, X)       # direct encoding: every step starts at E
            for l in range(L):
                blk, p = self.blocks[l], f"t{t}.b{l}."
                units[:, t, l] = active.sum(1)
                a = active
                if mask[2 * l, t]:
                    S = lif(f"{l}.ain", X, prm.res_threshold, a)
                    Q = lif(f"{l}.q", affine(S, blk["q"], blk["q_b"]), blk["q_th"], a)
                    K = lif(f"{l}.k", affine(S, blk["k"], blk["k_b"]), blk["k_th"], a)
                    V = lif(f"{l}.v", affine(S, blk["v"], blk["v_b"]), blk["v_th"], a)
                    Kh = K.view(B, N, H, dh).to(torch.float32) * sizef.view(B, N, 1, 1)
                    Vh = V.view(B, N, H, dh).to(torch.float32)
                    KV = torch.einsum("bjha,bjhc->bhac", Kh, Vh)                    # (B, H, dh, dh)
                    Y = torch.einsum("biha,bhac->bihc", Q.view(B, N, H, dh).to(torch.float32), KV)
                    A = lif(f"{l}.attn", Y.reshape(B, N, D).to(torch.int32), prm.attn_threshold, a)
                    X = torch.where(a.unsqueeze(-1),
                                    (X + affine(A, blk["proj"], blk["proj_b"])).clamp(res_lo, res_hi), X)
                    acs[f"b{l}.qkv"][:, t] = 3 * D * nnz(S)
                    # one V row (dh lanes) added per K spike, skipped where that V row is all zero
                    vrow = V.view(B, N, H, dh).any(-1)
                    acs[f"b{l}.kv"][:, t] = dh * (K.view(B, N, H, dh).sum(-1) * vrow).sum((1, 2))
                    acs[f"b{l}.y"][:, t] = dh * nnz(Q)
                    acs[f"b{l}.proj"][:, t] = D * nnz(A)
                    if trace:
                        tr.update({p + "ain": S, p + "q": Q, p + "k": K, p + "v": V, p + "attn": A,
                                   p + "x_attn": X.clone()})
                if mask[2 * l + 1, t]:
                    S2 = lif(f"{l}.min", X, prm.res_threshold, a)
                    Z = lif(f"{l}.hid", affine(S2, blk["fc1"], blk["fc1_b"]), blk["fc1_th"], a)
                    X = torch.where(a.unsqueeze(-1),
                                    (X + affine(Z, blk["fc2"], blk["fc2_b"])).clamp(res_lo, res_hi), X)
                    acs[f"b{l}.fc1"][:, t] = cfg.hidden_dim * nnz(S2)
                    acs[f"b{l}.fc2"][:, t] = D * nnz(Z)
                    if trace:
                        tr.update({p + "min": S2, p + "hid": Z, p + "x_mlp": X.clone()})
                # halting check after block l, for the tokens active now
                feat = X[:, :, prm.halt_channel].to(torch.int64)
                idx = ((feat >> prm.halt_shift) - prm.halt_lut_min).clamp(0, fmt.halt_lut_size - 1)
                ran = bool(mask[2 * l, t] or mask[2 * l + 1, t])
                if not dense and ran:
                    hacc = torch.where(active, hacc + self.halt_lut[idx], hacc)
                last = (t == T - 1) and (l == L - 1)
                halts = active & ((ran & (hacc >= prm.halt_threshold)) | last) if not dense else active & last
                halt_t[halts], halt_l[halts] = t, l
                active = active & ~halts
                if trace:
                    tr[p + "active_after"] = active.clone()
            # readout at the end of step t, for every representative (a halted token's X is frozen)
            O = lif("out", X, prm.res_threshold, reps)
            counts += (O.to(torch.int64) * size.unsqueeze(-1)).sum(1)
            acs["readout"][:, t] = nnz(O)
            if trace:
                tr[f"t{t}.out"] = O

        if trace:
            tr["hacc"], tr["x_final"] = hacc.clone(), X.clone()  # what the core's TAP packet holds
        logits = counts @ self.head_w.T + self.head_b
        # the embedding multiplies only the non-zero window pixels (the core skips the rest), the classifier all
        macs = D * (x != 0).sum((1, 2)) + cfg.num_classes * D
        size_out = torch.where(rep == torch.arange(N), size, torch.zeros_like(size))
        return GoldenResult(logits, counts, macs, acs, units, halt_t, halt_l, rep, size_out,
                            mask.clone(), (x != 0).sum(2), {k: v.to(torch.int32) if v.dtype == torch.bool else v
                                           for k, v in tr.items()})


def run(model: IntModel, images, **kw) -> GoldenResult:
    """Convenience: ``GoldenModel(model).run(images, **kw)``."""
    return GoldenModel(model).run(images, **kw)
