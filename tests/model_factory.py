"""A random, valid IntModel for any config (tests only): every tensor inside its artifact range."""

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
