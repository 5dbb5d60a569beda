"""Evaluate an exported model with the golden model and report accuracy, time steps, tokens and energy.

    python -m train.evaluate [--model ARTIFACT] [--json FILE] [--plots DIR] [--data_root PATH]

The model defaults to the shipped digits model. The test split is the digits preset's (or CIFAR's, from
``--data_root``). The same model is also run dense (every step and token on) for the energy baseline.
Writes PNG plots: the DTS mask table and a token-halting map.
"""

import argparse
import os
import sys

import numpy as np
import torch

from dynaspike.artifact import ArtifactError, IntModel
from dynaspike.jsonfile import write_json

from .data import load_cifar, load_digits_split
from .golden import PJ_PER_AC, PJ_PER_MAC, GoldenModel, layers

SHIPPED_MODEL = os.path.join(os.path.dirname(__file__), "shipped", "digits.npz")


def test_split(model: IntModel, data_root: str = ""):
    """The test images and labels that fit this model (digits by default, CIFAR from a local path)."""
    cfg = model.config
    if (cfg.img_size, cfg.in_channels, cfg.num_classes) == (8, 1, 10):
        _, _, x, y = load_digits_split()
        return x, y
    if (cfg.img_size, cfg.in_channels) == (32, 3) and cfg.num_classes in (10, 100):
        if not data_root:
            raise SystemExit("this is a CIFAR model: pass --data_root=PATH to the CIFAR pickle batches")
        return load_cifar(data_root, cfg.num_classes)[2:]
    raise SystemExit(f"no test split known for a model of config {cfg.to_dict()}")


def run_batched(golden: GoldenModel, x, batch=512, **kw):
    """Run the golden model over x in batches; return the per-batch results as a list."""
    return [golden.run(x[i:i + batch], **kw) for i in range(0, len(x), batch)]


def report(model: IntModel, x, y, batch: int = 512) -> dict:
    """Every figure of the evaluation report, as a JSON-serialisable dict (per-image means)."""
    cfg, golden = model.config, GoldenModel(model)
    N, L, T, M = cfg.num_tokens, cfg.blocks, cfg.t_max, cfg.num_modules
    dyn, dense = run_batched(golden, x, batch), run_batched(golden, x, batch, dense=True)
    cat = lambda rs, f: torch.cat([f(r) for r in rs])
    n = len(x)
    pred, pred_dense = cat(dyn, lambda r: r.pred), cat(dense, lambda r: r.pred)
    mask = dyn[0].mask.double()                                        # (M, T)
    per_layer = {k: cat(dyn, lambda r: r.acs[k].sum(1)).double().mean().item() for k in layers(cfg)}
    per_layer_dense = {k: cat(dense, lambda r: r.acs[k].sum(1)).double().mean().item() for k in layers(cfg)}
    # ops weight of each module: its accumulate operations in the dense run
    mod_ops = []
    for l in range(L):
        mod_ops.append(sum(per_layer_dense[f"b{l}.{k}"] for k in ("qkv", "kv", "y", "proj")))
        mod_ops.append(sum(per_layer_dense[f"b{l}.{k}"] for k in ("fc1", "fc2")))
    w = torch.tensor(mod_ops, dtype=torch.float64)
    steps = mask.sum(1)                                                # (M,) steps on per module
    units = cat(dyn, lambda r: r.units).double()                       # (n, T, L)
    acs, acs_dense = cat(dyn, lambda r: r.acs_total).double(), cat(dense, lambda r: r.acs_total).double()
    macs = cat(dyn, lambda r: r.macs).double()
    halt_t, halt_l = cat(dyn, lambda r: r.halt_t), cat(dyn, lambda r: r.halt_l)
    info = model.info
    return {
        "images": n,
        "accuracy_float": info.get("accuracy_float"),
        "accuracy_int": (pred == y).double().mean().item(),
        "accuracy_int_dense": (pred_dense == y).double().mean().item(),
        "accuracy_dense_baseline": info.get("accuracy_dense_baseline"),
        "timesteps_avg": steps.mean().item(),
        "timesteps_avg_ops_weighted": (steps * w).sum().item() / w.sum().item(),
        "timesteps_max": T,
        "timesteps_per_module": {cfg.module_name(m): steps[m].item() for m in range(M)},
        "timesteps_per_block": [steps[2 * l:2 * l + 2].mean().item() for l in range(L)],
        "mask": mask.to(torch.int64).tolist(),
        "token_fraction": units.sum().item() / (n * N * L * T),
        "token_fraction_per_step_block": (units.mean(0) / N).tolist(),
        "tokens_merged_fraction": (halt_t < 0).double().mean().item(),
        "acs": acs.mean().item(),
        "acs_dense": acs_dense.mean().item(),
        "acs_per_layer": per_layer,
        "acs_per_layer_dense": per_layer_dense,
        "macs": macs.mean().item(),
        "energy_uj_45nm": ((PJ_PER_MAC * macs + PJ_PER_AC * acs) * 1e-6).mean().item(),
        "energy_uj_45nm_dense": ((PJ_PER_MAC * macs + PJ_PER_AC * acs_dense) * 1e-6).mean().item(),
        "halt_unit_mean_per_token": torch.where(halt_t >= 0, halt_t * L + halt_l, torch.full_like(halt_t, -1))
                                    .double().clamp_min(0).mean(0).tolist(),
    }


