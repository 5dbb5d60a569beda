"""The artifact: a valid model survives save/load unchanged; every bad file or model is refused with an
ArtifactError that names what is wrong."""

import io
import json
import re
from dataclasses import asdict, replace

import numpy as np
import pytest

import dynaspike.artifact as artifact
from dynaspike.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, ArtifactError, IntModel, tensor_specs
from dynaspike.formats import FORMATS

from conftest import TINY_CFG, random_intmodel


def meta_of(m: IntModel) -> dict:
    return {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "config": m.config.to_dict(),
            "formats": asdict(m.formats), "params": asdict(m.params), "info": m.info}


def raw_bytes(meta, tensors) -> bytes:
    """An .npz written without validation (what a broken exporter or a foreign file would give)."""
    buf = io.BytesIO()
    arrays = dict(tensors)
    if meta is not None:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


@pytest.fixture
def good():
    return random_intmodel(TINY_CFG, seed=3)


def load_error(meta, tensors) -> str:
    with pytest.raises(ArtifactError) as e:
        IntModel.from_bytes(raw_bytes(meta, tensors))
    return str(e.value)


# ------------------------------------------------------------------------------------------ round trip
def test_round_trip_equal(good, tmp_path):
    good.info = {"command": "python -m train.train", "accuracy_quant_eval": 0.9377, "nested": {"a": [1, 2]}}
    path = tmp_path / "m.npz"
    good.save(path)
    back = IntModel.load(path)
    assert back.config == good.config
    assert back.params == good.params
    assert back.formats == good.formats
    assert back.info == good.info
    assert sorted(back.tensors) == sorted(good.tensors)
    for name, a in good.tensors.items():
        b = back.tensors[name]
        assert b.dtype == a.dtype and b.shape == a.shape, f"{name}: {b.dtype}{b.shape} != {a.dtype}{a.shape}"
        assert np.array_equal(a, b), f"{name} differs at {np.argwhere(a != b)[:3].tolist()}"


def test_round_trip_exported_torch_model(tiny, tmp_path):
    _, art = tiny
    art.save(tmp_path / "t.npz")
    back = IntModel.load(tmp_path / "t.npz")
    assert back.params == art.params and back.config == art.config and back.info == art.info
    for name, a in art.tensors.items():
        assert back[name].dtype == a.dtype and np.array_equal(back[name], a), name


def test_raw_writer_accepts_good_model(good):
    # the helper used by the negative tests below writes loadable files when nothing is wrong
    back = IntModel.from_bytes(raw_bytes(meta_of(good), good.tensors))
    assert back.params == good.params


# --------------------------------------------------------------------------------------- bad tensors
def test_missing_tensor(good):
    t = dict(good.tensors)
    del t["b1.fc1_th"]
    assert "missing tensors ['b1.fc1_th']" in load_error(meta_of(good), t)


def test_extra_tensor(good):
    t = dict(good.tensors, junk=np.zeros(3, np.int32))
    assert "unexpected tensors ['junk']" in load_error(meta_of(good), t)


def test_wrong_shape(good):
    t = dict(good.tensors, **{"b0.q_w": good["b0.q_w"][:, :-1].copy()})
    msg = load_error(meta_of(good), t)
    assert "tensor b0.q_w has shape (16, 15), expected (16, 16)" in msg, msg


def test_wrong_dtype(good):
    t = dict(good.tensors, emb_w=good["emb_w"].astype(np.int32))
    msg = load_error(meta_of(good), t)
    assert "tensor emb_w has dtype int32, expected int16" in msg, msg


def test_not_an_array(good):
    t = dict(good.tensors)
    t["head_b"] = good["head_b"].tolist()
    with pytest.raises(ArtifactError, match=r"tensor head_b is a list, expected a numpy array"):
        IntModel(good.config, good.params, t).validate()


