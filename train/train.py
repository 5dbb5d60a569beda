"""Train, quantize and export a spiking ViT with dynamic time steps and adaptive tokens.

    python -m train.train --preset=digits [--key=value ...]      (make train PRESET=digits)
    torchrun --nproc_per_node=4 -m train.train --preset=cifar10 --data_root=/data

Four phases, each resumable from the checkpoint written after every epoch (``--resume``):
1. ``dense``: all steps and tokens; its test accuracy is the dense baseline.
2. ``dts``: learns the time-step mask (hinge on the mean mask score above ``t_target``), token merge on;
   the mask is frozen for the last ``mask_freeze`` fraction of the phase (scores near 0 flip otherwise).
   BatchNorm is frozen from the last ``bn_freeze`` fraction of the dense phase on.
3. ``halt``: ACT halting with a ponder cost steering the token fraction to ``token_target``.
4. ``quant``: quantization-aware fine-tuning in integer units (the exported arithmetic), then export.
The checkpoint carries both configs; the exported artifact carries the training record in ``info``.

Several processes (torchrun, DistributedDataParallel; NCCL on GPUs, gloo on the CPU): ``batch_size`` is per
rank, a step trains on ``world_size * batch_size`` images, and the learning rate is not rescaled. Every rank
draws the same epoch permutation and takes its share by ``rank_batches`` (DistributedSampler's rule with
``drop_last=False``: the permutation wraps around to a multiple of ``world_size``), so every rank runs the
same number of steps with batches of the same size, and every image is used at least once per epoch (at
most ``world_size - 1`` of them twice). A single process trains exactly as before (same batches, same order).
BatchNorm (dense phase, until frozen) normalises with each rank's own batch statistics (no SyncBatchNorm,
as in Spikformer's per-GPU recipe); DDP broadcasts rank 0's running statistics before each forward, so
evaluation and export use rank 0's. Rank 0 alone evaluates, writes checkpoints and exports while the others
wait at a barrier (within the process group's timeout: torch's default, 30 min for gloo); at each phase's
end the ranks check that they ran the same number of steps and still hold identical parameters.
"""

import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from math import ceil

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from dynaspike.config import ModelConfig

from .data import VAL_SEED, load_dataset
from .golden import PJ_PER_AC, PJ_PER_MAC
from .model import AdaptiveConfig, SpikingViT

PHASES = ("dense", "dts", "halt", "quant")


@dataclass
class TrainConfig:
    preset: str = "digits"
    seed: int = 0
    out: str = "runs/digits"            # checkpoints and the exported model go here
    data_root: str = ""                 # MNIST / CIFAR (or another Fashion-MNIST copy): folder with the files
    threads: int = 2
    batch_size: int = 64                # per process: torchrun's N processes train on N x batch_size a step
    lr: float = 2e-3
    weight_decay: float = 0.06
    label_smoothing: float = 0.1
    bn_freeze: float = 0.3              # BatchNorm frozen for this last fraction of the dense phase and after
    augment_shift: int = 0              # random translations of up to this many pixels (zero fill), training only
    ema: float = 0.0                    # >0: exponential moving average of the weights while BatchNorm is
                                        # frozen, copied into the model at the end of each phase
    epochs_dense: int = 60
    epochs_dts: int = 30
    epochs_halt: int = 20
    epochs_quant: int = 15
    lr_mask: float = 0.05               # learning rate of the DTS scores
    lambda_t: float = 0.5               # DTS cost weight (hinge above t_target)
    t_target: float = 0.55              # target mean fraction of (module, step) pairs on
    mask_freeze: float = 0.3            # freeze the mask for this last fraction of the dts phase (once the
                                        # mask is at or below t_target)
    alpha_p: float = 0.05               # ponder cost weight (sign flips below token_target)
    token_target: float = 0.5           # target fraction of token units processed
    halt_gamma: float = 2.0
    halt_beta: float = 5.0
    halt_eps: float = 0.01
    halt_channel: int = 0
    halt_ste_slope: float = 0.0         # >0: straight-through gradient for halting (hurt in our runs)
    merge_threshold: int = 1
    lambda_acs: float = 0.0             # activity cost (phases after dense): this weight x the ACs per image as
                                        # a fraction of every_spike_acs (surrogate gradients through the spikes)
    # architecture
    img_size: int = 8
    in_channels: int = 1
    patch_size: int = 2
    embed_kernel: int = 4
    dim: int = 64
    heads: int = 4
    blocks: int = 2
    mlp_ratio: int = 4
    t_max: int = 4
    num_classes: int = 10

    def model_config(self) -> ModelConfig:
        names = {f.name for f in fields(ModelConfig)}
        return ModelConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def adaptive(self, phase: str) -> AdaptiveConfig:
        i = PHASES.index(phase)
        return AdaptiveConfig(dts=i >= 1, merge=i >= 1, halting=i >= 2, halt_gamma=self.halt_gamma,
                              halt_beta=self.halt_beta, halt_eps=self.halt_eps,
                              halt_channel=self.halt_channel, halt_ste_slope=self.halt_ste_slope,
                              merge_threshold=self.merge_threshold)


