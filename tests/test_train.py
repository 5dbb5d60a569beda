"""The training pipeline end to end on a tiny configuration: phases, export, resume, options."""

import json
import os

import pytest
import torch

from dynaspike.artifact import IntModel
from train import train
from train.data import load_digits_split
from train.golden import GoldenModel

TINY = ["--dim=16", "--heads=2", "--blocks=1", "--t_max=2", "--mlp_ratio=2", "--batch_size=256",
        "--threads=1", "--embed_kernel=4"]


def _run(out, epochs, extra=()):
    train.main(["--preset=digits", f"--out={out}", *TINY, *(f"--epochs_{p}={epochs}" for p in train.PHASES),
                *extra])


def test_train_export_and_golden_agree(tmp_path):
    _run(tmp_path, 1)
    model = IntModel.load(tmp_path / "model.npz")
    assert model.config.dim == 16 and model.config.embed_kernel == 4
    info = json.loads((tmp_path / "train_log.json").read_text())
    for key in ("accuracy_dense_baseline", "accuracy_float", "accuracy_quant_eval", "command", "log"):
        assert key in info and key in model.info, key
    # The golden model on the exported integers reproduces the quant-mode evaluation made at export time.
    _, _, x, y = load_digits_split()
    acc = (GoldenModel(model).run(x).pred == y).double().mean().item()
    assert acc == info["accuracy_quant_eval"], (acc, info["accuracy_quant_eval"])


def test_resume_continues_where_it_stopped(tmp_path):
    _run(tmp_path, 1)
    first = json.loads((tmp_path / "train_log.json").read_text())["log"]
    # Same run with one more epoch per phase: resuming from the finished checkpoint trains nothing new
    # in completed phases, so the log only grows.
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["state"]["phase"] == len(train.PHASES) - 1 or ck["state"]["epoch"] >= 1
    assert ck["model_config"]["dim"] == 16 and ck["train_config"]["dim"] == 16
    _run(tmp_path, 1, ["--resume"])
    second = json.loads((tmp_path / "train_log.json").read_text())["log"]
    assert second[:len(first)] == first


def test_resume_refuses_other_architecture(tmp_path):
    _run(tmp_path, 1)
    with pytest.raises(SystemExit, match="model config"):
        train.main(["--preset=digits", f"--out={tmp_path}", "--dim=32", "--heads=2", "--resume"])


@pytest.mark.parametrize("argv, message", [
    (["--preset=nope"], "unknown preset"),
    (["--bogus=1"], "unknown option --bogus"),
    (["positional"], "--key=value"),
    (["--preset=cifar10"], "--data_root"),
])
def test_bad_options(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        train.main(argv + [f"--out={tmp_path}"])


@pytest.mark.slow  # the default suite runs tests/test_train_ddp.py's torchrun test (CIFAR, uneven shards)
def test_torchrun_ddp_two_processes(tmp_path):
    """Multi-process training through torchrun/DistributedDataParallel (gloo on CPU) exports a model."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "train.train",
           "--preset=digits", f"--out={tmp_path}", *TINY, *(f"--epochs_{p}=1" for p in train.PHASES)]
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    IntModel.load(tmp_path / "model.npz")
    log = json.loads((tmp_path / "train_log.json").read_text())["log"]
    assert [r["phase"] for r in log] == list(train.PHASES)


def test_resume_from_a_phase_boundary(tmp_path):
    """Copying an ``after_<phase>.pt`` to checkpoint.pt and resuming re-runs only the later phases; from
    ``after_quant.pt`` it just exports the same integers again."""
    _run(tmp_path, 1)
    first = IntModel.load(tmp_path / "model.npz")
    (tmp_path / "checkpoint.pt").write_bytes((tmp_path / "after_quant.pt").read_bytes())
    _run(tmp_path, 1, ["--resume"])
    again = IntModel.load(tmp_path / "model.npz")
    for k, v in first.tensors.items():
        assert (again.tensors[k] == v).all(), k


def test_activity_cost_is_the_ac_count_and_descending_it_lowers_the_work():
    """``acs_soft`` counts the same ACs as ``acs`` (the golden model's count), and its gradient, through the
    spikes' surrogates, lowers the work it measures: ten SGD steps on it alone cut the tiny model's ACs below
    0.7x."""
    from conftest import TINY_CFG, make_tiny_torch, random_images
    m = make_tiny_torch(2)
    m.train()
    x = random_images(TINY_CFG, 8, seed=1)
    opt = torch.optim.SGD([p for n, p in m.named_parameters() if n != "mask_scores"], lr=0.1)
    first = None
    for _ in range(10):
        _, st = m(x)
        assert torch.equal(st["acs_soft"].detach().double(), st["acs"]), (st["acs_soft"], st["acs"])
        first = st["acs"].sum().item() if first is None else first
        opt.zero_grad()
        (st["acs_soft"].mean() / 1000).backward()
        opt.step()
    assert 0 < first < 8 * train.every_spike_acs(TINY_CFG)
    assert m(x)[1]["acs"].sum().item() < 0.7 * first


def test_every_spike_acs_is_the_count_with_every_neuron_firing():
    """The activity cost's unit equals the model's count on a dense run in which every neuron fires."""
    from conftest import TINY_CFG
    from train.model import AdaptiveConfig, SpikingViT
    m = SpikingViT(TINY_CFG, AdaptiveConfig()).eval()
    with torch.no_grad():
        for mod in m.modules():     # every pre-activation far above its threshold, at every step
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.bias.fill_(1e4)
    _, st = m(torch.full((2, 1, 8, 8), 255, dtype=torch.uint8), dense=True)
    assert st["acs"].tolist() == [train.every_spike_acs(TINY_CFG)] * 2


def test_activity_cost_option_trains(tmp_path):
    _run(tmp_path, 1, ["--lambda_acs=2"])
    info = json.loads((tmp_path / "train_log.json").read_text())
    assert info["train_config"]["lambda_acs"] == 2