def index_in(msg: str):
    """The integers of the index printed in 'tensor NAME[(i, j)] = v' (any int repr)."""
    m = re.search(r"\[\((.*?)\)\]", msg)
    assert m, f"no index in {msg!r}"
    return [int(x) for x in re.findall(r"-?\d+", re.sub(r"np\.int\d+", "", m.group(1)))]


@pytest.mark.parametrize("name, index, value, lo, hi", [
    ("b0.k_w", (3, 5), -128, -127, 127),             # int8 -128 is outside the symmetric range
    ("mask", (2, 1), 2, 0, 1),
    ("b1.v_th", (7,), 0, 1, FORMATS.acc_max),        # thresholds must be > 0
    ("b0.fc1_th", (0,), FORMATS.acc_max + 1, 1, FORMATS.acc_max),
    ("emb_w", (1, 2), -32768, -32767, 32767),
    ("head_w", (4, 0), -32768, -32767, 32767),
    ("emb_b", (0, 0), -(1 << 31), -(1 << 31) + 1, (1 << 31) - 1),
])
def test_value_out_of_range(good, name, index, value, lo, hi):
    t = {k: v.copy() for k, v in good.tensors.items()}
    t[name][index] = value
    msg = load_error(meta_of(good), t)
    assert f"tensor {name}[" in msg and f"= {value} is outside [{lo}, {hi}]" in msg, msg
    assert index_in(msg) == list(index), msg


def test_accumulator_overflow(good):
    t = {k: v.copy() for k, v in good.tensors.items()}
    w = t["b1.fc2_w"].astype(np.int64)
    c = 5
    worst = int(np.abs(w[c]).sum())
    t["b1.fc2_b"][c] = FORMATS.acc_max - worst + 1  # one beyond the accumulator
    msg = load_error(meta_of(good), t)
    assert f"layer b1.fc2 channel {c} can reach {FORMATS.acc_max + 1}" in msg, msg
    assert f"{FORMATS.acc_bits}-bit accumulator" in msg, msg
    t["b1.fc2_b"][c] = FORMATS.acc_max - worst     # exactly at the limit: accepted
    IntModel.from_bytes(raw_bytes(meta_of(good), t))


def test_accumulator_overflow_negative_bias(good):
    t = {k: v.copy() for k, v in good.tensors.items()}
    worst = int(np.abs(t["b0.q_w"][0].astype(np.int64)).sum())
    t["b0.q_b"][0] = -(FORMATS.acc_max - worst + 1)
    assert "layer b0.q channel 0 can reach" in load_error(meta_of(good), t)


def test_embedding_accumulator_overflow(good):
    t = {k: v.copy() for k, v in good.tensors.items()}
    t["emb_w"][:] = 32767
    t["emb_b"][:] = (1 << 31) - 1
    assert "embedding accumulator can reach" in load_error(meta_of(good), t)


# ------------------------------------------------------------------------------------------ bad meta
def test_no_meta(good):
    msg = load_error(None, good.tensors)
    assert "no 'meta' entry" in msg, msg


def test_meta_not_json(good):
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(b"\xff{not json", dtype=np.uint8), **good.tensors)
    with pytest.raises(ArtifactError, match=r"'meta' is not valid JSON"):
        IntModel.from_bytes(buf.getvalue())


@pytest.mark.parametrize("key", ["config", "formats", "params"])
def test_meta_missing_key(good, key):
    meta = meta_of(good)
    del meta[key]
    assert f"meta is missing the object {key!r}" in load_error(meta, good.tensors)


def test_meta_missing_info_is_empty(good):
    meta = meta_of(good)
    del meta["info"]
    assert IntModel.from_bytes(raw_bytes(meta, good.tensors)).info == {}


def test_meta_not_an_object(good):
    msg = load_error([1, 2], good.tensors)
    assert "format is [1, 2], expected 'dynaspike-model'" in msg, msg


