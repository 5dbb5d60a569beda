"""Models of the seeds' size for the DDR mode's figures: untrained networks of the seeds' shapes, exported
through the training path, with thresholds set so that their layers fire at a trained model's rates.

``build(shape, images, target)`` makes one of ``SHAPES``:
1. ``train.model.SpikingViT`` of the shape, seeded, dense (no time-step mask, merging or halting);
2. BatchNorm statistics from images (forwards in training mode, no gradient step);
3. ``start_quant()`` and ``export()``, as ``train.train`` exports a trained model;
4. thresholds scaled until the golden model's firing rates on ``images`` come closest to ``target[kind]``
   (bisection on the factor's logarithm), in execution order: ``res_threshold`` on block 0's input LIF
   (which sees only the embedding), then block by block the per-channel thresholds of q, k, v (together:
   they share their input), ``attn_threshold`` at block 0's attention, and fc1's. Later blocks' input
   LIFs and the readout fire at the one ``res_threshold``; :func:`layer_rates` reports every layer.

The targets are a trained model's own rates (``layer_rates`` of the shipped Fashion-MNIST model), so the
seed-size figures are at the spike rates training gives, not at rates chosen for them.
"""

import dataclasses

import numpy as np
import torch

from dynaspike.artifact import IntModel
from dynaspike.config import ModelConfig
from train.golden import GoldenModel
from train.model import AdaptiveConfig, SpikingViT
from train.train import PRESETS

#: The shapes: the seeds' Spikformer-4-384 on 32x32 RGB images (64 tokens of 4x4 patches; 10 and 100
#: classes), and the medium shape the DDR mode is verified on (D = 256).
SHAPES = {
    "medium": dataclasses.replace(PRESETS["cifar10"].model_config(), dim=256, heads=8),
    "seed_cifar10": PRESETS["cifar10"].model_config(),
    "seed_cifar100": PRESETS["cifar100"].model_config(),
}
#: The layers whose firing rates :func:`layer_rates` reports (the golden model's trace names, "out" the readout).
KINDS = ("ain", "q", "k", "v", "attn", "min", "hid", "out")
BISECTIONS = 10                            # steps per group: the factor to within 2**(16 / 2**10)


def cifar_like(images: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Grey 28x28 images (B, 1, 28, 28) as the shape's input: zero-padded to ``img_size`` and repeated over
    its channels (the data here has no colour images; the rates, not the classes, matter)."""
    x = np.asarray(images, np.uint8)
    before = (cfg.img_size - x.shape[-1]) // 2
    after = cfg.img_size - x.shape[-1] - before
    x = np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
    return np.repeat(x, cfg.in_channels // x.shape[1], axis=1)


def layer_rates(model: IntModel, images, gm: GoldenModel | None = None) -> dict:
    """Firing rate of every layer kind (``KINDS``): spikes over the neuron updates of the tokens that ran it,
    over all blocks and steps."""
    cfg = model.config
    r = (gm or GoldenModel(model)).run(images, trace=True)
    spikes, updates = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    for t in range(cfg.t_max):
        for l in range(cfg.blocks):
            n = int(r.units[:, t, l].sum())
            for kind in KINDS[:-1]:
                s = r.trace.get(f"t{t}.b{l}.{kind}")
                if s is not None:
                    spikes[kind] += int(s.sum())
                    updates[kind] += n * s.shape[-1]
        spikes["out"] += int(r.trace[f"t{t}.out"].sum())
        updates["out"] += int((r.rep == torch.arange(cfg.num_tokens)).sum()) * cfg.dim
    return {k: spikes[k] / updates[k] for k in KINDS if updates[k]}


def _exported(cfg: ModelConfig, images: np.ndarray, seed: int) -> IntModel:
    torch.manual_seed(seed)
    net = SpikingViT(cfg, AdaptiveConfig())
    for bn in net.modules():
        if isinstance(bn, torch.nn.BatchNorm1d):
            bn.reset_running_stats()
            bn.momentum = None   # the average over every batch below
    net.train()
    x = torch.from_numpy(images)
    with torch.no_grad():
        for i in range(0, len(x), 16):
            net(x[i:i + 16])
    net.start_quant()
    net.eval()
    return net.export({"source": f"bench/seed_models.py: untrained, seed {seed}"})


def _scaled(base, f):
    """``base`` (an int or an int array) times ``2 ** f``, rounded, at least 1."""
    return np.clip(np.round(np.asarray(base, np.int64) * 2.0 ** f), 1, None).astype(np.int32)


def build(shape, images: np.ndarray, target: dict, *, bn_images: np.ndarray | None = None, seed: int = 0,
          progress=None) -> IntModel:
    """The model of ``shape`` (a key of ``SHAPES`` or a ModelConfig), by the steps above: BatchNorm
    statistics from ``bn_images`` (default ``images``), thresholds calibrated on ``images`` (the shape's
    input format) to ``target`` (kind -> rate, ``KINDS``)."""
    cfg = SHAPES[shape] if isinstance(shape, str) else shape
    model = _exported(cfg, images if bn_images is None else bn_images, seed)
    tensors, params = dict(model.tensors), model.params
    x = torch.from_numpy(images)

    def calibrate(knobs, where):
        """Bisect the factors of ``knobs`` (name -> (kind it drives, set(f))) against block ``where``'s rates."""
        lo, hi = dict.fromkeys(knobs, -8.0), dict.fromkeys(knobs, 8.0)

        def set_mids():
            for name, (_, set_f) in knobs.items():
                set_f((lo[name] + hi[name]) / 2)
        for _ in range(BISECTIONS):
            set_mids()
            r = GoldenModel(IntModel(cfg, params, dict(tensors), model.info)).run(x, trace=True)
            for name, (kind, _) in knobs.items():
                rate = np.mean([float(r.trace[f"t{t}.b{where}.{kind}"].float().mean()) for t in range(cfg.t_max)])
                mid = (lo[name] + hi[name]) / 2
                if rate > target[kind]:   # a higher threshold fires less: too many spikes -> a larger factor
                    lo[name] = mid
                else:
                    hi[name] = mid
        set_mids()   # the middle of the last interval
        if progress:
            progress(f"{shape}: block {where} {', '.join(knobs)}")

    def per_channel(layer):
        base = tensors[layer + "_th"].astype(np.int64)
        return lambda f: tensors.__setitem__(layer + "_th", _scaled(base, f))

    def param(name):
        base = getattr(params, name)

        def set_f(f):
            nonlocal params
            params = dataclasses.replace(params, **{name: int(_scaled(base, f))})
        return set_f

    # block 0's input LIF sees only the embedding: res_threshold first; attn_threshold at block 0's attention
    calibrate({"res_threshold": ("ain", param("res_threshold"))}, 0)
    for l in range(cfg.blocks):
        calibrate({n: (n, per_channel(f"b{l}.{n}")) for n in ("q", "k", "v")}, l)
        if l == 0:
            calibrate({"attn_threshold": ("attn", param("attn_threshold"))}, 0)
        calibrate({"fc1": ("hid", per_channel(f"b{l}.fc1"))}, l)
    info = dict(model.info, calibrated_to={k: round(v, 4) for k, v in target.items()})
    return IntModel(cfg, params, tensors, info).validate()
