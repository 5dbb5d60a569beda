"""Shared fixtures: a tiny quant-mode SpikingViT and its export, synthetic integer models, and a naive
per-token reference of docs/integer_model.md (loops over Python/NumPy ints, no batching, no float).

torch is optional here: the board lane (`make test-board`, .venv-board without torch) runs the torch-free
test files through this conftest; fixtures that need torch skip there."""

from __future__ import annotations  # annotations naming torch stay unevaluated without torch

import os
import sys

import numpy as np
import pytest

try:
    import torch
except ImportError:  # the board lane's environment
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python -m pytest` from the root has it already; a bare `pytest` may not
    sys.path.insert(0, ROOT)

from dynaspike.artifact import IntModel, IntParams, tensor_specs  # noqa: E402
from dynaspike.config import ModelConfig  # noqa: E402

# 16 tokens, each embedding a 4x4 window around its 2x2 patch (zero padding 1); 2 heads of 8 channels,
# hidden 32; small enough for naive loops.
TINY_CFG = ModelConfig(img_size=8, in_channels=1, patch_size=2, embed_kernel=4, dim=16, heads=2, blocks=2,
                       mlp_ratio=2, t_max=3, num_classes=10)


def make_tiny_torch(seed: int = 2):
    """An untrained SpikingViT in quant eval mode whose masks, halting and merging all take effect.

    BatchNorm running statistics, BN affines and DTS scores are randomized; the embedding is scaled up so
    that pixels (not only the position embedding) decide the merge bits.
    """
    from train.model import AdaptiveConfig, SpikingViT
    torch.manual_seed(seed)
    ad = AdaptiveConfig(dts=True, halting=True, merge=True, halt_beta=2.0, merge_threshold=2)
    m = SpikingViT(TINY_CFG, ad)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.emb.weight.mul_(6)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                mod.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.3)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) + 0.5)
        m.mask_scores.copy_(torch.randn(m.mask_scores.shape, generator=g))
    m.start_quant()
    m.eval()
    return m


@pytest.fixture(scope="session")
def tiny():
    """(torch model, exported IntModel) of make_tiny_torch(2): some masks 0, tokens merge and halt early."""
    if torch is None:
        pytest.skip("torch is not installed (the board lane): the default `make test` runs this")
    m = make_tiny_torch(2)
    return m, m.export({"note": "tiny test model"})


def random_images(cfg: ModelConfig, n: int, seed: int) -> torch.Tensor:
    """n uint8 images; the second half has a black top half, so that background patches can merge."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, cfg.in_channels, cfg.img_size, cfg.img_size), generator=g, dtype=torch.uint8)
    x[n // 2:, :, : cfg.img_size // 2] = 0
    return x


def random_intmodel(cfg: ModelConfig = TINY_CFG, seed: int = 0, **params) -> IntModel:
    """A valid IntModel with random tensors at scales where every layer spikes; ``params`` override."""
    rng = np.random.default_rng(seed)
    R = 64
    t = {}
    for name, (shape, dtype, lo, hi) in tensor_specs(cfg).items():
        if name.endswith("_w") and dtype == np.int8:
            a = rng.integers(-127, 128, shape)
        elif name.endswith("_th"):
            a = rng.integers(40, 400, shape)
        elif name == "emb_w":
            a = rng.integers(-600, 601, shape)
        elif name == "emb_b":
            a = rng.integers(-3 * R * 256, 5 * R * 256, shape)
        elif name == "head_w":
            a = rng.integers(-1000, 1001, shape)
        elif name == "head_b":
            a = rng.integers(-10000, 10001, shape)
        elif name == "mask":
            a = (rng.random(shape) < 0.75)
            a[rng.integers(shape[0]), rng.integers(shape[1])] = False  # at least one module-step skipped
        elif name == "halt_lut":
            a = rng.integers(0, 256, shape)
        elif name.endswith(("q_b", "k_b", "v_b")):  # biased up: attention needs K and V to spike together
            a = rng.integers(-100, 701, shape)
        else:  # biases of the other spike-fed layers
            a = rng.integers(-300, 301, shape)
        t[name] = np.asarray(a).astype(dtype)
    p = dict(res_threshold=R, attn_threshold=4, halt_shift=4, halt_lut_min=-32,
             halt_channel=int(rng.integers(0, cfg.dim)), halt_threshold=253, merge_threshold=3)
    p.update(params)
    return IntModel(cfg, IntParams(**p), t, {"seed": seed}).validate()


def naive_run(m: IntModel, image) -> dict:
    """docs/integer_model.md for one image (C, H, W), token by token, in Python ints and int64 NumPy.

    Every block has its own LIF layers (membranes keyed by block and name); the output LIF is one layer.
    """
    cfg, p, fmt = m.config, m.params, m.formats
    img = np.asarray(image, dtype=np.int64)
    N, D, L, T, H, dh, ps = cfg.num_tokens, cfg.dim, cfg.blocks, cfg.t_max, cfg.heads, cfg.head_dim, cfg.patch_size
    g, kk, pad, S = cfg.img_size // ps, cfg.embed_kernel, cfg.embed_pad, cfg.img_size
    W = {k: v.astype(np.int64) for k, v in m.tensors.items()}
    clampR = lambda v: np.clip(v, fmt.res_min, fmt.res_max)

    E = np.zeros((N, D), dtype=np.int64)
    for k in range(N):
        gy, gx = divmod(k, g)
        pix = lambda c, y, x: int(img[c, y, x]) if 0 <= y < S and 0 <= x < S else 0  # zero padding
        patch = [pix(c, gy * ps - pad + ky, gx * ps - pad + kx) for c in range(cfg.in_channels)
                 for ky in range(kk) for kx in range(kk)]
        for d in range(D):
            acc = sum(int(W["emb_w"][d, i]) * patch[i] for i in range(len(patch))) + int(W["emb_b"][k, d])
            E[k, d] = min(max(acc >> fmt.emb_shift, fmt.res_min), fmt.res_max)
    B = E >= 2 * p.res_threshold
    rep, size = list(range(N)), [1] * N
    if p.merge_threshold >= 0:
        for j in range(1, N):
            for i in range(j):
                if rep[i] == i and int((B[i] ^ B[j]).sum()) <= p.merge_threshold:
                    rep[j] = i
                    size[i] += 1
                    break
    active = [rep[k] == k for k in range(N)]
    st = {f"b{l}.{n}": np.zeros((N, cfg.hidden_dim if n == "hid" else D), dtype=np.int64)
          for l in range(L) for n in ("ain", "q", "k", "v", "attn", "min", "hid")}
    st["out"] = np.zeros((N, D), dtype=np.int64)

    def lif(n, k, x, th):
        h = (st[n][k] + x) >> 1
        s = (h >= th).astype(np.int64)
        st[n][k] = np.where(s == 1, 0, h)
        return s

    hacc, halt_t, halt_l = [0] * N, [-1] * N, [-1] * N
    C = np.zeros(D, dtype=np.int64)
    X = E.copy()
    units = np.zeros((T, L), dtype=np.int64)
    for t in range(T):
        for k in range(N):
            if active[k]:
                X[k] = E[k]
        for l in range(L):
            b = f"b{l}."
            act = [k for k in range(N) if active[k]]
            units[t, l] = len(act)
            if m["mask"][2 * l, t]:
                Q, K, V = {}, {}, {}
                for k in act:
                    S = lif(b + "ain", k, X[k], p.res_threshold)
                    Q[k] = lif(b + "q", k, W[b + "q_b"] + W[b + "q_w"] @ S, W[b + "q_th"])
                    K[k] = lif(b + "k", k, W[b + "k_b"] + W[b + "k_w"] @ S, W[b + "k_th"])
                    V[k] = lif(b + "v", k, W[b + "v_b"] + W[b + "v_w"] @ S, W[b + "v_th"])
                KV = [sum((size[j] * np.outer(K[j][h * dh:(h + 1) * dh], V[j][h * dh:(h + 1) * dh]) for j in act),
                          np.zeros((dh, dh), dtype=np.int64)) for h in range(H)]
                for k in act:
                    Y = np.concatenate([Q[k][h * dh:(h + 1) * dh] @ KV[h] for h in range(H)])
                    A = lif(b + "attn", k, Y, p.attn_threshold)
                    X[k] = clampR(X[k] + W[b + "proj_b"] + W[b + "proj_w"] @ A)
            if m["mask"][2 * l + 1, t]:
                for k in act:
                    S2 = lif(b + "min", k, X[k], p.res_threshold)
                    Z = lif(b + "hid", k, W[b + "fc1_b"] + W[b + "fc1_w"] @ S2, W[b + "fc1_th"])
                    X[k] = clampR(X[k] + W[b + "fc2_b"] + W[b + "fc2_w"] @ Z)
            ran = m["mask"][2 * l, t] or m["mask"][2 * l + 1, t]
            for k in act:
                idx = min(max((int(X[k, p.halt_channel]) >> p.halt_shift) - p.halt_lut_min, 0), fmt.halt_lut_size - 1)
                if ran:
                    hacc[k] += int(m["halt_lut"][idx])
                if (ran and hacc[k] >= p.halt_threshold) or (t, l) == (T - 1, L - 1):
                    halt_t[k], halt_l[k], active[k] = t, l, False
        for k in range(N):
            if rep[k] == k:  # every representative, halted ones on their frozen X
                O = lif("out", k, X[k], p.res_threshold)
                C += size[k] * O
    logits = W["head_b"] + W["head_w"] @ C
    return {"logits": logits, "counts": C, "rep": rep, "size": [size[k] if rep[k] == k else 0 for k in range(N)],
            "halt_t": halt_t, "halt_l": halt_l, "units": units}


def same(what: str, got, want):
    """Assert two integer tensors are equal (shape, values); the message names the first differing index."""
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    bad = (got != want).nonzero()
    assert not len(bad), (f"{what}: {len(bad)} differences, first at {bad[0].tolist()}: got "
                          f"{got[tuple(bad[0])].item()}, expected {want[tuple(bad[0])].item()}")