def test_wrong_format_name(good):
    meta = meta_of(good) | {"format": "onnx"}
    msg = load_error(meta, good.tensors)
    assert "format is 'onnx', expected 'dynaspike-model'" in msg, msg


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version(good, version):
    meta = meta_of(good) | {"version": version}
    msg = load_error(meta, good.tensors)
    assert f"format version {version!r} is not supported" in msg, msg


def test_unknown_config_key(good):
    meta = meta_of(good)
    meta["config"]["depth"] = 3
    msg = load_error(meta, good.tensors)
    assert "unknown keys ['depth']" in msg, msg


def test_bad_config_value(good):
    meta = meta_of(good)
    meta["config"]["heads"] = 3  # 16 channels do not split into 3 heads
    msg = load_error(meta, good.tensors)
    assert "dim=16 is not a multiple of heads=3" in msg, msg


def test_config_disagrees_with_tensors(good):
    meta = meta_of(good)
    meta["config"]["t_max"] = 4  # the mask table is (4, 3)
    msg = load_error(meta, good.tensors)
    assert "tensor mask has shape (4, 3), expected (4, 4)" in msg, msg


def test_formats_differ(good):
    meta = meta_of(good)
    meta["formats"]["acc_bits"] = 32
    msg = load_error(meta, good.tensors)
    assert "number formats" in msg and "'acc_bits': 32" in msg and "'acc_bits': 24" in msg, msg


def test_formats_unknown_key(good):
    meta = meta_of(good)
    meta["formats"]["simd"] = 4
    msg = load_error(meta, good.tensors)
    assert "formats keys" in msg and "'simd'" in msg, msg


@pytest.mark.parametrize("value", [1.5, 64.0, "64", True, None])
def test_non_integer_param(good, value):
    meta = meta_of(good)
    meta["params"]["res_threshold"] = value
    msg = load_error(meta, good.tensors)
    assert f"params.res_threshold must be an integer, got {value!r}" in msg, msg


def test_missing_param(good):
    meta = meta_of(good)
    del meta["params"]["halt_shift"]
    msg = load_error(meta, good.tensors)
    assert "params keys" in msg and "'halt_shift'" in msg, msg


@pytest.mark.parametrize("param, value, text", [
    ("halt_channel", 16, "params.halt_channel=16 must be in [0, 15]"),
    ("halt_channel", -1, "params.halt_channel=-1 must be in [0, 15]"),
    ("merge_threshold", -2, "params.merge_threshold=-2 must be in [-1, 16]"),
    ("merge_threshold", 17, "params.merge_threshold=17 must be in [-1, 16]"),
    ("res_threshold", 0, "params.res_threshold=0 must be in [1, 32767]"),
    ("res_threshold", 32768, "params.res_threshold=32768 must be in [1, 32767]"),
    ("attn_threshold", 0, "params.attn_threshold=0 must be > 0"),
    ("halt_shift", 16, "params.halt_shift=16 must be in [0, 15]"),
    ("halt_lut_min", 40000, "params.halt_lut_min=40000 out of range"),
    ("halt_threshold", 0, "params.halt_threshold=0 must be in [1, 65535]"),
    ("halt_threshold", 65536, "params.halt_threshold=65536 must be in [1, 65535]"),
])
def test_bad_params(good, param, value, text):
    meta = meta_of(good)
    meta["params"][param] = value
    msg = load_error(meta, good.tensors)
    assert text in msg, msg
    with pytest.raises(ArtifactError, match=re.escape(text)):  # the in-memory model is refused the same way
        IntModel(good.config, replace(good.params, **{param: value}), good.tensors).validate()


def test_merge_threshold_limits_accepted(good):
    for v in (-1, 0, TINY_CFG.dim):
        IntModel(good.config, replace(good.params, merge_threshold=v), good.tensors).validate()


def test_halt_accumulator_too_narrow(good):
    cfg = replace(TINY_CFG, t_max=200, blocks=2)  # 400 halting scores of up to 255 overflow 16 bits
    with pytest.raises(ArtifactError, match=r"halt accumulator too narrow for t_max\*blocks=400"):
        good.params.check(cfg, FORMATS)
    good.params.check(replace(TINY_CFG, t_max=128, blocks=2), FORMATS)  # 256 * 255 < 2**16: fits