PRESETS = {
    "digits": TrainConfig(),
    # Spikformer-4-384-like on 32x32 images (reference recipe: 300 epochs, AdamW 5e-4, wd 0.06, batch 128)
    "cifar10": TrainConfig(preset="cifar10", out="runs/cifar10", img_size=32, in_channels=3, patch_size=4, embed_kernel=4,
                           dim=384, heads=12, blocks=4, t_max=4, num_classes=10, batch_size=128, lr=5e-4,
                           epochs_dense=300, epochs_dts=60, epochs_halt=30, epochs_quant=20, merge_threshold=24),
}
PRESETS["cifar100"] = replace(PRESETS["cifar10"], preset="cifar100", out="runs/cifar100", num_classes=100)
# 28x28 grey images (Fashion-MNIST from Debian's package; MNIST from --data_root): 7x7 patches -> 16 tokens,
# each embedded from the 11x11 window around it; sized to train all four phases in under an hour on 2 cores.
PRESETS["fmnist"] = TrainConfig(preset="fmnist", out="runs/fmnist", img_size=28, patch_size=7, embed_kernel=11,
                                batch_size=128, epochs_dense=20, epochs_dts=6, epochs_halt=5, epochs_quant=3,
                                token_target=0.45)
PRESETS["mnist"] = replace(PRESETS["fmnist"], preset="mnist", out="runs/mnist")


def every_spike_acs(cfg: ModelConfig) -> int:
    """The ACs of an image if every neuron fired at every step and no token halted or merged (counted as
    docs/integer_model.md "Operation counts" counts them): the activity cost's unit."""
    D, dh = cfg.dim, cfg.head_dim
    per_unit = 3 * D * D + D * dh + dh * D + D * D + cfg.hidden_dim * D + D * cfg.hidden_dim
    return cfg.num_tokens * cfg.t_max * (cfg.blocks * per_unit + D)


def parse_args(argv) -> TrainConfig:
    """``--preset=NAME`` first, then ``--key=value`` overrides of TrainConfig fields; ``--resume``."""
    args = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "1") for a in argv)
    bad = [a for a in argv if not a.startswith("--")]
    if bad:
        raise SystemExit(f"arguments must look like --key=value, got {bad}")
    preset = args.pop("preset", "digits")
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[preset]
    types = {f.name: f.type for f in fields(TrainConfig)}
    resume = args.pop("resume", None) is not None
    over = {}
    for k, v in args.items():
        if k not in types:
            raise SystemExit(f"unknown option --{k}; options are --resume and {sorted(types)}")
        typ = {"int": int, "float": float, "str": str}[types[k] if isinstance(types[k], str) else types[k].__name__]
        over[k] = typ(v)
    return replace(cfg, **over), resume


def load_data(tc: TrainConfig):
    """The preset's data set (``train.data.load_dataset``: the preset names it); a missing one exits with
    the reason and what to do."""
    try:
        return load_dataset(tc.preset, tc.data_root)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"preset {tc.preset}: {e}") from None


@torch.no_grad()
def accuracy(model, x, y, batch=512, dense=False):
    """``(accuracy, token fraction, fraction of mask on, 45 nm energy per image in uJ, MACs per image)`` on
    ``(x, y)``."""
    was = model.training
    model.eval()
    correct, units, masks, energy, macs = 0, 0.0, None, 0.0, 0
    for i in range(0, len(x), batch):
        logits, st = model(x[i:i + batch], dense=dense)
        if st["logits_int"] is not None:  # quant mode: decide on the exact integers, as the golden model
            logits = st["logits_int"]
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
        units += st["units"].sum().item()
        masks = st["mask"]
        energy += (PJ_PER_MAC * st["macs"].sum().item() + PJ_PER_AC * st["acs"].sum().item()) * 1e-6
        macs += st["macs"].sum().item()
    model.train(was)
    cfg = model.cfg
    return (correct / len(x), units / (len(x) * cfg.num_tokens * cfg.blocks * cfg.t_max), masks.mean().item(),
            energy / len(x), macs / len(x))


