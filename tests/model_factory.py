"""A random, valid IntModel for any config (tests only): every tensor inside its artifact range."""

import dataclasses

import numpy as np

from dynaspike.artifact import IntModel, IntParams, tensor_specs
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS


def random_model(cfg: ModelConfig, seed: int) -> IntModel:
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, (shape, dtype, lo, hi) in tensor_specs(cfg, FORMATS).items():
        if name.endswith("_b") and name.startswith("b"):
            lo, hi = -5000, 5000               # keeps |b| + sum|w| inside the accumulator
        elif name == "emb_b":
            lo, hi = -(1 << 20), 1 << 20
        elif name.endswith("_th"):
            lo, hi = 1, 3000
        elif name == "emb_w":
            lo, hi = -2000, 2000
        elif name == "head_w":
            lo, hi = -1000, 1000               # logits stay inside 32 bits for any pooled counts
        tensors[name] = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    params = IntParams(res_threshold=64, attn_threshold=4, halt_shift=2, halt_lut_min=-8, halt_channel=0,
                       halt_threshold=FORMATS.halt_one - 3, merge_threshold=2)
    return IntModel(cfg, params, tensors, {"source": f"tests/model_factory.py seed {seed}"}).validate()


def saturating_model(cfg: ModelConfig, seed: int) -> IntModel:
    """A random model whose integers hit both saturations of docs/integer_model.md: the embedding's clamp
    (huge embedding biases, alternately positive and negative by channel) and the residual clamp (attention
    and MLP output biases of +-30,000 on a residual stream already near its bounds). Tests check that the
    golden trace really saturates, so a missing clamp anywhere cannot pass."""
    m = random_model(cfg, seed)
    t = dict(m.tensors)
    sign = np.where(np.arange(cfg.dim) % 2 == 0, 1, -1)
    emb_b = t["emb_b"].astype(np.int64)
    emb_b[:, : cfg.dim // 2] = sign[: cfg.dim // 2] * (1 << 24)   # E clamps to +-32767 on these channels
    t["emb_b"] = emb_b.astype(np.int32)
    for l in range(cfg.blocks):
        for name in ("proj", "fc2"):
            t[f"b{l}.{name}_b"] = (np.roll(sign, l) * 30_000).astype(np.int32)
    t["mask"] = np.ones_like(t["mask"])                               # every module runs at every step
    return IntModel(cfg, m.params, t, {"source": f"tests/model_factory.py saturating, seed {seed}"}).validate()


def spiky_model(cfg: ModelConfig, seed: int) -> IntModel:
    """A random model in which every spiking layer fires often (low thresholds, mostly positive biases,
    attention threshold 1), so a core that drops, repeats or misroutes a spike event anywhere changes the
    logits; tests check the firing with :func:`spike_rates`."""
    m = random_model(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    t = dict(m.tensors)
    for name in t:
        if name.endswith("_th"):
            t[name] = rng.integers(1, 300, size=t[name].shape, endpoint=True).astype(np.int32)
        elif name.startswith("b") and name.endswith(("q_b", "k_b", "v_b", "fc1_b")):
            t[name] = rng.integers(-300, 1500, size=t[name].shape, endpoint=True).astype(np.int32)
    t["mask"] = np.ones_like(t["mask"])       # every module at every step but one (the gating still shows)
    t["mask"][-1, 0] = 0
    params = dataclasses.replace(m.params, attn_threshold=1)
    return IntModel(cfg, params, t, {"source": f"tests/model_factory.py spiky, seed {seed}"}).validate()


def spike_rates(trace: dict) -> dict:
    """Firing rate of every spike map of a golden trace (``run(..., trace=True)``), by layer name."""
    kinds = ("ain", "q", "k", "v", "attn", "min", "hid")
    rates = {}
    for key, v in trace.items():
        layer = key.rsplit(".", 1)[-1]
        if layer in kinds:
            rates.setdefault(layer, []).append(float(np.asarray(v, dtype=np.float64).mean()))
    return {k: float(np.mean(v)) for k, v in rates.items()}


def saturation_seen(trace: dict, fmt=FORMATS) -> dict:
    """``{"embedding": bool, "residual": bool}``: whether a golden trace (``run(..., trace=True)``) has
    embedding values at the residual bounds and residual values after an add at the bounds."""
    bounds = lambda a: bool(((a == fmt.res_max) | (a == fmt.res_min)).any())  # noqa: E731
    residual = any(bounds(v) for k, v in trace.items() if k.endswith(("x_attn", "x_mlp")))
    return {"embedding": bounds(trace["emb"]), "residual": residual}