def test_save_refuses_invalid_model(good, tmp_path):
    t = dict(good.tensors)
    del t["mask"]
    bad = IntModel(good.config, good.params, t)
    with pytest.raises(ArtifactError, match=r"missing tensors \['mask'\]"):
        bad.save(tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


# ------------------------------------------------------------------------------------------ bad files
def test_not_a_zip(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ArtifactError, match=r"is not a dynaspike-model file"):
        IntModel.load(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"is not a dynaspike-model file"):
        IntModel.load(p)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_file(good, tmp_path, keep):
    good.save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArtifactError, match=r"is not a dynaspike-model file"):
        IntModel.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match=r"cannot read model file .*nope\.npz"):
        IntModel.load(tmp_path / "nope.npz")


def test_oversized_file(good, tmp_path, monkeypatch):
    good.save(tmp_path / "m.npz")
    size = (tmp_path / "m.npz").stat().st_size
    monkeypatch.setattr(artifact, "MAX_ARTIFACT_BYTES", size - 1)
    with pytest.raises(ArtifactError, match=rf"is {size} bytes, above the {size - 1} limit"):
        IntModel.load(tmp_path / "m.npz")
    with pytest.raises(ArtifactError, match=rf"is {size} bytes, above the {size - 1} limit"):
        IntModel.from_bytes((tmp_path / "m.npz").read_bytes())
    monkeypatch.setattr(artifact, "MAX_ARTIFACT_BYTES", size)  # at the limit: accepted
    IntModel.load(tmp_path / "m.npz")


def test_pickled_object_refused(good):
    # allow_pickle=False: an object array in the archive is refused, not unpickled
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta_of(good)).encode(), dtype=np.uint8),
             evil=np.array([{"a": 1}], dtype=object), **good.tensors)
    with pytest.raises(ArtifactError):
        IntModel.from_bytes(buf.getvalue())


def test_specs_cover_every_tensor_of_an_export(tiny):
    _, art = tiny
    specs = tensor_specs(art.config)
    assert sorted(specs) == sorted(art.tensors)
    for name, (shape, dtype, lo, hi) in specs.items():
        assert art[name].shape == shape and art[name].dtype == np.dtype(dtype), name


def test_corrupted_bytes_refused_or_harmless(good, tmp_path):
    """Every single-byte corruption either loads the very same model (a byte zip does not check) or is
    refused with an ArtifactError; nothing else escapes."""
    good.save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    escaped = []
    for pos in range(0, len(data), 97):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        try:
            back = IntModel.from_bytes(bytes(bad))
        except ArtifactError:
            continue
        except Exception as e:  # noqa: BLE001 (what escapes is what this test reports)
            escaped.append((pos, f"{type(e).__module__}.{type(e).__name__}: {e}"))
            continue
        for name, a in good.tensors.items():
            assert np.array_equal(back[name], a), f"byte {pos} flipped: tensor {name} silently changed"
    assert not escaped, f"{len(escaped)} corruptions escaped as non-ArtifactError, first: {escaped[:2]}"


def test_logit_overflow(good):
    """The pooled counts reach at most N * T per channel: |head_b| + sum|head_w| * N * T must fit 32 bits."""
    t = {k: v.copy() for k, v in good.tensors.items()}
    c = 7
    reach = int(np.abs(t["head_w"][c].astype(np.int64)).sum()) * TINY_CFG.num_tokens * TINY_CFG.t_max
    t["head_b"][c] = (1 << 31) - 1 - reach + 1
    msg = load_error(meta_of(good), t)
    assert f"classifier logit {c} can reach {1 << 31}, beyond 32 bits" in msg, msg
    t["head_b"][c] -= 1                                  # exactly at the limit: accepted
    IntModel.from_bytes(raw_bytes(meta_of(good), t))
