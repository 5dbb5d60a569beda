"""dynaspike/regmap.py: a consistent, dependency-free register map."""

import subprocess
import sys

import pytest

from dynaspike import regmap
from dynaspike.config import ModelConfig


def test_offsets_are_unique_words_in_the_window():
    offsets = []
    for r in regmap.REGISTERS:
        offsets += range(r.offset, r.offset + r.bits // 8, 4)
    assert len(offsets) == len(set(offsets))
    assert all(o % 4 == 0 and o < (1 << regmap.ADDR_BITS) for o in offsets)


def test_fixed_offsets_the_driver_relies_on():
    assert regmap.REG["ID"].offset == 0 and regmap.REG["CTRL"].offset == 0x8
    assert regmap.REG["STATUS"].offset == 0x10 and regmap.REG["CYCLES"].bits == 64


def test_fields_pack_and_unpack():
    ctrl = regmap.REG["CTRL"]
    word = ctrl.field("START").put(1) | ctrl.field("SOFT_RESET").put(1)
    assert word == 0b11 and ctrl.field("SOFT_RESET").get(word) == 1
    with pytest.raises(ValueError, match="does not fit"):
        ctrl.field("START").put(2)
    with pytest.raises(KeyError, match="NOPE"):
        ctrl.field("NOPE")


def test_model_readback_covers_every_config_field():
    names = [r.name for r in regmap.REGISTERS if r.name.startswith("MODEL_")]
    assert names == [f"MODEL_{k.upper()}" for k in ModelConfig().to_dict()]


def test_error_names():
    assert regmap.ErrorCode.name(regmap.ErrorCode.BAD_CHECKSUM) == "BAD_CHECKSUM"
    assert regmap.ErrorCode.name(99) == "UNKNOWN(99)"
    codes = [v for k, v in vars(regmap.ErrorCode).items() if k.isupper()]
    assert len(codes) == len(set(codes))


def test_importable_without_numpy_torch_or_amaranth():
    # A None entry in sys.modules makes that import fail, as on a board without the package.
    code = ("import sys; sys.modules.update(numpy=None, torch=None, amaranth=None); "
            "import dynaspike.regmap as r; print(r.REG['ID'].offset)")
    root = regmap.__file__.rsplit("/dynaspike/", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
