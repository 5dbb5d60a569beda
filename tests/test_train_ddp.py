"""Data-parallel training: the rule that shares an epoch out to the ranks, the CIFAR path end to end, and
torchrun with two CPU processes (gloo) on shards that the old ``perm[rank::world]`` split made uneven."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dynaspike.artifact import IntModel
from train import train
from train.data import load_cifar
from train.golden import GoldenModel
from train.model import SpikingViT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------- sharding
def naive_rank_batches(n, batch_size, rank, world):
    """The split ``rank_batches`` replaced: each rank takes ``perm[rank::world]`` as it is (here ``perm`` is
    the identity). Kept only to show the cases below are uneven under it."""
    own = torch.arange(n)[rank::world]
    return [own[i:i + batch_size] for i in range(0, len(own), batch_size)]


# (images, world, batch per rank): 1281 at world 2 gave ranks 641 and 640 images, 11 and 10 batches of 64
# (the all-reduces of the 11th step met the other rank's next epoch); 1347 digits at batch 256 gave equal
# counts but last batches of 162 and 161; then more ranks than leftover images, and fewer images than ranks.
CASES = [(1281, 2, 64), (1347, 2, 256), (1281, 3, 64), (1000, 8, 16), (1030, 4, 256), (5, 8, 2), (64, 2, 32),
         (33, 2, 8)]


@pytest.mark.parametrize("n, world, batch", CASES)
def test_rank_batches_equal_steps_and_sizes(n, world, batch):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n + world))
    per_rank = [train.rank_batches(perm, batch, r, world) for r in range(world)]
    steps = {len(b) for b in per_rank}
    assert steps == {len(per_rank[0])}, f"{n} images, world {world}, batch {batch}: steps per rank {steps}"
    for s in range(len(per_rank[0])):
        sizes = [len(b[s]) for b in per_rank]
        assert len(set(sizes)) == 1, f"step {s}: batch sizes per rank {sizes}"
    assert all(len(b[s]) == batch for b in per_rank for s in range(len(b) - 1)), "only the last batch is short"
    # every image at least once; exactly -n % world repeats (the wrap-around), each from the front of perm
    used = torch.cat([torch.cat(b) for b in per_rank])
    per_image = torch.bincount(used, minlength=n)
    assert per_image.min().item() >= 1, f"images never used: {torch.nonzero(per_image == 0).flatten().tolist()}"
    total = -(-n // world) * world
    assert len(used) == total, (len(used), total)
    padded = perm.repeat(-(-total // n))[:total]
    # the ranks' batches of step s together are the padded permutation's s-th chunk of world * batch
    for s in range(len(per_rank[0])):
        together = sorted(torch.cat([b[s] for b in per_rank]).tolist())
        assert together == sorted(padded[s * world * batch:(s + 1) * world * batch].tolist()), f"step {s}"


@pytest.mark.parametrize("n, world, batch", [(1281, 2, 64), (33, 2, 8), (1347, 2, 256)])
def test_cases_are_uneven_under_the_old_split(n, world, batch):
    """The cases above break the old split: unequal step counts or unequal last batches across ranks."""
    old = [naive_rank_batches(n, batch, r, world) for r in range(world)]
    shapes = {tuple(len(b) for b in batches) for batches in old}
    assert len(shapes) > 1, f"{n} images, world {world}, batch {batch}: the old split was already even"


def test_rank_batches_uneven_case_in_numbers():
    perm = torch.arange(1281)
    a, b = (train.rank_batches(perm, 64, r, 2) for r in (0, 1))
    assert len(a) == len(b) == 11 and [len(x) for x in a] == [len(x) for x in b] == [64] * 10 + [1]
    assert b[-1].tolist() == [0]  # the one repeat: the permutation's first image, wrapped around
    old = [naive_rank_batches(1281, 64, r, 2) for r in (0, 1)]
    assert (len(old[0]), len(old[1])) == (11, 10)


@pytest.mark.parametrize("n, batch", [(1347, 64), (1347, 256), (5, 8), (128, 64)])
def test_rank_batches_single_process_unchanged(n, batch):
    """World 1 is the loop single-process training always ran: perm in order, cut every batch_size."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    got = train.rank_batches(perm, batch)
    want = [perm[i:i + batch] for i in range(0, n, batch)]
    assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("args", [dict(rank=2, world=2), dict(rank=-1, world=2), dict(batch_size=0), dict(n=0)])
def test_rank_batches_refuses(args):
    kw = dict(n=10, batch_size=4, rank=0, world=1) | args
    with pytest.raises(ValueError, match="rank_batches"):
        train.rank_batches(torch.arange(kw.pop("n")), **kw)


