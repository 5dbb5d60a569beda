"""dynaspike/packing.py: the inverse of the memory images rebuilds the exact model from its packet."""

import numpy as np
import pytest

from dynaspike import packing
from dynaspike.config import ModelConfig
from model_factory import random_model

ODD = ModelConfig(img_size=6, in_channels=3, patch_size=3, embed_kernel=5, dim=24, heads=3, blocks=1,
                  mlp_ratio=3, t_max=2, num_classes=5)


@pytest.mark.parametrize("cfg,lanes", [(ModelConfig(), 64), (ModelConfig(), 8), (ODD, 16), (ODD, 64)])
def test_model_from_packet_is_the_model(cfg, lanes):
    model = random_model(cfg, 5)
    back, lanes2 = packing.model_from_packet(packing.pack_model(model, lanes))
    assert (back.config, back.params, lanes2) == (model.config, model.params, lanes)
    assert set(back.tensors) == set(model.tensors)
    for name, a in model.tensors.items():
        assert back[name].dtype == a.dtype, name
        np.testing.assert_array_equal(back[name], a, err_msg=name)


def test_layer_tensors_inverts_memory_images():
    model = random_model(ODD, 6)
    got = packing.layer_tensors(ODD, 16, packing.memory_images(model, 16))
    for name, a in got.items():
        np.testing.assert_array_equal(a, model[name], err_msg=name)


def test_layer_tensors_refuses_wrong_memory_shape():
    mem = packing.memory_images(random_model(ODD, 7), 16)
    mem["biases"] = mem["biases"][:-1]
    with pytest.raises(packing.PackingError, match="memory image biases has shape"):
        packing.layer_tensors(ODD, 16, mem)


def test_pack_images_rows_are_the_packet_format():
    """Each row of the batched packer is the packet ``_packet(IMAGE, tag, windows as zero-padded beats)``."""
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, size=(4, 3, 6, 6), dtype=np.uint8)
    tags = [0, 7, 0xFFFFFFFF, 12345]
    rows = packing.pack_images(imgs, ODD, tags)
    bpt = packing.beats_per_token(ODD)
    for img, tag, row in zip(imgs, tags, rows):
        win = packing.image_to_patches(img, ODD)
        padded = np.zeros((ODD.num_tokens, bpt * packing.BEAT_BYTES), np.int64)
        padded[:, :ODD.patch_dim] = win
        want = packing._packet(packing.Kind.IMAGE, tag, packing.to_beats(padded, 8))
        np.testing.assert_array_equal(row, want)
        np.testing.assert_array_equal(packing.pack_image(img, ODD, tag), want)


def test_pack_images_refuses_bad_batches():
    with pytest.raises(ValueError, match=r"images shape \(2, 3, 6, 5\)"):
        packing.pack_images(np.zeros((2, 3, 6, 5), np.uint8), ODD, [0, 1])
    with pytest.raises(ValueError, match="dtype int64"):
        packing.pack_images(np.zeros((2, 3, 6, 6), np.int64), ODD, [0, 1])
    with pytest.raises(ValueError, match="tags must fit 32 bits"):
        packing.pack_images(np.zeros((1, 3, 6, 6), np.uint8), ODD, [1 << 32])


@pytest.mark.parametrize("cfg,lanes", [(ModelConfig(), 64), (ODD, 16)])
def test_section_beats_are_the_packed_section_lengths(cfg, lanes):
    beats = packing.pack_model(random_model(cfg, 8), lanes)[2:-1]
    got, pos = {}, 0
    for _, name, _ in packing.SECTIONS:
        got[name] = int(beats[pos]) >> 32
        pos += 1 + got[name]
    assert got == packing.section_beats(cfg, lanes)
