"""Run images through the Verilator-built core under cocotb (sim/tb_core.py) from plain Python.

``run_core`` packs the models and images (``dynaspike.packing``), builds the core for the first model's
configuration at ``lanes`` P (cached per configuration in build/sim/), runs the bench and returns its
record: per image the result and tap packets and the counters (see sim/tb_core.py).
"""

import json

import numpy as np

from dynaspike import ddr, packing
from dynaspike.config import ModelConfig
from sim.runner import build_dir_for, run_cocotb


def make_core(lanes, cfg):
    """The core for ``run_cocotb``: ``cfg`` is a ModelConfig dict (one build per (lanes, cfg))."""
    from hw.core import Core
    return Core(lanes, ModelConfig.from_dict(cfg))


#: Where the simulated DDR keeps the weight buffer of a model in DDR (``run_core(..., weights_at=)``): a beat
#: but not a burst boundary, so bursts split inside tiles; and the size of that RAM
WEIGHTS_AT, RAM_BYTES = 0x4_0040, 1 << 21


def run_core(models, images, lanes: int, name: str, plan=None, testcase="core_runs_images", extra=None,
             core_cfg=None, optimize=True, weights_in_ddr=False, ram_pause=0.0, testbench="tb_core", **opts):
    """Run ``images`` through the simulated core; return the bench's record (see sim/tb_core.py) and the
    ``build_dir`` of the core's Verilator build (its Verilog: ``sim.runner.TOPLEVEL``.v).

    ``models``: one IntModel or a list (``plan`` steps say which one each image needs); the core is
    built for ``core_cfg`` (a ModelConfig; default: the first model's configuration), at ``-O0`` when
    ``optimize`` is False (``sim.runner.OPT_LEVEL``: a quick build for a few short images). With
    ``weights_in_ddr`` the model packets leave the weights out and cocotbext-axi's ``AxiRamRead`` serves their
    buffers (``ddr.pack_weights``) at ``WEIGHTS_AT`` on the core's ``m_axi``, its channels paused with
    probability ``ram_pause``; the record's ``ram_latency`` is the RAM's, from the first address to its
    first beat. ``testbench`` (a module of sim/ that reads the same case file, e.g. ``tb_record``) and its
    ``testcase`` may replace sim/tb_core.py's.
    """
    models = models if isinstance(models, list) else [models]
    cfg = models[0].config
    rtl = {"lanes": lanes, "cfg": (core_cfg or cfg).to_dict()}
    bdir = build_dir_for("core", rtl, optimize)
    bdir.mkdir(parents=True, exist_ok=True)
    packets = [packing.pack_image(img, cfg, tag=k) for k, img in enumerate(images)]
    width = max(len(pk) for pk in packets)
    case = bdir / f"case-{name}.npz"
    if weights_in_ddr:
        extra = {**(extra or {}), **{f"weights{i}": np.frombuffer(ddr.pack_weights(mdl, lanes), np.uint8)
                                     for i, mdl in enumerate(models)}}
        opts = {**opts, "ddr": {"at": WEIGHTS_AT, "ram_bytes": RAM_BYTES, "pause": ram_pause}}
    np.savez(case, **{f"model{i}": packing.pack_model(mdl, lanes, weights_in_ddr) for i, mdl in enumerate(models)},
             images=np.stack([np.pad(pk, (0, width - len(pk))) for pk in packets]),
             image_beats=np.array([len(pk) for pk in packets]), **(extra or {}))
    out = bdir / f"out-{name}.json"
    plan = plan if plan is not None else [{} for _ in images]
    run = run_cocotb("core", make_core, rtl, testbench, {"case": str(case), "out": str(out), "plan": plan, **opts},
                     testcase=testcase, optimize=optimize)
    return {**json.loads(out.read_text()), "build_dir": run["build_dir"]}