def shift_images(x, k: int, gen):
    """Translate each image by a random (dy, dx) in [-k, k]^2, filling with zeros (k = 0: unchanged)."""
    if k == 0:
        return x
    H, W = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (k, k, k, k))
    d = torch.randint(0, 2 * k + 1, (len(x), 2), generator=gen)
    return torch.stack([padded[i, :, dy:dy + H, dx:dx + W] for i, (dy, dx) in enumerate(d.tolist())])


def rank_batches(perm: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1) -> list:
    """This rank's batches of one epoch: index tensors into the training set, in training order.

    ``perm`` (the epoch's permutation, the same on every rank) is padded by wrapping around to a multiple of
    ``world`` (its first ``-len(perm) % world`` entries once more; repeated whole where it is shorter than
    ``world``), then dealt round-robin: rank ``r`` takes ``padded[r::world]`` (torch's DistributedSampler
    with ``drop_last=False``) and cuts it into batches of ``batch_size``, the last one shorter. Every rank
    thus gets ``ceil(len(perm) / world)`` images in the same number of batches, and step ``s`` has the same
    batch size on every rank: DDP's gradient all-reduces stay in step and average equal shares. Together
    the ranks' batches of step ``s`` are ``padded[s * world * batch_size:(s + 1) * world * batch_size]``.
    ``world == 1``: ``perm`` cut into batches, unchanged.
    """
    if not 0 <= rank < world or batch_size < 1 or len(perm) == 0:
        raise ValueError(f"rank_batches: need 0 <= rank < world, batch_size >= 1 and images, got rank={rank}, "
                         f"world={world}, batch_size={batch_size}, {len(perm)} images")
    if world > 1:
        total = ceil(len(perm) / world) * world
        perm = perm.repeat(ceil(total / len(perm)))[:total][rank::world]
    return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]


