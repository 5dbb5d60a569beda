"""ModelConfig: every bad field is refused with its name and value; JSON round trip is the identity."""

import json
from dataclasses import fields

import pytest

from dynaspike.config import ModelConfig


@pytest.mark.parametrize("field", [f.name for f in fields(ModelConfig)])
@pytest.mark.parametrize("value", [0, -3, 2.0, "8", True, None])
def test_bad_field_names_field_and_value(field, value):
    with pytest.raises(ValueError) as e:
        ModelConfig(**{field: value})
    msg = str(e.value)
    assert f"ModelConfig.{field}" in msg, msg
    assert repr(value) in msg, msg


def test_img_size_not_multiple_of_patch():
    with pytest.raises(ValueError, match=r"img_size=10 is not a multiple of patch_size=4"):
        ModelConfig(img_size=10, patch_size=4)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_embed_kernel_smaller_or_odd_margin(k):
    with pytest.raises(ValueError, match=rf"ModelConfig.embed_kernel={k} must be >= patch_size=2 and differ"):
        ModelConfig(patch_size=2, embed_kernel=k)


def test_dim_not_multiple_of_heads():
    with pytest.raises(ValueError, match=r"dim=30 is not a multiple of heads=4"):
        ModelConfig(dim=30, heads=4)


def test_derived_sizes():
    c = ModelConfig(img_size=32, in_channels=3, patch_size=4, embed_kernel=6, dim=96, heads=3, blocks=4,
                    mlp_ratio=2, t_max=5, num_classes=100)
    assert (c.num_tokens, c.embed_pad, c.patch_dim, c.head_dim, c.hidden_dim, c.num_modules) == \
        (64, 1, 108, 32, 192, 8)
    assert (ModelConfig(patch_size=2, embed_kernel=2).embed_pad, ModelConfig().patch_dim) == (0, 4)
    assert [c.module_name(m) for m in range(c.num_modules)] == \
        ["attn0", "mlp0", "attn1", "mlp1", "attn2", "mlp2", "attn3", "mlp3"]


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(img_size=32, in_channels=3, patch_size=4, embed_kernel=8,
                                                             dim=384, heads=12, blocks=4, t_max=4, num_classes=100)])
def test_json_round_trip(cfg):
    s = cfg.to_json()
    assert json.loads(s) == cfg.to_dict()
    back = ModelConfig.from_json(s)
    assert back == cfg
    assert back.to_json() == s


def test_from_dict_unknown_keys():
    d = ModelConfig().to_dict() | {"depth": 3, "alpha": 1}
    with pytest.raises(ValueError, match=r"unknown keys \['alpha', 'depth'\]"):
        ModelConfig.from_dict(d)


def test_from_dict_missing_keys():
    d = ModelConfig().to_dict()
    del d["heads"], d["t_max"]
    with pytest.raises(ValueError, match=r"missing keys \['heads', 't_max'\]"):
        ModelConfig.from_dict(d)


def test_from_dict_not_an_object():
    with pytest.raises(ValueError, match=r"must be a JSON object, got list"):
        ModelConfig.from_json("[1, 2]")


def test_from_dict_bad_value():
    d = ModelConfig().to_dict() | {"blocks": 0}
    with pytest.raises(ValueError, match=r"ModelConfig.blocks must be a positive integer, got 0"):
        ModelConfig.from_dict(d)
