"""Every pynq name and call sw/transports/board.py makes, checked against the installed pynq (the board
lane: .venv-board holds pynq 3.1.2, the PYNQ-Z2 image line's): ``board.PYNQ_API`` lists them; each must
exist with its kind (class, function, method, property, attribute set by the constructor) and accept the
parameters the transport passes; and board.py must use no pynq name that is not in the list, with no
keyword the real signature lacks. Each checked name is printed (``-rP`` shows them)."""

import ast
import importlib
import importlib.util
import inspect
import os
import textwrap
from pathlib import Path

import pytest

from sw.transports import board

BOARD_PY = Path(board.__file__)
# The objects board.py holds, by the expression that names them, and the pynq class each one is.
RECEIVERS = {"self.pynq": "", "pynq": "", "self.overlay": "Overlay", "self.mmio": "MMIO", "self.dma": "lib.dma.DMA",
             "self.dma.mmio": "MMIO", "self.dma.sendchannel": "lib.dma._SDMAChannel",
             "self.dma.recvchannel": "lib.dma._SDMAChannel", "channel": "lib.dma._SDMAChannel",
             "buf": "buffer.PynqBuffer", "self._send_buf": "buffer.PynqBuffer"}


@pytest.fixture(scope="module")
def pynq():
    if importlib.util.find_spec("pynq") is None:
        msg = "pynq is not installed: the board lane (`make test-board`, .venv-board) runs this"
        if os.environ.get("DYNASPIKE_BOARD_LANE"):
            pytest.fail(msg)
        pytest.skip(msg)
    import pynq
    importlib.import_module("pynq.lib.dma")
    return pynq


def resolve(pynq, path: str):
    """``(owner or None, name, object)`` for a dotted path under the pynq package."""
    obj, owner = pynq, None
    parts = path.split(".")
    for i, p in enumerate(parts):
        if inspect.ismodule(obj) and not hasattr(obj, p):
            obj = importlib.import_module(f"{obj.__name__}.{p}")
            continue
        owner = obj
        assert hasattr(obj, p) or (inspect.isclass(obj) and i == len(parts) - 1), f"pynq.{path}: no {p!r} in {obj}"
        obj = getattr(obj, p, None)
    return owner, parts[-1], obj


def constructor_sets(cls, name: str) -> bool:
    """Whether ``cls.__init__`` (or a base's) assigns ``self.<name>``."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr == name \
                    and isinstance(node.value, ast.Name) and node.value.id == "self":
                return True
    return False


@pytest.mark.parametrize("path,kind,params", board.PYNQ_API, ids=[p for p, _, _ in board.PYNQ_API])
def test_pynq_has_it(pynq, path, kind, params):
    owner, name, obj = resolve(pynq, path)
    where = f"pynq {pynq.__version__}: pynq.{path}"
    if kind == "class":
        assert inspect.isclass(obj), f"{where} is {type(obj).__name__}, expected a class"
        sig = inspect.signature(obj.__init__)
    elif kind == "function":
        assert inspect.isfunction(obj), f"{where} is {type(obj).__name__}, expected a function"
        sig = inspect.signature(obj)
    elif kind == "method":
        assert inspect.isfunction(inspect.getattr_static(owner, name)), f"{where} is not a method"
        sig = inspect.signature(obj)
    elif kind == "property":
        assert isinstance(inspect.getattr_static(owner, name), property), f"{where} is not a property"
        sig = None
    else:
        assert constructor_sets(owner, name), f"{where}: no constructor of {owner.__name__} sets self.{name}"
        sig = None
    if sig is not None:
        missing = [p for p in params if p not in sig.parameters]
        assert not missing, f"{where}{sig}: no parameter {missing}"
    print(f"checked pynq.{path} ({kind}){sig if sig is not None else ''}")


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def uses_in_board_py() -> list:
    """``(pynq path, call node or None)`` for every attribute board.py takes from a pynq object."""
    tree = ast.parse(BOARD_PY.read_text())
    out = []
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = _dotted(node.value)
        if base in RECEIVERS and f"{base}.{node.attr}" not in RECEIVERS:
            cls = RECEIVERS[base]
            out.append((f"{cls}.{node.attr}" if cls else node.attr, calls.get(id(node))))
    getattr_calls = [n for n in calls.values() if isinstance(n.func, ast.Name) and n.func.id == "getattr"
                     and _dotted(n.args[0]) == "self.overlay"]
    out += [("Overlay.__getattr__", None) for _ in getattr_calls]
    return out


def test_board_py_uses_only_listed_names_with_their_parameters(pynq):
    listed = {p: (k, params) for p, k, params in board.PYNQ_API}
    used = uses_in_board_py()
    assert used, "found no pynq use in board.py: the scan is broken"
    for path, call in used:
        key = {"MMIO.write": "MMIO.write_mm"}.get(path, path)
        assert key in listed, f"board.py uses pynq.{path}, which board.PYNQ_API does not list"
        if call is None or listed[key][0] in ("attribute", "property"):
            continue
        _, _, obj = resolve(pynq, key)
        sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
        args = [None] * (len(call.args) + (1 if listed[key][0] in ("method", "class") else 0))
        try:
            sig.bind(*args, **{kw.arg: None for kw in call.keywords})
        except TypeError as e:
            raise AssertionError(f"board.py line {call.lineno}: pynq.{key}{sig} cannot take this call: {e}")
    print("board.py uses: " + ", ".join(sorted({p for p, _ in used})))


def test_the_dma_driver_binds_to_the_ip_build_tcl_asks_for(pynq):
    from pynq.lib.dma import DMA
    tcl = (BOARD_PY.parents[2] / "bitstreams" / "build.tcl").read_text()
    assert "set dma_vlnv xilinx.com:ip:axi_dma:7.1" in tcl
    assert "xilinx.com:ip:axi_dma:7.1" in DMA.bindto, DMA.bindto
    src = inspect.getsource(DMA)
    for param in ("c_include_sg", "c_sg_length_width", "c_m_axi_mm2s_data_width", "c_include_mm2s"):
        assert f'"{param}"' in src, f"pynq's DMA no longer reads {param}"