# ------------------------------------------------------------------------------------------- CIFAR
def write_cifar10(root, train_sizes, test_size, seed=0):
    """CIFAR-10 pickle batches (``data_batch_1..5`` of ``train_sizes`` images, ``test_batch``) under
    ``root``, as tests/test_data.py's ``write_cifar`` writes them but sized here."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, [*train_sizes, test_size]):
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": name.encode()}
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump(d, fh)
    return folder


# 32x32x3 images in 8x8 patches: 16 tokens of 16 channels, one block, two time steps, one epoch per phase.
# 33 training images at batch 8: the old split gave ranks 17 and 16 images, 3 and 2 steps.
TINY = ["--dim=16", "--heads=2", "--blocks=1", "--t_max=2", "--mlp_ratio=2", "--patch_size=8", "--embed_kernel=8",
        "--batch_size=8", "--threads=1", "--merge_threshold=1", *(f"--epochs_{p}=1" for p in train.PHASES)]
TRAIN_SIZES, TEST_SIZE = (6, 6, 7, 7, 7), 16


@pytest.fixture
def cifar(tmp_path):
    return write_cifar10(str(tmp_path / "data"), TRAIN_SIZES, TEST_SIZE)


def check_export(out, data_root):
    """The exported model loads, and the golden model on the test images reproduces the quant-mode test
    accuracy recorded at export (bit-exact integers); returns the training record."""
    model = IntModel.load(os.path.join(out, "model.npz"))
    info = json.loads(open(os.path.join(out, "train_log.json")).read())
    assert model.config.img_size == 32 and model.config.in_channels == 3 and model.config.num_tokens == 16
    assert [r["phase"] for r in info["log"]] == list(train.PHASES)
    _, _, x, y = load_cifar(data_root, 10)
    gold = GoldenModel(model).run(x)
    acc = (gold.pred == y).double().mean().item()
    assert acc == info["accuracy_quant_eval"], (acc, info["accuracy_quant_eval"])
    # and logit for logit: the quant-mode torch model of the last phase's checkpoint gives the same integers
    ck = torch.load(os.path.join(out, "after_quant.pt"), weights_only=False)
    tc = train.TrainConfig(**ck["train_config"])
    net = SpikingViT(tc.model_config(), tc.adaptive("quant"))
    net.start_quant()
    net.load_state_dict(ck["model"])
    with torch.no_grad():
        logits_int = net.eval()(x)[1]["logits_int"]
    assert torch.equal(logits_int.to(torch.int64), gold.logits), (logits_int[:2], gold.logits[:2])
    return info


def test_cifar_train_export_golden(tmp_path, cifar):
    out = tmp_path / "run"
    train.main(["--preset=cifar10", f"--data_root={cifar}", f"--out={out}", *TINY])
    info = check_export(str(out), cifar)
    assert info["train_config"]["preset"] == "cifar10" and "distributed" not in info


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_uneven_shards(tmp_path, cifar):
    """``torchrun --nproc_per_node=2`` on the CPU (gloo) with 33 training images at batch 8: both ranks run 3
    steps an epoch (17 images each, one repeated), the replicas stay identical (checked at every phase's
    end), and the run ends instead of hanging (a time-out fails the test). About 13 s on 2 busy cores; under
    the old split this run hung in the dense phase's third step."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "train.train", "--preset=cifar10",
           f"--data_root={cifar}", f"--out={out}", *TINY]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    t0 = time.time()
    # its own process group: a time-out ends torchrun and both workers, not torchrun alone
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        stdout, stderr = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
        pytest.fail(f"torchrun did not finish in 300 s (a hang in a collective?)\n{stdout[-2000:]}\n{stderr[-3000:]}")
    assert p.returncode == 0, f"rc {p.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    assert '"steps_per_epoch": 3' in stdout, stdout[-2000:]  # rank 0's DDP line
    print(f"torchrun, 2 ranks: {time.time() - t0:.1f} s")
    info = check_export(str(out), cifar)
    n = sum(TRAIN_SIZES)
    assert info["distributed"] == {"world_size": 2, "batch_per_rank": 8, "global_batch": 16, "steps_per_epoch": 3,
                                   "images_per_rank": 17, "repeated_per_epoch": 1,
                                   "sharding": "train.train.rank_batches"}, info["distributed"]
    for phase in train.PHASES:  # what each rank counted, gathered at the phase's end
        assert info["phases"][phase]["steps_by_rank"] == [3, 3], (phase, info["phases"][phase])
    assert len(naive_rank_batches(n, 8, 0, 2)) != len(naive_rank_batches(n, 8, 1, 2))  # uneven before
