"""Evaluate an exported model with the golden model and report accuracy, time steps, tokens and energy.

    python -m train.evaluate [--model ARTIFACT ...] [--json FILE] [--plots DIR] [--data_root PATH]

The model defaults to the shipped digits model. The test images are those of the data set the model was
trained on (``train.data.dataset_of``: digits and Fashion-MNIST need nothing, MNIST and CIFAR come from
``--data_root``). The same model is also run dense (every step and token on) for the energy baseline.
Reports accuracy (per class, confusion matrix), time steps, tokens, operations and energy, and the
accuracy and energy after each training phase; writes PNG plots: the DTS mask table, token halting over
test images, the confusion matrix, and accuracy against energy across the training phases.
"""

import argparse
import os
import sys

import numpy as np
import torch

from dynaspike.artifact import ArtifactError, IntModel
from dynaspike.jsonfile import write_json

from .data import class_name, dataset_of, load_dataset
from .golden import PJ_PER_AC, PJ_PER_MAC, GoldenModel, layers

SHIPPED_MODEL = os.path.join(os.path.dirname(__file__), "shipped", "digits.npz")


def test_split(model: IntModel, data_root: str = ""):
    """The test images and labels of the data set the model was trained on (``train.data.dataset_of``):
    digits and Fashion-MNIST need nothing; MNIST and CIFAR come from ``data_root``."""
    cfg = model.config
    try:
        name = dataset_of(model.info, cfg.img_size, cfg.in_channels, cfg.num_classes)
        split = load_dataset(name, data_root)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"test images for model config {cfg.to_dict()}: {e}") from None
    return split.test_x, split.test_y


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
    classes = cfg.num_classes
    confusion = torch.zeros(classes, classes, dtype=torch.int64)                # rows: label, columns: prediction
    confusion.index_put_((y.long(), pred.long()), torch.ones(n, dtype=torch.int64), accumulate=True)
    per_class = (confusion.diag().double() / confusion.sum(1).clamp_min(1).double()).tolist()
    accuracy_int = (pred == y).double().mean().item()
    energy = lambda a: ((PJ_PER_MAC * macs + PJ_PER_AC * a) * 1e-6).mean().item()  # noqa: E731
    return {
        "images": n,
        "dataset": dataset_of(info, cfg.img_size, cfg.in_channels, cfg.num_classes),
        "accuracy_per_class": per_class,
        "confusion": confusion.tolist(),
        "phases": phase_figures(info, accuracy_int, energy(acs), cfg, macs.mean().item()),
        "accuracy_float": info.get("accuracy_float"),
        "accuracy_int": accuracy_int,
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
        "energy_uj_45nm": energy(acs),
        "energy_uj_45nm_dense": energy(acs_dense),
        "halt_unit_mean_per_token": torch.where(halt_t >= 0, halt_t * L + halt_l, torch.full_like(halt_t, -1))
                                    .double().clamp_min(0).mean(0).tolist(),
    }


PHASE_NAMES = {"dense": "dense", "dts": "DTS", "halt": "halting", "quant": "quantized"}


def phase_figures(info: dict, accuracy_int: float, energy_int: float, cfg=None, macs: float | None = None) -> list:
    """``[{"phase", "test_acc", "energy_uj_45nm", "token_fraction", "mask_on"}]`` after each training phase,
    from the training record (energy only where the record has it). The last phase is the exported model:
    where the record lacks its energy (records older than the per-phase energies), the golden model's accuracy
    and 45 nm energy per image on these test images stand in for it.

    Records without a phase's ``"macs"`` counted every window pixel's multiply (the rule before the
    embedding's zero pixels were left out); given ``cfg`` and the mean ``macs`` of these test images under
    today's rule, their energies are restated by the difference (the MACs are the phase-independent part of
    the energy, so the restatement is exact when these are the images the record used: all the test
    images)."""
    out = []
    for phase, r in (info.get("phases") or {}).items():
        if phase in PHASE_NAMES and isinstance(r, dict):
            out.append({"phase": phase, **{k: r.get(k) for k in ("test_acc", "energy_uj_45nm", "token_fraction",
                                                                 "mask_on")}})
            if "macs" not in r and r.get("energy_uj_45nm") is not None and cfg is not None and macs is not None:
                every_pixel = cfg.num_tokens * cfg.dim * cfg.patch_dim + cfg.num_classes * cfg.dim
                out[-1]["energy_uj_45nm"] -= PJ_PER_MAC * (every_pixel - macs) * 1e-6
    if out and out[-1]["phase"] == "quant" and out[-1]["energy_uj_45nm"] is None:
        out[-1].update(test_acc=accuracy_int, energy_uj_45nm=energy_int)
    return out


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
    print("accuracy per class: " + ", ".join(f"{c} {100 * a:.1f}" for c, a in enumerate(r["accuracy_per_class"])))
    print("confusion (rows: label, columns: prediction):")
    for c, row in enumerate(r["confusion"]):
        print(f"  {c:2d} " + " ".join(f"{v:5d}" for v in row))
    for p in r["phases"]:
        e = "n/a" if p["energy_uj_45nm"] is None else f"{p['energy_uj_45nm']:.4f} uJ"
        print(f"after phase {PHASE_NAMES[p['phase']]:9s}: test accuracy {100 * p['test_acc']:.2f} %, 45 nm energy {e}")
    print("ACs per layer (dynamic / dense):")
    for k, v in r["acs_per_layer"].items():
        d = r["acs_per_layer_dense"][k]
        print(f"  {k:10s} {v:10.0f} / {d:10.0f}  ({v / d if d else 0:.3f})")