def print_report(r: dict):
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f} %"
    print(f"images: {r['images']}")
    print(f"accuracy: integer {pct(r['accuracy_int'])}, float {pct(r['accuracy_float'])}, "
          f"dense baseline {pct(r['accuracy_dense_baseline'])} (same integer model run dense: "
          f"{pct(r['accuracy_int_dense'])})")
    per_mod = ", ".join(f"{k} {v:g}" for k, v in r["timesteps_per_module"].items())
    print(f"time steps: {r['timesteps_avg']:.2f} of {r['timesteps_max']} on average per module "
          f"(ops-weighted {r['timesteps_avg_ops_weighted']:.2f}); per module: {per_mod}")
    print(f"tokens: {100 * r['token_fraction']:.1f} % of token-block-step units processed "
          f"({100 * r['tokens_merged_fraction']:.1f} % of tokens merged at the embedding)")
    print(f"operations per image: {r['acs']:.0f} ACs (dense {r['acs_dense']:.0f}, "
          f"{r['acs'] / r['acs_dense']:.3f}x), {r['macs']:.0f} MACs")
    print(f"energy (45 nm, 4.6 pJ/MAC + 0.9 pJ/AC): {r['energy_uj_45nm']:.4f} uJ per image, dense "
          f"{r['energy_uj_45nm_dense']:.4f} uJ ({r['energy_uj_45nm'] / r['energy_uj_45nm_dense']:.3f}x)")
    print("ACs per layer (dynamic / dense):")
    for k, v in r["acs_per_layer"].items():
        d = r["acs_per_layer_dense"][k]
        print(f"  {k:10s} {v:10.0f} / {d:10.0f}  ({v / d if d else 0:.3f})")


def plot(model: IntModel, x, r: dict, out_dir: str):
    """Write mask_table.png and token_halting.png into out_dir; return their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cfg = model.config
    os.makedirs(out_dir, exist_ok=True)
    mask = np.array(r["mask"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * cfg.t_max, 0.9 + 0.4 * cfg.num_modules))
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.4)
    ax.set_xticks(range(cfg.t_max), [f"t{t}" for t in range(cfg.t_max)])
    ax.set_yticks(range(cfg.num_modules), [cfg.module_name(m) for m in range(cfg.num_modules)])
    for (m, t), v in np.ndenumerate(mask):
        ax.text(t, m, "on" if v else "-", ha="center", va="center", fontsize=8)
    ax.set_title(f"DTS mask: {r['timesteps_avg']:.2f}/{cfg.t_max} steps")
    fig.tight_layout()
    p1 = os.path.join(out_dir, "mask_table.png")
    fig.savefig(p1, dpi=120)
    plt.close(fig)

    g, L, T = cfg.img_size // cfg.patch_size, cfg.blocks, cfg.t_max
    k = min(6, len(x))
    res = GoldenModel(model).run(x[:k])
    fig, axes = plt.subplots(2, k + 1, figsize=(2 * (k + 1), 4.2))
    for i in range(k):
        img = x[i].permute(1, 2, 0).numpy()
        axes[0, i].imshow(img.squeeze(), cmap="gray")
        unit = torch.where(res.halt_t[i] >= 0, res.halt_t[i] * L + res.halt_l[i], torch.full_like(res.halt_t[i], -1))
        im = axes[1, i].imshow(unit.view(g, g).numpy(), cmap="viridis", vmin=-1, vmax=T * L - 1)
        for tok, u in enumerate(unit.tolist()):
            label = f"m{res.rep[i, tok].item()}" if u < 0 else f"{u // L},{u % L}"
            axes[1, i].text(tok % g, tok // g, label, ha="center", va="center", fontsize=6, color="w")
    mean = np.array(r["halt_unit_mean_per_token"]).reshape(g, g)
    axes[1, k].imshow(mean, cmap="viridis", vmin=-1, vmax=T * L - 1)
    axes[1, k].set_title("mean (test split)", fontsize=8)
    axes[0, k].axis("off")
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("token halting: (step, block) of halting per patch; mK = merged into token K", fontsize=9)
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="halting unit t*L+l (-1: merged)")
    p2 = os.path.join(out_dir, "token_halting.png")
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return p1, p2


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=SHIPPED_MODEL, help="exported model (.npz); default: the shipped digits model")
    ap.add_argument("--json", help="also write the report as JSON to this file")
    ap.add_argument("--plots", default="build/report", help="folder for the PNG plots (default build/report)")
    ap.add_argument("--data_root", default="", help="CIFAR python pickle batches (CIFAR models only)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        model = IntModel.load(a.model)
    except ArtifactError as e:
        sys.exit(f"error: {e}")
    x, y = test_split(model, a.data_root)
    print(f"model: {a.model} ({model.config.to_json()})")
    r = report(model, x, y)
    print_report(r)
    paths = plot(model, x, r, a.plots)
    print("plots: " + ", ".join(paths))
    if a.json:
        write_json(a.json, r)
        print(f"report: {a.json}")


if __name__ == "__main__":
    main()
