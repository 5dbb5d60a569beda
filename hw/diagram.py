"""The core's block diagram, drawn from the design's own parameters (``dynaspike.cycles``).

    python -m hw.diagram [--lanes 32] [--out docs/core.svg]

Boxes are the components of ``hw/`` (their file in brackets), labelled with the widths the shipped core
is built with; arrows are the data paths of an inference (docs/hardware.md, "Datapath"). The SVG in
``docs/`` is this script's output: rerun it when a width or a component changes.
"""

import argparse
from pathlib import Path

from dynaspike import cycles as cy
from dynaspike.formats import FORMATS

# (x, y) of each box's lower-left corner, its width and height, on a 16 x 9 canvas
W, H = 2.5, 1.05


def boxes(P: int) -> dict:
    E, two_p = cy.emb_lanes(P), cy.ACC_ROWS * P
    f = FORMATS
    return {
        "axis_in": (0.2, 7.7, "AXI4-Stream in\nmodel and image packets\n(stream_in.py: parser, checksum)"),
        "axil": (0.2, 0.3, "AXI4-Lite registers\nCTRL, STATUS, CYCLES, counters\n(axil.py, dynaspike/regmap.py)"),
        "loader": (3.2, 7.7, "model loader: writes the weights,\nbiases, thresholds, embedding,\nhead and halting LUT (loader.py)"),
        "embed": (0.2, 5.6, f"embedding\n{E} x {cy.EMB_PIXELS} DSP48 MACs, zero pixels\nskipped (2 / cycle) "
                            "(embed.py)"),
        "merge": (0.2, 3.9, "token merge (merge.py)\nHamming distance,\n1 token / cycle"),
        "ex": (3.2, 5.1, f"E and X memories (BRAM)\nresidual stream, {P} x {f.res_bits} bit rows\n"
                         "+ residual add, saturate"),
        "spikes": (3.2, 2.9, "spike memories S, Q, K, V, Z\none word per token\n(LUT RAM)"),
        "events": (6.2, 2.9, f"event generator\n{cy.ACC_SPIKES} spikes / cycle, lowest\nand highest left "
                             "(events.py)"),
        "acc": (9.2, 2.9, f"accumulate engine (accumulate.py)\n{two_p} lanes x {cy.ACC_SPIKES} weight rows / "
                          f"cycle\n{f.weight_bits}-bit weights in BRAM"),
        "lif": (9.2, 5.1, f"LIF layer\n{P} lanes, membranes in BRAM\n(lif_layer.py, lif.py)"),
        "attn": (6.2, 6.4, "attention K^T V, Q (K^T V)\nall heads in parallel\n(attention.py)"),
        "halt": (12.3, 6.4, "halting unit\nACT accumulator, LUT\n(halt.py)"),
        "head": (12.3, 2.9, f"readout and classifier\nsize-weighted counts,\n{cy.HEAD_MULTS} DSP48 MACs (head.py)"),
        "axis_out": (12.3, 0.3, "AXI4-Stream out\nRESULT and TAP packets"),
        "seq": (6.2, 0.3, "sequencer (core.py): passes over\nthe active tokens (halting unit)\nor the representatives (merge);\n"
                          "time-step mask gates modules"),
    }


# the loader writes every model memory, and the sequencer reads the halting unit's and the merge's decisions:
# those paths are in the boxes' labels, not drawn
ARROWS = [("axis_in", "loader"), ("axis_in", "embed"), ("embed", "merge"), ("embed", "ex"), ("ex", "lif"),
          ("lif", "spikes"), ("spikes", "events"), ("events", "acc"), ("acc", "lif"), ("acc", "ex"),
          ("spikes", "attn"), ("attn", "lif"), ("ex", "halt"), ("lif", "head"), ("head", "axis_out"),
          ("axil", "seq")]


def edge(frm, to, pad=0.08):
    """Where the line from box centre ``frm`` towards ``to`` leaves the box around ``frm``."""
    dx, dy = to[0] - frm[0], to[1] - frm[1]
    t = min((W / 2 + pad) / abs(dx) if dx else float("inf"), (H / 2 + pad) / abs(dy) if dy else float("inf"))
    return frm[0] + t * dx, frm[1] + t * dy


def draw(lanes: int, out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    b = boxes(lanes)
    plt.rcParams["svg.fonttype"] = "none"   # text stays text: small and searchable
    plt.rcParams["svg.hashsalt"] = "dynaspike"   # fixed element ids: the same design gives the same file
    fig, ax = plt.subplots(figsize=(16, 9.2))
    ax.set_xlim(0, 15.2)
    ax.set_ylim(0, 8.9)
    ax.axis("off")
    centre = {}
    for name, (x, y, text) in b.items():
        ax.add_patch(FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0.05", fc="#eef3fb" if name != "seq"
                                    else "#fbf1e6", ec="#35507a", lw=1.2))
        ax.text(x + W / 2, y + H / 2, text, ha="center", va="center", fontsize=8.5)
        centre[name] = (x + W / 2, y + H / 2)
    for a, c in ARROWS:
        ax.add_patch(FancyArrowPatch(edge(centre[a], centre[c]), edge(centre[c], centre[a]), arrowstyle="-|>",
                                     mutation_scale=12, color="#555", lw=1.0))
    ax.set_title(f"dynaspike core, P = {lanes}: {cy.ACC_ROWS * lanes} accumulators x {cy.ACC_SPIKES} spikes "
                 f"= {cy.ACC_ROWS * lanes * cy.ACC_SPIKES} adds / cycle", fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", metadata={"Date": None} if out.suffix == ".svg" else None)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=cy.DEFAULT_LANES)
    ap.add_argument("--out", default="docs/core.svg")
    args = ap.parse_args(argv)
    draw(args.lanes, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