def plot(model: IntModel, x, r: dict, out_dir: str, y=None):
    """Write mask_table.png, token_halting.png (over the first test images ``x``, labels ``y``),
    confusion.png and accuracy_energy.png into out_dir; return their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cfg = model.config
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    def save(fig, name):
        paths.append(os.path.join(out_dir, name))
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    mask = np.array(r["mask"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * cfg.t_max, 0.9 + 0.4 * cfg.num_modules))
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.4)
    ax.set_xticks(range(cfg.t_max), [f"t{t}" for t in range(cfg.t_max)])
    ax.set_yticks(range(cfg.num_modules), [cfg.module_name(m) for m in range(cfg.num_modules)])
    for (m, t), v in np.ndenumerate(mask):
        ax.text(t, m, "on" if v else "-", ha="center", va="center", fontsize=8)
    ax.set_title(f"DTS mask: {r['timesteps_avg']:.2f}/{cfg.t_max} steps")
    fig.tight_layout()
    save(fig, "mask_table.png")

    # token halting drawn over the images: each patch tinted by the (step, block) it halted at
    g, L, T, p = cfg.img_size // cfg.patch_size, cfg.blocks, cfg.t_max, cfg.patch_size
    k = min(8, len(x))
    res = GoldenModel(model).run(x[:k])
    cmap = plt.get_cmap("viridis", T * L + 1)
    fig, axes = plt.subplots(1, k + 1, figsize=(2.1 * (k + 1), 2.8), layout="constrained")
    for i in range(k):
        img = x[i].permute(1, 2, 0).numpy().squeeze()
        unit = torch.where(res.halt_t[i] >= 0, res.halt_t[i] * L + res.halt_l[i], torch.full_like(res.halt_t[i], -1))
        axes[i].imshow(img, cmap="gray" if img.ndim == 2 else None, extent=(0, g * p, g * p, 0))
        im = axes[i].imshow(unit.view(g, g).numpy(), cmap=cmap, vmin=-1.5, vmax=T * L - 0.5, alpha=0.45,
                            extent=(0, g * p, g * p, 0))
        for tok, u in enumerate(unit.tolist()):
            label = f"m{res.rep[i, tok].item()}" if u < 0 else f"{u // L},{u % L}"
            axes[i].text((tok % g + 0.5) * p, (tok // g + 0.5) * p, label, ha="center", va="center", fontsize=6,
                         color="w")
        if y is not None:
            axes[i].set_title(class_name(r["dataset"], int(y[i])), fontsize=7)
    mean = np.array(r["halt_unit_mean_per_token"]).reshape(g, g)
    axes[k].imshow(mean, cmap=cmap, vmin=-1.5, vmax=T * L - 0.5)
    axes[k].set_title("mean over the test split", fontsize=7)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("token halting over test images: (step, block) each patch halted at; mK = merged into token K",
                 fontsize=8)
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="halting unit t*L+l (-1: merged)")
    save(fig, "token_halting.png")

    conf = np.array(r["confusion"])
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(conf), 1.2 + 0.45 * len(conf)))
    ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="k" if v < conf.max() / 2 else "w")
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    names = [class_name(r["dataset"], c) for c in range(len(conf))]
    ax.set_xticks(range(len(conf)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(conf)), names, fontsize=6)
    ax.set_title(f"{r['dataset']}: integer model, {100 * r['accuracy_int']:.2f} %", fontsize=9)
    fig.tight_layout()
    save(fig, "confusion.png")

    paths.append(plot_phases({r["dataset"]: r}, os.path.join(out_dir, "accuracy_energy.png")))
    return tuple(paths)


def plot_phases(reports: dict, path: str) -> str:
    """Accuracy against 45 nm energy per image after each training phase (dense, DTS, halting, quantized),
    one curve per report (``{name: report}``); phases without an energy figure are left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, r in reports.items():
        pts = [p for p in r["phases"] if p["energy_uj_45nm"] is not None]
        if not pts:
            continue
        e, a = [p["energy_uj_45nm"] for p in pts], [100 * p["test_acc"] for p in pts]
        ax.plot(e, a, "o-", label=name)
        for p, ei, ai in zip(pts, e, a):
            ax.annotate(PHASE_NAMES[p["phase"]], (ei, ai), fontsize=7, textcoords="offset points", xytext=(4, 3))
    ax.set_xscale("log")
    ax.set_xlabel("45 nm energy per image (uJ, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs energy across the training phases", fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="exported model (.npz), repeatable; default: the shipped "
                    "digits model. With several, plots go to PLOTS/<data set>/ and the phases of all into "
                    "PLOTS/accuracy_energy.png")
    ap.add_argument("--json", help="also write the report as JSON to this file (several models: {data set: report})")
    ap.add_argument("--plots", default="build/report", help="folder for the PNG plots (default build/report)")
    ap.add_argument("--data_root", default="", help="MNIST IDX files or CIFAR python pickle batches")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    paths = a.model or [SHIPPED_MODEL]
    reports = {}
    for path in paths:
        try:
            model = IntModel.load(path)
        except ArtifactError as e:
            sys.exit(f"error: {e}")
        x, y = test_split(model, a.data_root)
        print(f"model: {path} ({model.config.to_json()})")
        r = report(model, x, y)
        print_report(r)
        out = a.plots if len(paths) == 1 else os.path.join(a.plots, r["dataset"])
        print("plots: " + ", ".join(plot(model, x, r, out, y)))
        reports[r["dataset"]] = r
    if len(paths) > 1:
        print("plots: " + plot_phases(reports, os.path.join(a.plots, "accuracy_energy.png")))
    if a.json:
        write_json(a.json, reports[next(iter(reports))] if len(paths) == 1 else reports)
        print(f"report: {a.json}")


if __name__ == "__main__":
    main()
