# amaranth: UnusedElaboratable=no
"""Generate the Verilog of the hw/ components and the config JSON that travels with it.

``python -m hw.build --out build/verilog [--lanes 32]`` writes ``<component>.v`` per component (top module
``<component>``) and ``config.json``: the capacity (``dynaspike.regmap.Capacity``), the number formats and
their fingerprint, the register-map and stream versions, and each component's constructor parameters.
The capacity is the smallest that holds the configuration of ``--model``; by default the shipped core's
(``core_config``: the capacity that holds every shipped model, digits and Fashion-MNIST) at P lanes.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from dynaspike import packing, regmap
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS


from dynaspike.cycles import DEFAULT_LANES, HEAD_MULTS, emb_lanes, engine_rows


def membrane_rows(cfg: ModelConfig, lanes: int) -> int:
    """Rows of P membranes for every LIF state of docs/integer_model.md: per token and block ``ain, q, k,
    v, attn, min`` (D each) and ``hid`` (Hd), plus the readout ``out`` (D) per token (``Geometry.R``)."""
    from hw.loader import Geometry
    g = Geometry.for_core(cfg, lanes)
    return g.N * g.R


def components(lanes: int, cfg: ModelConfig = ModelConfig()) -> dict:
    """``{name: (class, params)}`` of every component, sized for ``cfg`` at ``lanes`` P."""
    from hw.accumulate import AccumulateEngine
    from hw.attention import AttentionKV
    from hw.axi_reader import AxiReader
    from hw.axi_writer import AxiWriter
    from hw.embed import Embedding
    from hw.events import EventGenerator
    from hw.loader import Geometry
    from hw.halt import HaltUnit
    from hw.head import Head
    from hw.lif import LIFUpdate
    from hw.lif_layer import LIFLayer
    from hw.merge import TokenMerge
    from hw.read_arbiter import SharedReader
    from hw.state_mover import StateMover
    from hw.stream_in import StreamParser
    from hw.tile_loader import TileLoader
    from hw.tile_pass import TilePass

    cap = packing.capacity_for(cfg, lanes)
    return {
        # the whole core (top module `dynaspike_core` in build/verilog); the rest are its parts
        "dynaspike_core": (_core, {"lanes": lanes, "model_config": cfg.to_dict()}),
        "lif": (LIFUpdate, {"lanes": lanes}),
        "lif_layer": (LIFLayer, {"lanes": lanes, "rows": membrane_rows(cfg, lanes)}),
        "accumulate": (AccumulateEngine, {"lanes": lanes, "weight_rows": cap.weight_rows,
                                          "bias_rows": cap.bias_rows}),
        "attention": (AttentionKV, {"max_tokens": cap.max_tokens, "dim": cap.max_dim, "heads": cfg.heads}),
        "halt": (HaltUnit, {"max_tokens": cap.max_tokens}),
        "events": (EventGenerator, {"width": Geometry.for_core(cfg, lanes).W, "word": lanes}),
        "merge": (TokenMerge, {"max_tokens": cap.max_tokens, "dim": cap.max_dim}),
        "axil": (_register_block, {"lanes": lanes, "model_config": cfg.to_dict()}),
        "stream_in": (StreamParser, {"lanes": lanes}),
        # Multipliers (DSPs): dynaspike.cycles.EMB_LANES and HEAD_MULTS; readout weight w = size <= N.
        "head": (Head, {"lanes": lanes, "dim": cap.max_dim, "classes": cap.max_classes, "mults": HEAD_MULTS,
                        "max_weight": cap.max_tokens}),
        "embed": (Embedding, {"lanes": emb_lanes(lanes), "max_dim": cap.max_dim, "max_patch_dim": cap.max_patch_dim,
                              "max_tokens": cap.max_tokens}),
        # the DDR side (issue 11): the AXI masters (the core has the reader, inside the shared read port; the writer
        # is for the membranes, not in the core yet), the read port shared by the tile loader and the membrane rows,
        # the tile loader, the tile pass, and (not in the core yet) the membranes' staging LIF layer, as the core
        # would build it, and its state mover
        "axi_reader": (AxiReader, {}),
        "axi_writer": (AxiWriter, {}),
        "shared_reader": (SharedReader, {}),
        "tile_loader": (TileLoader, {"lanes": lanes, "max_fan_in": cap.max_hidden, "weight_rows": cap.weight_rows,
                                     "bias_rows": cap.bias_rows, "th_rows": cap.threshold_rows + 1}),
        "tile_pass": (TilePass, {"lanes": lanes, "max_fan_in": cap.max_hidden, "weight_rows": cap.weight_rows,
                                 "bias_rows": cap.bias_rows, "th_rows": cap.threshold_rows + 1,
                                 "max_tiles": max(3 * engine_rows(-(-cap.max_dim // lanes)),
                                                  engine_rows(-(-cap.max_hidden // lanes)))}),
        "lif_layer_staging": (LIFLayer, {"lanes": lanes, "rows": membrane_rows(cfg, lanes), "transparent": False,
                                         "membranes_out": False, "staging": True}),
        "state_mover": (StateMover, {"lanes": lanes, "rows": membrane_rows(cfg, lanes),
                                     "max_rows": 2 * cap.max_tokens}),
    }


def _core(lanes: int, model_config: dict):
    from hw.core import Core

    return Core(lanes, ModelConfig.from_dict(model_config))


def _register_block(lanes: int, model_config: dict):
    from hw.axil import RegisterBlock

    return RegisterBlock(packing.capacity_for(ModelConfig.from_dict(model_config), lanes))


def build(out: Path, lanes: int, cfg: ModelConfig = ModelConfig(), only=None) -> dict:
    from sim.runner import write_verilog

    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (cls, params) in components(lanes, cfg).items():
        if only and name not in only:
            continue
        write_verilog(cls(**params), out, name=name)
        made[name] = params
    config = {
        "capacity": asdict(packing.capacity_for(cfg, lanes)),
        "model_config": cfg.to_dict(),
        "formats": asdict(FORMATS),
        "formats_id": regmap.formats_id(),
        "regmap_version": regmap.REGMAP_VERSION,
        "stream_version": packing.STREAM_VERSION,
        "components": made,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return config


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "train" / "shipped"
SHIPPED_MODEL = SHIPPED_DIR / "digits.npz"                     # the default model (make demo)
SHIPPED_MODELS = (SHIPPED_MODEL, SHIPPED_DIR / "fmnist.npz")    # every model the shipped core must hold


def model_config(path=SHIPPED_MODEL) -> ModelConfig:
    """The configuration of a model file (validated)."""
    from dynaspike.artifact import IntModel

    return IntModel.load(path).config


def _capacity_error(cfg: ModelConfig, core: ModelConfig, lanes: int):
    """Why a model of ``cfg`` does not fit the core sized for ``core`` (``packing.check_capacity``), or None."""
    try:
        packing.check_capacity(cfg, packing.capacity_for(core, lanes))
    except packing.CapacityError as e:
        return str(e)
    return None


def core_config(paths=SHIPPED_MODELS, lanes: int = DEFAULT_LANES) -> ModelConfig:
    """The configuration the shipped core is sized for (``make verilog``, ``synth-estimate``, ``bitstream``,
    the simulated board): of the models ``paths``, the configuration whose capacity at ``lanes`` holds every
    one of them, so one core build (one bitstream) loads them all. The capacity is a property of the
    configuration (``packing.capacity_for``); a ValueError names the limits if no configuration holds all."""
    cfgs = [model_config(p) for p in paths]
    why = []
    for c in cfgs:
        errors = [e for e in (_capacity_error(other, c, lanes) for other in cfgs) if e]
        if not errors:
            return c
        why += errors[:1]
    raise ValueError(f"no one of the models {[str(p) for p in paths]} has a capacity that holds the others "
                     f"at P = {lanes}: {'; '.join(why)}")


def sizing_config(model_cfg: ModelConfig, lanes: int = DEFAULT_LANES) -> ModelConfig:
    """The configuration to build a core for to run a model of ``model_cfg``: the shipped core's when the model
    fits it (the capacity a bitstream has), else the model's own."""
    core = core_config(lanes=lanes)
    return model_cfg if _capacity_error(model_cfg, core, lanes) else core


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/verilog")
    ap.add_argument("--lanes", type=int, default=DEFAULT_LANES)
    ap.add_argument("--model", help="size the core for this model's config (default: the shipped core, which "
                    "holds every shipped model: core_config())")
    args = ap.parse_args(argv)
    cfg = model_config(args.model) if args.model else core_config(lanes=args.lanes)
    config = build(Path(args.out), args.lanes, cfg)
    for name in config["components"]:
        print(f"wrote {Path(args.out) / (name + '.v')}")
    print(f"wrote {Path(args.out) / 'config.json'}")


if __name__ == "__main__":
    sys.exit(main())
