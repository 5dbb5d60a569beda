"""A Spikformer-style spiking ViT with dynamic time steps (DTS) and adaptive tokens (ACT halting + merge).

One time-major forward (``for t: for l:``) serves two modes:
- float mode: BatchNorm live, LIF leak ``h = (v + x) / 2``, halting score ``sigmoid(gamma * f - beta)``;
- quant mode (quantization-aware fine-tuning and integer evaluation): BatchNorm frozen and folded, weights
  rounded to the artifact's integers (straight-through), everything in integer units, floor leaks, the
  halting lookup table. In eval mode it computes exactly docs/integer_model.md: ``export()`` writes those
  integers, and the golden model run on them gives the same logits, bit for bit.

Shapes: B images, N tokens, D channels, T steps, L blocks; spike maps are (B, N, C) float 0/1.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dynaspike.artifact import IntModel, IntParams
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS

from .golden import patches
from .neurons import binary_mask_ste, lif_update, ste_floor, ste_round

ATTN_THRESHOLD = 4  # Spikformer: Y * 0.125 against 0.5  ==  Y against 4
ATTN_UNIT = 8       # 1.0 in Spikformer's scaled units, in units of Y (surrogate width)


@dataclass
class AdaptiveConfig:
    """Training-time switches and constants of the dynamic parts (not architecture)."""

    dts: bool = False           # apply the learned time-step mask
    halting: bool = False       # ACT halting
    merge: bool = False         # token merge at the embedding
    halt_gamma: float = 2.0
    halt_beta: float = 5.0
    halt_eps: float = 0.01
    halt_channel: int = 0
    merge_threshold: int = 4    # Hamming distance (bits of D) at or below which tokens merge
    mask_init: float = 2.0      # initial DTS score (positive: all steps on)
    halt_ste_slope: float = 0.0  # slope of the halting straight-through estimator (0: hard halting only)


class SpikingViT(nn.Module):
    def __init__(self, cfg: ModelConfig, ad: AdaptiveConfig | None = None):
        super().__init__()
        self.cfg, self.ad = cfg, ad or AdaptiveConfig()
        D, Hd, N = cfg.dim, cfg.hidden_dim, cfg.num_tokens
        self.emb = nn.Linear(cfg.patch_dim, D)
        self.emb_bn = nn.BatchNorm1d(D)
        self.pos = nn.Parameter(torch.randn(N, D) * 0.5)
        self.blocks = nn.ModuleList()
        for _ in range(cfg.blocks):
            blk = nn.ModuleDict()
            for name, (i, o) in dict(q=(D, D), k=(D, D), v=(D, D), proj=(D, D), fc1=(D, Hd), fc2=(Hd, D)).items():
                blk[name] = nn.Linear(i, o, bias=name not in ("q", "k", "v"))
                blk[name + "_bn"] = nn.BatchNorm1d(o)
            self.blocks.append(blk)
        self.head = nn.Linear(D, cfg.num_classes)
        self.mask_scores = nn.Parameter(torch.full((cfg.num_modules, cfg.t_max), self.ad.mask_init))
        self.quant = False
        self.bn_frozen = False  # BatchNorm uses its running statistics and is not trained
        self.register_buffer("res_threshold", torch.tensor(0))  # fixed when quant mode starts

    # ------------------------------------------------------------------------------------- masks
    def mask(self):
        """(M, T) hard mask; straight-through gradient to the scores when DTS is on."""
        if not self.ad.dts:
            return torch.ones_like(self.mask_scores)
        if not self.training:  # exact 0/1: the STE sum hard + soft - soft is only 1 up to rounding
            return (self.mask_scores > 0).to(self.mask_scores.dtype)
        return binary_mask_ste(self.mask_scores)

    # ----------------------------------------------------------------------------- quantization
    def start_quant(self):
        """Freeze BatchNorm, fix the residual scale, and switch to integer arithmetic (quant mode)."""
        w = torch.cat([self._fold(blk, n)[0].abs().flatten() for blk in self.blocks for n in ("proj", "fc2")])
        qmax = torch.quantile(w.detach().float(), 0.999).item()
        self.res_threshold.fill_(int(max(8, min(FORMATS.res_max // 64, round(FORMATS.weight_max / qmax)))))
        self.quant = True
        self.freeze_bn()

    def freeze_bn(self):
        """Use BatchNorm's running statistics from now on and stop training its affine parameters."""
        self.bn_frozen = True
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bn_frozen:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.eval()
        return self

    @staticmethod
    def _fold(blk, name):
        lin, bn = blk[name], blk[name + "_bn"]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = lin.bias if lin.bias is not None else torch.zeros_like(bn.running_mean)
        return lin.weight * scale[:, None], (b - bn.running_mean) * scale + bn.bias

    def _qlayer(self, blk, name, per_channel: bool):
        """Integer weights, bias and (for per-channel layers) thresholds of one folded layer.

        Per-channel layers feed a LIF of their own: channel c gets ``unit_c = round(127 / max|w_c|)``
        integer units per 1.0, and its threshold is ``unit_c``. Residual layers use the shared
        ``res_threshold`` units. Rounding is straight-through; units and thresholds carry no gradient.
        """
        w, b = self._fold(blk, name)
        if per_channel:
            unit = torch.round(FORMATS.weight_max / w.detach().abs().amax(1).clamp_min(1e-8)).clamp(1, 4096)
        else:
            unit = self.res_threshold.to(w.dtype).expand(w.shape[0])
        wq = ste_round(w * unit[:, None]).clamp(-FORMATS.weight_max, FORMATS.weight_max)
        bq = ste_round(b * unit).clamp(-(1 << 22), 1 << 22)
        return wq, bq, unit

    def _qemb(self):
        """Integer embedding: weights (D, patch_dim) and per-token bias (N, D), scaled by 2**emb_shift."""
        lin, bn = self.emb, self.emb_bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = lin.weight * scale[:, None]
        b = (lin.bias - bn.running_mean) * scale + bn.bias + self.pos          # (N, D)
        k = float(self.res_threshold) * (1 << FORMATS.emb_shift)
        wq = ste_round(w * k / 255).clamp(-FORMATS.emb_weight_max, FORMATS.emb_weight_max)
        bq = ste_round(b * k).clamp(-(1 << 30), 1 << 30)
        return wq, bq

    def _qhead(self):
        """Integer classifier on the pooled counts: logits_int ~= kappa * N * T * logits_float."""
        cfg, w = self.cfg, self.head.weight.detach()
        kappa = min(FORMATS.head_weight_max / w.abs().max().item(),
                    2 ** 30 / (cfg.num_tokens * cfg.t_max * w.abs().sum(1).max().item()))
        wq = ste_round(self.head.weight * kappa).clamp(-FORMATS.head_weight_max, FORMATS.head_weight_max)
        bq = ste_round(self.head.bias * kappa * cfg.num_tokens * cfg.t_max).clamp(-(1 << 30), 1 << 30)
        return wq, bq, kappa

    def halt_table(self):
        """(lut (uint8 tensor), shift, lut_min, threshold) of the integer halting rule."""
        fmt, ad, th = FORMATS, self.ad, int(self.res_threshold)
        shift = max(0, round(math.log2(max(1.0, th / (4 * ad.halt_gamma)))))
        lut_min = math.floor(((ad.halt_beta - 8) / ad.halt_gamma * th) / (1 << shift))
        q = torch.arange(fmt.halt_lut_size, dtype=torch.float64) + lut_min
        f = (q * (1 << shift) + (1 << shift) / 2) / th
        lut = torch.round(fmt.halt_one * torch.sigmoid(ad.halt_gamma * f - ad.halt_beta)).clamp(0, fmt.halt_score_max)
        return lut.to(torch.uint8), shift, lut_min, round((1 - ad.halt_eps) * fmt.halt_one)

    # ----------------------------------------------------------------------------------- forward
    def forward(self, images, dense: bool = False):
        """images: (B, C, H, W) uint8 (or float in [0, 255]). Returns (logits, stats).

        ``stats``: ponder (B,) ACT ponder cost, units (B,) token units processed, mask (M, T) used, acs (B,)
        accumulate operations and macs (B,) counted as docs/integer_model.md counts them; acs_soft (B,) the
        ACs again in float32, differentiable through the spikes' surrogate gradients (the activity cost).
        ``dense=True`` switches every dynamic part off (all steps, all tokens).
        """
        cfg, ad, q = self.cfg, self.ad, self.quant
        B, N, D, L, T, H, dh = images.shape[0], cfg.num_tokens, cfg.dim, cfg.blocks, cfg.t_max, cfg.heads, cfg.head_dim
        x = patches(images.float(), cfg)                                            # (B, N, P)
        if q:
            R = float(self.res_threshold)
            ew, eb = self._qemb()
            # float64: the embedding sums exceed 2**24 (float32 would round them)
            acc = x.double() @ ew.double().T + eb.double()
            E = ste_floor(acc / (1 << FORMATS.emb_shift)).clamp(FORMATS.res_min, FORMATS.res_max).float()
            layers = [{n: self._qlayer(blk, n, n in ("q", "k", "v", "fc1")) for n in ("q", "k", "v", "proj", "fc1", "fc2")}
                      for blk in self.blocks]
        else:
            R = 1.0
            E = self.emb_bn(self.emb(x / 255).reshape(B * N, D)).reshape(B, N, D) + self.pos
        clampR = (lambda v: v.clamp(FORMATS.res_min, FORMATS.res_max)) if q else (lambda v: v)

        def linear(l, name, s):
            """Returns (pre-activation, threshold, unit) of layer `name` of block l on spikes s."""
            if q:
                w, b, unit = layers[l][name]
                return s @ w.T + b, unit, unit
            blk = self.blocks[l]
            y = blk[name + "_bn"](blk[name](s).reshape(-1, blk[name].out_features)).reshape(B, N, -1)
            return y, 1.0, 1.0

        # token merge (hard decision, no gradient)
        size = torch.ones(B, N, device=E.device)
        rep = torch.arange(N, device=E.device).repeat(B, 1)
        if ad.merge and not dense:
            bits = (E.detach() >= 2 * R)
            dist = (bits.unsqueeze(2) ^ bits.unsqueeze(1)).sum(-1)
            for j in range(1, N):
                ok = (rep[:, :j] == torch.arange(j, device=E.device)) & (dist[:, :j, j] <= ad.merge_threshold)
                rep[:, j] = torch.where(ok.any(1), ok.int().argmax(1), torch.full_like(rep[:, j], j))
            size = torch.zeros(B, N, device=E.device).scatter_add_(1, rep, torch.ones(B, N, device=E.device))
        reps = (rep == torch.arange(N, device=E.device)).float()                   # (B, N)
        active = reps.clone()

        mask = torch.ones_like(self.mask_scores) if dense else self.mask()
        halting = ad.halting and not dense
        if halting and q:
            lut, shift, lut_min, hthr = self.halt_table()
            lut = lut.to(E.device).float() / FORMATS.halt_one
            hthr = hthr / FORMATS.halt_one
        else:
            hthr = 1 - ad.halt_eps
        zeros = lambda n=D: torch.zeros(B, N, n, device=E.device)
        # one membrane per LIF layer: per block for the block's LIFs, one for the readout LIF
        st = {f"{l}.{k}": zeros(cfg.hidden_dim if k == "hid" else D)
              for l in range(L) for k in ("ain", "q", "k", "v", "attn", "min", "hid")}
        st["out"] = zeros()
        X = E
        hacc = torch.zeros(B, N, device=E.device)
        cum_before = torch.zeros(B, N, device=E.device)   # sum of h over units before the halting one
        units = torch.zeros(B, device=E.device)
        counts = torch.zeros(B, D, device=E.device)
        acs = torch.zeros(B, device=E.device, dtype=torch.float64)  # accumulate ops, counted as the golden model
        acs_soft = torch.zeros(B, device=E.device)  # the same count with the spikes' surrogate gradients

        def count(weight, s):
            """Counts ``weight`` ACs per spike of ``s`` (B, N, C) or per entry of an (B, ...) count."""
            nonlocal acs, acs_soft
            n = s.sum(tuple(range(1, s.dim())))
            # float64: one layer's count is exact in float32, the image's total at the seed shape is not
            acs = acs + weight * n.detach().double()
            acs_soft = acs_soft + weight * n

        def lif(key, inp, th, unit, gate, valid=None):
            """LIF on layer `key`: state committed where gate (B, N) is 1; spikes kept where valid (default:
            the active tokens; a masked module's spikes are its counterfactual output)."""
            s, new = lif_update(st[key], inp, th, unit, q)
            g = gate.unsqueeze(-1)
            st[key] = g * new + (1 - g) * st[key]
            return s * (active if valid is None else valid).unsqueeze(-1)

        for t in range(T):
            X = active.unsqueeze(-1) * E + (1 - active.unsqueeze(-1)) * X
            for l in range(L):
                units = units + active.sum(1)
                m_att, m_mlp = mask[2 * l, t], mask[2 * l + 1, t]
                # Masked modules: state frozen (gate 0), output computed as a counterfactual and scaled by the
                # straight-through mask (0 forward), so the DTS score still gets a gradient.
                if m_att.item() > 0 or (self.training and ad.dts):
                    gate = active * (m_att.detach() > 0).float()
                    S = lif(f"{l}.ain", X, R, R, gate)
                    Q = lif(f"{l}.q", *linear(l, "q", S), gate)
                    K = lif(f"{l}.k", *linear(l, "k", S), gate)
                    V = lif(f"{l}.v", *linear(l, "v", S), gate)
                    Kh = (K * size.unsqueeze(-1)).view(B, N, H, dh)
                    KV = torch.einsum("bjha,bjhc->bhac", Kh, V.view(B, N, H, dh))
                    Y = torch.einsum("biha,bhac->bihc", Q.view(B, N, H, dh), KV).reshape(B, N, D)
                    A = lif(f"{l}.attn", Y, ATTN_THRESHOLD, ATTN_UNIT, gate)
                    out = linear(l, "proj", A)[0]
                    X = X + active.unsqueeze(-1) * (clampR(X + out) - X) * m_att
                    if m_att.item() > 0:  # docs/integer_model.md, "Operation counts"
                        count(3 * D, S)
                        count(dh, K.view(B, N, H, dh).sum(-1) * V.view(B, N, H, dh).amax(-1))
                        count(dh, Q)
                        count(D, A)
                if m_mlp.item() > 0 or (self.training and ad.dts):
                    gate = active * (m_mlp.detach() > 0).float()
                    S2 = lif(f"{l}.min", X, R, R, gate)
                    Z = lif(f"{l}.hid", *linear(l, "fc1", S2), gate)
                    out = linear(l, "fc2", Z)[0]
                    X = X + active.unsqueeze(-1) * (clampR(X + out) - X) * m_mlp
                    if m_mlp.item() > 0:
                        count(cfg.hidden_dim, S2)
                        count(D, Z)
                last = t == T - 1 and l == L - 1
                # halting is checked only after a block that ran at this step (else X did not change)
                ran = bool(m_att.detach() > 0 or m_mlp.detach() > 0)
                if halting and (ran or last):
                    f = X[:, :, ad.halt_channel]
                    h_soft = torch.sigmoid(ad.halt_gamma * f / R - ad.halt_beta)
                    if q:
                        idx = (torch.floor(f.detach() / (1 << shift)) - lut_min).clamp(0, FORMATS.halt_lut_size - 1).long()
                        h = lut[idx] + h_soft - h_soft.detach()
                    else:
                        h = h_soft
                    h = h * float(ran)
                    new_acc = hacc + active * h
                    hard = torch.ones_like(active) if last else (new_acc.detach() >= hthr - 1e-6).float()
                    if ad.halt_ste_slope > 0 and not last:
                        # Optional straight-through halting: the hard decision forward, the gradient of a steep
                        # sigmoid of the margin backward (it hurt accuracy in our digits runs: off by default).
                        soft = torch.sigmoid(ad.halt_ste_slope * (new_acc - hthr))
                        hard = hard + (soft - soft.detach())
                    halts = active * hard
                    cum_before = cum_before + active * (1 - halts) * h
                    hacc = new_acc
                else:
                    halts = active * float(last)
                active = active * (1 - halts)
            # readout of every representative; a halted token's frozen X stands in for it
            O = lif("out", X, R, R, reps, valid=reps)
            counts = counts + (O * size.unsqueeze(-1)).sum(1)
            count(1, O)

        if q:
            hw, hb, kappa = self._qhead()
            # float64: these sums exceed 2**24; logits_int are the golden model's integers
            logits_int = counts.double() @ hw.double().T + hb.double()
            logits = (logits_int / (kappa * N * T)).float()
        else:
            logits = self.head(counts / (N * T))
            logits_int = None
        remainder = 1 - cum_before
        ponder = units / N + (remainder * reps).sum(1) / N
        macs = D * (x != 0).sum((1, 2)) + cfg.num_classes * D   # (B,): non-zero window pixels, as the golden model
        return logits, {"ponder": ponder, "units": units, "mask": mask.detach(), "counts": counts,
                        "logits_int": logits_int, "acs": acs, "acs_soft": acs_soft, "macs": macs}

    # ------------------------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self, info: dict | None = None) -> IntModel:
        """The integer model (quant mode only): exactly what the quant-mode forward computes."""
        assert self.quant, "export() needs quant mode (start_quant())"
        cfg, ad = self.cfg, self.ad
        i = lambda t, dt: t.detach().cpu().numpy().astype(dt)
        ew, eb = self._qemb()
        tensors = {"emb_w": i(ew, np.int16), "emb_b": i(eb, np.int32)}
        for l, blk in enumerate(self.blocks):
            for name in ("q", "k", "v", "proj", "fc1", "fc2"):
                w, b, unit = self._qlayer(blk, name, name in ("q", "k", "v", "fc1"))
                tensors[f"b{l}.{name}_w"], tensors[f"b{l}.{name}_b"] = i(w, np.int8), i(b, np.int32)
                if name in ("q", "k", "v", "fc1"):
                    tensors[f"b{l}.{name}_th"] = i(unit, np.int32)
        hw, hb, _ = self._qhead()
        tensors["head_w"], tensors["head_b"] = i(hw, np.int16), i(hb, np.int32)
        tensors["mask"] = i(self.mask() > 0, np.uint8)
        lut, shift, lut_min, hthr = self.halt_table()
        if not ad.halting:
            lut = torch.zeros_like(lut)  # never halts early: only the forced halt at the last (t, l)
        tensors["halt_lut"] = i(lut, np.uint8)
        params = IntParams(res_threshold=int(self.res_threshold), attn_threshold=ATTN_THRESHOLD,
                           halt_shift=shift, halt_lut_min=lut_min, halt_channel=ad.halt_channel,
                           halt_threshold=hthr, merge_threshold=ad.merge_threshold if ad.merge else -1)
        return IntModel(cfg, params, tensors, info or {}).validate()