def check_replicas(model, steps: int) -> list:
    """Every rank's number of ``steps`` (all ranks call this); raise unless they are equal and every rank
    holds rank 0's parameters bit for bit (DDP keeps them so when every gradient is all-reduced; a parameter
    left out of DDP's reducer trains on one rank's data only and drifts)."""
    mine = torch.tensor([steps], dtype=torch.int64, device=next(model.parameters()).device)
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    every = [int(t.item()) for t in every]
    if len(set(every)) > 1:
        raise RuntimeError(f"DDP ranks ran different numbers of steps: {every}")
    for name, p in model.named_parameters():
        ref = p.detach().clone()
        dist.broadcast(ref, src=0)
        same = torch.tensor([int(torch.equal(ref, p.detach()))], device=p.device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        if not same.item():
            diff = (ref - p.detach()).abs().max().item()
            raise RuntimeError(f"DDP replicas differ in parameter {name} (rank {dist.get_rank()}: max |diff| "
                               f"from rank 0 {diff:g}; 0 on a rank that matches)")
    return every


def save_checkpoint(path, model, state, tc: TrainConfig, optimizer):
    """Write a checkpoint that carries both configs (training and model) and the training state."""
    torch.save({"model": model.state_dict(), "state": state, "train_config": asdict(tc),
                "model_config": tc.model_config().to_dict(), "optimizer": optimizer}, path)


def main(argv=None):
    tc, resume = parse_args(sys.argv[1:] if argv is None else argv)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if ddp:  # launched by torchrun
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's barrier and collectives use the current device
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed + rank)
    os.makedirs(tc.out, exist_ok=True)
    ckpt_path = os.path.join(tc.out, "checkpoint.pt")
    data = load_data(tc)
    xtr, ytr = data.train_x, data.train_y
    xte_d, yte_d = data.test_x.to(device), data.test_y.to(device)
    # The epoch log and recipe choices use the validation split where the data set has one; the test images
    # then serve only the reported figures (each phase's end). Without one (digits, CIFAR) the log shows test.
    has_val = len(data.val_y) > 0
    xev_d, yev_d = (data.val_x.to(device), data.val_y.to(device)) if has_val else (xte_d, yte_d)
    eval_key = "val_acc" if has_val else "test_acc"
    steps = len(rank_batches(torch.arange(len(xtr)), tc.batch_size, rank, world))  # per epoch, on every rank
    distributed = {"world_size": world, "batch_per_rank": tc.batch_size, "global_batch": world * tc.batch_size,
                   "steps_per_epoch": steps, "images_per_rank": ceil(len(xtr) / world),
                   "repeated_per_epoch": -len(xtr) % world, "sharding": "train.train.rank_batches"}
    if ddp and rank == 0:
        print(f"DDP: {json.dumps(distributed)}", flush=True)

    model = SpikingViT(tc.model_config(), tc.adaptive("dense")).to(device)
    state = {"phase": 0, "epoch": 0, "log": [], "elapsed": 0.0, "results": {}}
    opt_state = None
    if resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["model_config"] != tc.model_config().to_dict():
            raise SystemExit(f"checkpoint {ckpt_path} has model config {ck['model_config']}, not {tc.model_config().to_dict()}")
        state = ck["state"]
        if state["phase"] >= PHASES.index("quant"):  # quant mode first: it owns the res_threshold buffer
            model.start_quant()
        model.load_state_dict(ck["model"])
        opt_state = ck["optimizer"]
        where = PHASES[state["phase"]] if state["phase"] < len(PHASES) else "done"
        print(f"resumed {ckpt_path}: phase {where}, epoch {state['epoch']}")

    t_start = time.time() - state["elapsed"]
    epochs = {"dense": tc.epochs_dense, "dts": tc.epochs_dts, "halt": tc.epochs_halt, "quant": tc.epochs_quant}
    for pi in range(state["phase"], len(PHASES)):
        phase = PHASES[pi]
        model.ad = tc.adaptive(phase)
        if phase != "dense":
            # Time-major training normalises each step with its own batch statistics, evaluation with running
            # statistics pooled over steps: freezing BatchNorm makes training see what evaluation sees.
            model.freeze_bn()
        if phase == "quant" and not model.quant:
            model.start_quant()
        # Before DDP wraps the model: DDP all-reduces only the parameters that require a gradient when it is
        # built, so the DTS scores switched on after it would train on each rank's own data and drift apart.
        model.mask_scores.requires_grad_(phase == "dts")
        # find_unused_parameters: the DTS scores and frozen BatchNorm get no gradient in some phases
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if ddp else model
        base = [p for n, p in model.named_parameters() if n != "mask_scores" and p.requires_grad]
        opt = torch.optim.AdamW([{"params": base, "lr": tc.lr if phase == "dense" else tc.lr / 4},
                                 {"params": [model.mask_scores], "lr": tc.lr_mask, "weight_decay": 0.0}],
                                weight_decay=tc.weight_decay)
        n_ep = epochs[phase]
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_ep))
        if opt_state is not None:
            opt.load_state_dict(opt_state["opt"])
            sched.load_state_dict(opt_state["sched"])
        ema = None
        steps_run = 0  # by this process in this phase (DDP: compared across the ranks at the phase's end)
        for ep in range(state["epoch"], n_ep):
            if phase == "dts" and ep >= n_ep * (1 - tc.mask_freeze) and model.mask().mean() <= tc.t_target:
                model.mask_scores.requires_grad_(False)  # frozen only once the mask meets its target
            if phase == "dense" and ep >= n_ep * (1 - tc.bn_freeze) and not model.bn_frozen:
                model.freeze_bn()
            if tc.ema > 0 and model.bn_frozen and ema is None:
                ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema))
            model.train()
            g = torch.Generator().manual_seed(tc.seed * 1000 + pi * 100 + ep)
            perm = torch.randperm(len(xtr), generator=g)  # the same on every rank: rank_batches shares it out
            # Augmentation draws from g in one process (its order as ever); each rank draws its own shifts.
            aug = g if world == 1 else torch.Generator().manual_seed((tc.seed * 1000 + pi * 100 + ep) * world + rank)
            bar = tqdm(rank_batches(perm, tc.batch_size, rank, world), desc=f"{phase} {ep + 1}/{n_ep}",
                       leave=False, disable=rank != 0, file=sys.stdout)
            for idx in bar:
                xb, yb = shift_images(xtr[idx], tc.augment_shift, aug).to(device), ytr[idx].to(device)
                logits, st = net(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=tc.label_smoothing)
                if model.ad.dts and model.mask_scores.requires_grad:
                    soft = torch.sigmoid(model.mask_scores).mean()
                    if st["mask"].mean() > tc.t_target:
                        loss = loss + tc.lambda_t * soft
                if model.ad.halting:
                    cfg = model.cfg
                    frac = st["units"].mean() / (cfg.num_tokens * cfg.blocks * cfg.t_max)
                    # two-sided: the ponder cost pushes the halting scores up above the target and down
                    # below it, so the token fraction settles near the target instead of drifting off
                    sign = 1.0 if frac > tc.token_target else -1.0
                    loss = loss + sign * tc.alpha_p * st["ponder"].mean()
                if tc.lambda_acs > 0 and phase != "dense":
                    loss = loss + tc.lambda_acs * st["acs_soft"].mean() / every_spike_acs(model.cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema is not None:
                    ema.update_parameters(model)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                steps_run += 1
            sched.step()
            state["epoch"] = ep + 1
            if rank == 0:
                acc, tok, msk = accuracy(model, xev_d, yev_d)[:3]
                train_acc = accuracy(model, xtr[:450].to(device), ytr[:450].to(device))[0]
                state["elapsed"] = time.time() - t_start
                rec = {"phase": phase, "epoch": ep + 1, eval_key: acc, "train_acc": train_acc, "token_fraction": tok,
                       "mask_on": msk, "loss": loss.item(), "seconds": round(state["elapsed"], 1)}
                state["log"].append(rec)
                print(json.dumps(rec), flush=True)
                save_checkpoint(ckpt_path, model, state, tc, {"opt": opt.state_dict(), "sched": sched.state_dict()})
            if ddp:  # the others wait here, not inside a collective of the next epoch's first step
                dist.barrier()
        if ema is not None:  # the averaged weights become the model (the DTS mask stays as trained)
            with torch.no_grad():
                for (n, p), pe in zip(model.named_parameters(), ema.module.parameters()):
                    if n != "mask_scores":
                        p.copy_(pe)
        if ddp:
            steps_by_rank = check_replicas(model, steps_run)
        # DDP's reducer holds the process group and its last all-reduces' work: release it now, while the
        # group and the interpreter live (left to main's return, after destroy_process_group, rank 1 aborted
        # at exit in 3 of 156 torchrun runs on 2 busy cores, "terminate called without an active exception";
        # none in 150 since)
        net = None
        if rank == 0:
            acc, tok, msk, energy, macs = accuracy(model, xte_d, yte_d)
            state["results"][phase] = {"test_acc": acc, "token_fraction": tok, "mask_on": msk,
                                       "energy_uj_45nm": energy, "macs": macs}
            if has_val:
                state["results"][phase]["val_acc"] = accuracy(model, xev_d, yev_d)[0]
            if ddp:
                state["results"][phase]["steps_by_rank"] = steps_by_rank
            if phase == "dense":
                state["results"]["accuracy_dense_baseline"] = acc
            if phase == "halt":
                state["results"]["accuracy_float"] = acc
        state.update(phase=pi + 1, epoch=0)
        opt_state = None
        if rank == 0:  # a phase boundary to branch from: copy it to checkpoint.pt and --resume
            save_checkpoint(os.path.join(tc.out, f"after_{phase}.pt"), model, state, tc, None)
        if ddp:
            dist.barrier()

    if rank == 0:
        model.ad = tc.adaptive(PHASES[-1])  # what the last phase trained (also when resuming a finished run)
        model.eval()
        info = {"command": "python -m train.train " + " ".join(sys.argv[1:] if argv is None else argv),
                "train_config": asdict(tc), "seconds": round(time.time() - t_start, 1),
                "accuracy_dense_baseline": state["results"]["accuracy_dense_baseline"],
                "accuracy_float": state["results"]["accuracy_float"],
                "accuracy_quant_eval": state["results"]["quant"]["test_acc"],
                "phases": state["results"], "log": state["log"], "torch": torch.__version__}
        if ddp:
            info["distributed"] = distributed
        if has_val:  # which training images were held out (indices into the data set's training files)
            info["validation"] = {"size": len(data.val_index), "seed": VAL_SEED,
                                  "rule": "train.data.validation_split: stratified, sklearn train_test_split",
                                  "indices": data.val_index.tolist()}
        art = model.cpu().export(info)
        path = os.path.join(tc.out, "model.npz")
        art.save(path)
        with open(os.path.join(tc.out, "train_log.json"), "w") as f:
            json.dump(info, f, indent=1)
        print(f"exported {path} after {info['seconds']} s: dense {info['accuracy_dense_baseline']:.4f}, "
              f"float {info['accuracy_float']:.4f}, quantized {info['accuracy_quant_eval']:.4f}")
    if ddp:
        gc.collect()  # nothing of the training left to hold the process group (see net = None above)
        dist.barrier()  # the others leave once rank 0 has exported
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
