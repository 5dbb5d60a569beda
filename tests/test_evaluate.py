"""The evaluation report: keys, consistency with the golden model, plots, CLI errors."""

import json

import pytest
import torch

from train import evaluate
from train.golden import GoldenModel

from conftest import random_images

KEYS = ("accuracy_float", "accuracy_int", "accuracy_dense_baseline", "timesteps_avg", "timesteps_max",
        "token_fraction", "acs", "macs", "energy_uj_45nm", "energy_uj_45nm_dense")


def test_report_matches_golden(tiny):
    _, model = tiny
    x = random_images(model.config, 24, seed=5)
    y = torch.arange(24) % 10
    r = evaluate.report(model, x, y, batch=7)  # batches that do not divide the set
    for k in KEYS:
        assert k in r, k
    res, dense = GoldenModel(model).run(x), GoldenModel(model).run(x, dense=True)
    assert r["accuracy_int"] == (res.pred == y).double().mean().item()
    mask = model["mask"]
    assert r["timesteps_avg"] == mask.sum(1).mean()
    assert r["timesteps_max"] == model.config.t_max
    cfg = model.config
    assert r["token_fraction"] == res.units.sum().item() / (24 * cfg.num_tokens * cfg.blocks * cfg.t_max)
    assert r["acs"] == pytest.approx(res.acs_total.double().mean().item(), rel=1e-12)
    assert r["energy_uj_45nm"] == pytest.approx(res.energy_uj.mean().item(), rel=1e-12)
    assert r["energy_uj_45nm_dense"] == pytest.approx(dense.energy_uj.mean().item(), rel=1e-12)
    assert r["acs"] < r["acs_dense"]  # the tiny model masks steps and halts tokens


def test_cli_writes_json_and_plots(tiny, tmp_path, monkeypatch, capsys):
    _, model = tiny
    path = tmp_path / "m.npz"
    model.save(path)
    x = random_images(model.config, 12, seed=1)
    monkeypatch.setattr(evaluate, "test_split", lambda m, root="": (x, torch.arange(12) % 10))
    evaluate.main(["--model", str(path), "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path / "p")])
    r = json.loads((tmp_path / "r.json").read_text())
    for k in KEYS:
        assert k in r, k
    for png in ("mask_table.png", "token_halting.png"):
        assert (tmp_path / "p" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "energy (45 nm" in capsys.readouterr().out


def test_cli_bad_model_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SystemExit, match="not a dynaspike-model file"):
        evaluate.main(["--model", str(bad)])
