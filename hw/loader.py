"""Model loader: the data beats of a MODEL packet (``dynaspike.packing.SECTIONS``) into the core's
registers and memories.

The memory images (``weights``, ``biases``, ``thresholds``) arrive in the memories' own row layout
(``packing.weight_layout``): one beat per cycle, written a beat-wide part of a row at a time. The other
sections are tensors in the artifact's row-major order; they are written one element per cycle (a beat of
16-bit elements takes 4 cycles), with nested counters mapping the element index to its row and lane. A
model loads once, so the loader is small rather than fast.

The ``config`` section fills ``cfg`` (``ModelConfig`` fields in declaration order), ``params`` fills
``params`` (``IntParams`` fields); ``derived`` (``derived_layout``) holds what the sequencer needs from them,
``fits`` says whether the configuration fits the core, ``lengths_ok`` whether every section had exactly the
beats that configuration implies (both registers, checked by the caller a cycle after the packet's trailer:
a packet that is well formed but disagrees with its own config would otherwise leave stale memory rows);
``restart`` (after that check, and on a soft reset) starts the next packet's beat counts from zero.

A packet whose ``weights``, ``biases`` and ``thresholds`` sections are all empty keeps them in DDR
(``packing.pack_model(..., weights_in_ddr=True)``, ``dynaspike.ddr.pack_weights``): ``weights_in_ddr`` says
so, and its lengths are checked without those three.
"""

from dataclasses import fields
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dynaspike import cycles
from dynaspike.artifact import IntParams
from dynaspike.config import ModelConfig
from dynaspike.formats import FORMATS
from dynaspike.packing import BEAT_BITS, DDR_SECTIONS, SECTION_IDS, capacity_for

from .accumulate import write_signature
from .arith import mul
from .stream_in import beat_layout

CFG_FIELDS = tuple(f.name for f in fields(ModelConfig))
PARAM_FIELDS = tuple(f.name for f in fields(IntParams))
CFG_BITS, PARAM_BITS = 16, 32  # element widths of the config and params sections (packing.SECTIONS)


def log2(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


class Geometry:
    """Build-time sizes of one core (from its capacity); every hw module of the core shares one."""

    @classmethod
    def for_core(cls, cfg: ModelConfig, lanes: int, clock_hz: int = 100_000_000) -> "Geometry":
        """The geometry of ``hw.core.Core(lanes, cfg)``: the capacity of ``cfg`` at ``lanes``, the core's
        multipliers (``dynaspike.cycles``)."""
        return cls(capacity_for(cfg, lanes, clock_hz), cfg.heads, cycles.emb_lanes(lanes), cycles.HEAD_MULTS)

    def __init__(self, cap, heads: int, emb_lanes: int, head_mults: int):
        self.cap, self.P, self.heads = cap, cap.lanes, heads
        self.N, self.D, self.H, self.Lmax, self.Tmax = (cap.max_tokens, cap.max_dim, cap.max_hidden,
                                                         cap.max_blocks, cap.max_t)
        self.C, self.PD, self.dh = cap.max_classes, cap.max_patch_dim, cap.head_dim
        self.E, self.M = emb_lanes, head_mults
        self.A = cycles.ACC_ROWS * self.P              # accumulate-engine lanes: weight and bias rows
        self.dc = -(-self.D // self.P)                 # rows of P lanes per token of the residual stream
        self.DP = self.dc * self.P                     # a token's spike vector, padded to whole rows
        self.hch = -(-self.H // self.P)                # hidden chunks of P lanes
        self.bpt = -(-self.PD // 8)                    # beats per token window in an image packet
        # membrane rows per token and block: ain, q k v, attn, min (dc each), then the hidden chunks
        self.stride = 6 * self.dc + self.hch
        self.R = self.Lmax * self.stride + self.dc     # membrane rows per token (+ the readout layer)
        self.emb_chunks = -(-self.D // self.E)
        self.head_groups = -(-self.D // self.M)
        self.mask_bits = 2 * self.Lmax * self.Tmax
        self.W = max(self.DP, self.hch * self.P)       # widest spike vector an event generator scans
        # DDR mode: a block's weight buffer in units of A bytes (loader.derived_layout's a_block), the most
        # tiles an event pass reads (q, k and v's, or fc1's) and the largest tile (a bank of weight rows)
        dcg, hcg = cycles.engine_rows(self.dc), cycles.engine_rows(self.hch)
        self.a_block = 3 * dcg * (8 + self.D) + dcg * (4 + self.D) + hcg * (8 + self.D) + dcg * (4 + self.H)
        self.max_tiles = max(3 * dcg, hcg)
        self.max_fan_in = max(self.D, self.H)
        for what, v in (("lanes", self.P), ("embedding lanes", self.E), ("head multipliers", self.M)):
            log2(v)
        if self.P % self.E or self.P < 8:
            raise ValueError(f"the core needs lanes P a power of two >= 8 and a multiple of the embedding "
                             f"lanes {self.E}; got P={self.P}")
        if self.D % self.dh or self.D // self.dh != heads:
            raise ValueError(f"max_dim {self.D} is not heads {heads} x head_dim {self.dh}")


def derived_layout(g: Geometry) -> data.StructLayout:
    """Values the sequencer needs, computed from the loaded config (registered: stable after loading)."""
    return data.StructLayout({
        "n": range(g.N + 1), "dim": range(g.D + 1), "hidden": range(g.H + 1), "blocks": range(g.Lmax + 1),
        "steps": range(g.Tmax + 1), "classes": range(g.C + 1), "patch_dim": range(g.PD + 1),
        "hch": range(g.hch + 1), "bpt": range(g.bpt + 1), "emb_chunks": range(g.emb_chunks + 1),
        "dch": range(g.dc + 1),                # rows of P lanes per token (chunks of D)
        "dcg": range(g.dc + 1),                # engine rows of a D-wide layer (groups of ACC_ROWS chunks)
        "hcg": range(g.hch + 1),               # engine rows of the hidden layer
        "dim_last": range(g.P + 1),            # lanes of the last chunk of D
        "hid_last": range(g.P + 1),            # lanes of the last hidden chunk
        # packing.weight_layout of one block: q, k, v, proj (dcg engine rows each), fc1 (hcg), fc2 (dcg)
        "w_block": range(g.cap.weight_rows + 1),   # weight rows per block: 4*dcg*D + hcg*D + dcg*Hd
        "w_proj": range(g.cap.weight_rows + 1),    # weight row of proj in a block: 3*dcg*D
        "w_fc1": range(g.cap.weight_rows + 1),     # weight row of fc1 in a block: 4*dcg*D
        "w_fc2": range(g.cap.weight_rows + 1),     # weight row of fc2 in a block: 4*dcg*D + hcg*D
        "b_block": range(g.cap.bias_rows + 1),     # bias rows per block: 5*dcg + hcg
        "th_block": range(g.cap.threshold_rows + 1),  # threshold rows per block (q, k, v, fc1): 3*dch + hch
        # dynaspike.ddr.weight_buffer of one block, in units of A bytes (a weight row; a tile's bias row and
        # each of its threshold rows are 4 units): where proj, fc1 and fc2 start, and the block's size
        "a_proj": range(g.a_block + 1),           # 3*dcg*(8 + D)
        "a_fc1": range(g.a_block + 1),            # a_proj + dcg*(4 + D)
        "a_fc2": range(g.a_block + 1),            # a_fc1 + hcg*(8 + D)
        "a_block": range(g.a_block + 1),          # a_fc2 + dcg*(4 + Hd)
        # the last value of the sequencer's counters (field - 1, a stage after the field): a counter's end test
        # is then an equality, not a subtraction in front of one
        "n_last": range(g.N + 1), "blocks_last": range(g.Lmax + 1), "steps_last": range(g.Tmax + 1),
        "bpt_last": range(g.bpt + 1), "emb_chunks_last": range(g.emb_chunks + 1), "dch_last": range(g.dc + 1),
    })


def _late(m, port, name: str):
    """A stand-in for write port ``port`` (``write_signature``): what is assigned to it reaches the port a
    cycle later, through registers."""
    late = SimpleNamespace(**{k: Signal(getattr(port, k).shape(), name=f"{name}_{k}") for k in ("addr", "data", "en")})
    m.d.sync += [getattr(port, k).eq(getattr(late, k)) for k in ("addr", "data", "en")]
    return late


class ModelLoader(wiring.Component):
    """Write a MODEL packet's data beats (``StreamParser.o``, kind MODEL) into the core.

    ``i`` takes a beat when its elements are written: memory-image beats in one cycle, other beats in one
    cycle per element; a section's first beat waits one cycle more (its section is decoded into registers).
    Memories and registers are written a cycle after their element is taken. Memory write ports
    (``write_signature``) go to the components that own them.
    """

    def __init__(self, g: Geometry, w_rows: int, b_rows: int, th_rows: int, emb_w_rows: int, emb_b_rows: int,
                 head_w_rows: int):
        self.g = g
        acc = data.ArrayLayout(signed(FORMATS.acc_bits), g.P)
        acc_wide = data.ArrayLayout(signed(FORMATS.acc_bits), g.A)
        super().__init__({
            "i": In(stream.Signature(beat_layout())),
            "cfg": Out(data.ArrayLayout(CFG_BITS, len(CFG_FIELDS))),
            "params": Out(data.ArrayLayout(signed(PARAM_BITS), len(PARAM_FIELDS))),
            "derived": Out(derived_layout(g)),
            "fits": Out(1),
            "lengths_ok": Out(1),
            "weights_in_ddr": Out(1),          # the packet's weights, biases and thresholds sections were empty
            "restart": In(1),                  # forget the sections' beat counts (between model packets)
            "mask": Out(g.mask_bits),          # bit m * Tmax + t
            "w_wr": Out(write_signature(w_rows, data.ArrayLayout(signed(FORMATS.weight_bits), g.A), g.A // 8)),
            "b_wr": Out(write_signature(b_rows, acc_wide, g.A // 2)),
            "th_wr": Out(write_signature(th_rows, acc, g.P // 2)),
            "ew_wr": Out(write_signature(emb_w_rows, data.ArrayLayout(signed(FORMATS.emb_weight_bits), g.E), g.E)),
            "eb_wr": Out(write_signature(emb_b_rows, data.ArrayLayout(signed(32), g.E), g.E)),
            "hw_wr": Out(write_signature(head_w_rows, data.ArrayLayout(signed(FORMATS.head_weight_bits), g.M), g.M)),
            "hb_wr": Out(write_signature(max(g.C, 2), signed(FORMATS.logit_bits))),
            "lut_wr": Out(write_signature(FORMATS.halt_lut_size, FORMATS.halt_frac_bits)),
        })

    def elaborate(self, platform):
        g, m = self.g, Module()
        cfg = {name: self.cfg[k] for k, name in enumerate(CFG_FIELDS)}
        beat = self.i.payload
        # The beat's section decoded into registers (one-hot id here, element width and the counters' wrap
        # values below): they hold the decode of the section offered in the cycle before, so a section's first
        # beat waits a cycle for them (eleven cycles a model) and no element path starts with the decode.
        dec_sec = Signal(8)
        sid = {name: Signal(name=f"sec_{name}") for name in SECTION_IDS}
        m.d.sync += [dec_sec.eq(beat.section)] + [sid[name].eq(beat.section == v) for name, v in SECTION_IDS.items()]
        decoded = dec_sec == beat.section
        first = beat.first  # the section's first data beat (a register of the parser's)
        # The write ports and the element registers are written a cycle after the beat is decoded: the
        # decode (section, counters, bounds) and the memories' enables and registers' selects are two
        # paths, not one. Nothing reads a memory or a field the cycle after the loader writes it.
        wp = {name: _late(m, getattr(self, name), name)
              for name in ("w_wr", "b_wr", "th_wr", "ew_wr", "eb_wr", "hw_wr", "hb_wr", "lut_wr")}

        # ---- derived values, registered from cfg in three stages, four for the window size (the config section
        # is the first one, so they settle long before any other section or image uses them; the stages keep
        # the products' adder trees out of one another's paths)
        d = self.derived
        grid = Signal(range(g.N + 1))  # tokens per side, found among the few that fit max_tokens
        side_ok = Signal()
        for s in range(1, g.N + 1):
            if s * s <= g.N:
                with m.If(cfg["img_size"] == mul(cfg["patch_size"], s)):
                    m.d.comb += [grid.eq(s), side_ok.eq(1)]
        # A field checked against a capacity in `fits` is used at that capacity's width: the products below
        # are exact whenever the model fits, and nothing derived is used when it does not.
        capped = lambda name, limit: cfg[name][:max(1, limit.bit_length())]  # noqa: E731
        dim, kernel, chans = capped("dim", g.D), capped("embed_kernel", g.PD), capped("in_channels", g.PD)
        L, T, C = capped("blocks", g.Lmax), capped("t_max", g.Tmax), capped("num_classes", g.C)
        # stage A: products of fields
        chunks = lambda n, lanes, limit: ((n + lanes - 1) >> log2(lanes))[:max(1, limit.bit_length())]  # noqa: E731
        dch_c, dcg_c = chunks(dim, g.P, g.dc), chunks(dim, g.A, g.dc)
        kk = Signal(2 * len(kernel), name="d_kk")   # kernel squared, a stage before: two chained products
        m.d.sync += kk.eq(mul(kernel, kernel))       # in one stage were the loader's deepest path
        products = {"hidden": mul(dim, cfg["mlp_ratio"][:8]), "pd": mul(kk, chans),
                    "dch": dch_c, "dcg": dcg_c, "dd": mul(dim, dcg_c), "grid": grid, "side_ok": side_ok}
        stage_a = {k: Signal(len(Value.cast(v)), name=f"d_{k}") for k, v in products.items()}  # full widths
        m.d.sync += [stage_a[k].eq(v) for k, v in products.items()]
        hidden, pd, dch, dcg, dd, grid_r, side_ok_r = (stage_a[k] for k in products)
        # stage B: what the products imply
        hch = Signal(range(g.hch + 1), name="d_hch")
        hcg = Signal(range(g.hch + 1), name="d_hcg")
        m.d.sync += [hch.eq(chunks(hidden, g.P, g.hch)), hcg.eq(chunks(hidden, g.A, g.hch))]
        # stage C: the derived registers
        m.d.sync += [
            d.n.eq(mul(grid_r, grid_r)), d.dim.eq(dim), d.hidden.eq(hidden), d.blocks.eq(cfg["blocks"]),
            d.steps.eq(cfg["t_max"]), d.classes.eq(cfg["num_classes"]), d.patch_dim.eq(pd), d.hch.eq(hch),
            d.bpt.eq((pd + 7) >> 3), d.emb_chunks.eq((dim + g.E - 1) >> log2(g.E)),
            d.dch.eq(dch), d.dcg.eq(dcg), d.hcg.eq(hcg), d.dim_last.eq(dim - ((dch - 1) << log2(g.P))),
            d.hid_last.eq(hidden - ((hch - 1) << log2(g.P))),
            d.w_proj.eq(mul(dd, 3)), d.w_fc1.eq(dd << 2), d.w_fc2.eq((dd << 2) + mul(dim, hcg)),
            d.w_block.eq((dd << 2) + mul(dim, hcg) + mul(hidden, dcg)),
            d.b_block.eq(mul(dcg, 5) + hcg), d.th_block.eq(mul(dch, 3) + hch),
            d.a_proj.eq(mul(dd, 3) + mul(dcg, 24)), d.a_fc1.eq((dd << 2) + mul(dcg, 28)),
            d.a_fc2.eq((dd << 2) + mul(dim, hcg) + mul(dcg, 28) + (hcg << 3)),
            d.a_block.eq((dd << 2) + mul(dim, hcg) + mul(hidden, dcg) + (dcg << 5) + (hcg << 3)),
        ]
        # stage D
        m.d.sync += [getattr(d, f"{k}_last").eq(getattr(d, k) - 1)
                     for k in ("n", "blocks", "steps", "bpt", "emb_chunks", "dch")]
        # every field fits 8 bits (the products are 8-bit wide; every capacity is far smaller). Registered,
        # like the expected lengths below: the checks are read at the packet's trailer.
        small = Cat(*(cfg[f] < 256 for f in CFG_FIELDS)).all()
        m.d.sync += self.fits.eq(small & side_ok_r & (cfg["dim"] <= g.D) & (hidden <= g.H)
                                 & (cfg["blocks"] <= g.Lmax) & (cfg["blocks"] > 0) & (cfg["t_max"] <= g.Tmax)
                                 & (cfg["t_max"] > 0) & (cfg["num_classes"] <= g.C) & (cfg["embed_kernel"] <= g.PD)
                                 & (cfg["in_channels"] <= g.PD) & (pd <= g.PD)
                                 & (cfg["dim"] == mul(cfg["heads"], g.dh)) & (cfg["heads"] > 0) & (hidden > 0))

        # ---- section lengths: beats seen per section, against what the config implies
        # (from zero for every packet: a section the packet leaves empty must not pass on an earlier one's count)
        seen = {name: Signal(32, name=f"beats_{name}") for name in SECTION_IDS}
        with m.If(self.restart):
            m.d.sync += [sig.eq(0) for sig in seen.values()]
        with m.Elif(self.i.valid & self.i.ready):
            for name, sig in seen.items():
                with m.If(sid[name]):
                    m.d.sync += sig.eq(beat.index + 1)
        q = lambda n, per: (n + per - 1) // per  # noqa: E731 -- beats of n elements, per in a beat
        expect = {
            "config": q(len(CFG_FIELDS), 4), "params": q(len(PARAM_FIELDS), 2),
            "emb_w": (mul(dim, pd[:g.PD.bit_length()]) + 3) >> 2, "emb_b": (mul(dim, d.n) + 1) >> 1,
            "weights": mul(d.w_block, L) << log2(g.A // 8), "biases": mul(d.b_block, L) << log2(g.A // 2),
            "thresholds": mul(d.th_block, L) << log2(g.P // 2), "head_w": (mul(dim, C) + 3) >> 2,
            "head_b": (C + 1) >> 1,
            "mask": ((mul(L, T) << 1) + 7) >> 3, "halt_lut": q(FORMATS.halt_lut_size, 8),
        }
        expect_r = {k: Signal(32, name=f"expect_{k}") for k in expect}
        m.d.sync += [expect_r[k].eq(v) for k, v in expect.items()]
        # registered: valid from the cycle after a section's last beat is taken (the core reads it a cycle after
        # the trailer)
        in_ddr = Cat(*(seen[k] == 0 for k in DDR_SECTIONS)).all()
        m.d.sync += [self.lengths_ok.eq(Cat(*((seen[k] == expect_r[k]) | (in_ddr if k in DDR_SECTIONS else 0)
                                              for k in expect)).all()),
                     self.weights_in_ddr.eq(in_ddr)]

        # ---- memory images: one beat per cycle, a row of L lanes (packing.memory_lanes: A for weights and
        # biases, P for thresholds) in L/8 (8-bit lanes) or L/2 (32-bit lanes) beats
        for name, wr, row_lanes in (("weights", wp["w_wr"], g.A), ("biases", wp["b_wr"], g.A),
                                    ("thresholds", wp["th_wr"], g.P)):
            lane_bits = 8 if name == "weights" else 32
            lanes = BEAT_BITS // lane_bits
            shift = log2(row_lanes // lanes)
            m.d.comb += [wr.addr.eq(beat.index >> shift)]
            for k in range(row_lanes):  # lane k takes element k % lanes of the beat; only one part is enabled
                e = beat.data.word_select(k % lanes, lane_bits)
                m.d.comb += wr.data[k].eq(e.as_signed())
            with m.If(self.i.valid & decoded & sid[name]):
                m.d.comb += wr.en.eq(1 << beat.index[:shift] if shift else 1)

        # ---- element sections: one element per cycle
        el = Signal(range(8))                  # element of the current beat
        # element `el` of the beat, one multiplexer per width (a shift by el * bits was a multiplier and a
        # 64-bit barrel shifter in front of every element register: the loader's deepest path); the width
        # follows from the parser's elements per beat (stream_in.SECTION_ELEMS: 3 for 16 bits, 7 for 8)
        val = Signal(signed(32))
        m.d.comb += val.eq(Mux(beat.elems == 3, beat.data.word_select(el[:2], 16).as_signed(),
                               Mux(beat.elems == 7, beat.data.word_select(el, 8),
                                   beat.data.word_select(el[:1], 32).as_signed())))
        image = Cat(*(sid[n] for n in ("weights", "biases", "thresholds"))).any()
        last_el = el == beat.elems             # elems is 0 for a memory image: ready at once
        m.d.comb += self.i.ready.eq(decoded & last_el)
        step = self.i.valid & decoded & ~image
        with m.If(step):
            m.d.sync += el.eq(Mux(last_el, 0, el + 1))

        # Nested counters: (a, b) with b fast, b wrapping after `b_last`; `base` tracks the row of (a, 0).
        a = Signal(16)
        b = Signal(16)
        base = Signal(16)
        sub = Signal(16)   # b's row inside a (b >> log2 lanes), kept by counting lanes
        lane = Signal(8)
        start = first & (el == 0)
        cur_a, cur_b, cur_base, cur_sub, cur_lane = (Mux(start, 0, s) for s in (a, b, base, sub, lane))
        b_last = Signal(16)         # b's last value (b_len - 1)
        row_step = Signal(16)       # rows per value of a
        lane_last = Signal(8)       # the last lane of a row (lanes per row - 1)
        with m.Switch(beat.section):   # registered with `sid` (above)
            with m.Case(SECTION_IDS["emb_w"]):   # emb_w[d, i]: row (d // E) * patch_dim + i, lane d % E
                m.d.sync += [b_last.eq(0), row_step.eq(0), lane_last.eq(g.E - 1)]
            with m.Case(SECTION_IDS["emb_b"]):   # emb_b[k, d]: row k * chunks + d // E, lane d % E
                m.d.sync += [b_last.eq(dim - 1), row_step.eq(d.emb_chunks), lane_last.eq(g.E - 1)]
            with m.Case(SECTION_IDS["head_w"]):  # head_w[c, d]: row c * groups + d // M, lane d % M
                m.d.sync += [b_last.eq(dim - 1), row_step.eq(g.head_groups), lane_last.eq(g.M - 1)]
            with m.Case(SECTION_IDS["mask"]):    # mask[m, t]: bit m * Tmax + t
                m.d.sync += [b_last.eq(cfg["t_max"] - 1), row_step.eq(g.Tmax), lane_last.eq(0)]
            with m.Default():
                m.d.sync += [b_last.eq(0xFFFE), row_step.eq(0), lane_last.eq(0)]
        # emb_w walks i fast (row-major (D, patch_dim)): rows advance with i, lanes with d.
        ew_i, ew_d, ew_base = Signal(16), Signal(16), Signal(16)
        cur_i, cur_d, cur_ebase = (Mux(start, 0, s) for s in (ew_i, ew_d, ew_base))
        idx = Signal(32)   # element index in the section
        m.d.comb += idx.eq(Mux(start, 0, a))  # `a` doubles as the flat index for flat sections

        with m.If(step):
            with m.If(sid["emb_w"]):
                wrap = cur_i == pd - 1
                m.d.sync += [ew_i.eq(Mux(wrap, 0, cur_i + 1)), ew_d.eq(cur_d + wrap)]
                m.d.sync += ew_base.eq(cur_ebase + Mux(wrap & ((cur_d & (g.E - 1)) == g.E - 1), pd, 0))
            with m.Elif(sid["emb_b"] | sid["head_w"] | sid["mask"]):
                wrap = cur_b == b_last
                nlane = Mux(cur_lane == lane_last, 0, cur_lane + 1)
                m.d.sync += [b.eq(Mux(wrap, 0, cur_b + 1)), a.eq(cur_a + wrap),
                             lane.eq(Mux(wrap, 0, nlane)),
                             sub.eq(Mux(wrap, 0, cur_sub + (cur_lane == lane_last))),
                             base.eq(cur_base + Mux(wrap, row_step, 0))]
            with m.Else():
                m.d.sync += a.eq(cur_a + 1)

        def one_hot(k, n):  # shift amounts truncated to what can matter: a wide shift is a huge constant
            return Const(1, n) << k[:log2(n)] if n > 1 else Const(1, 1)
        # cfg, params and mask: the element, where it goes and whether, registered, then written
        wr_cfg, wr_params, wr_mask, wr_val = Signal(), Signal(), Signal(), Signal(signed(32))
        wr_idx = Signal(4)
        wr_bit = Signal((g.mask_bits - 1).bit_length())
        m.d.sync += [wr_cfg.eq(step & sid["config"] & (idx < len(CFG_FIELDS))),
                     wr_params.eq(step & sid["params"] & (idx < len(PARAM_FIELDS))),
                     wr_mask.eq(step & sid["mask"] & (cur_a < 2 * cfg["blocks"])),
                     wr_val.eq(val), wr_idx.eq(idx[:4]), wr_bit.eq((cur_base + cur_b)[:len(wr_bit)])]
        with m.If(wr_cfg):
            m.d.sync += self.cfg.as_value().word_select(wr_idx, CFG_BITS).eq(wr_val)
        with m.If(wr_params):
            m.d.sync += self.params.as_value().word_select(wr_idx[:3], PARAM_BITS).eq(wr_val)
        with m.If(wr_mask):
            m.d.sync += self.mask.bit_select(wr_bit, 1).eq(wr_val[0])
        m.d.comb += [
            wp["ew_wr"].addr.eq(cur_ebase + cur_i), wp["ew_wr"].en.eq(Mux(step & sid["emb_w"] & (cur_d < dim),
                                                                         one_hot(cur_d, g.E), 0)),
            wp["eb_wr"].addr.eq(cur_base + cur_sub),
            wp["eb_wr"].en.eq(Mux(step & sid["emb_b"] & (cur_a < d.n), one_hot(cur_lane, g.E), 0)),
            wp["hw_wr"].addr.eq(cur_base + cur_sub),
            wp["hw_wr"].en.eq(Mux(step & sid["head_w"] & (cur_a < cfg["num_classes"]), one_hot(cur_lane, g.M), 0)),
            wp["hb_wr"].addr.eq(idx), wp["hb_wr"].data.eq(val),
            wp["hb_wr"].en.eq(step & sid["head_b"] & (idx < cfg["num_classes"])),
            wp["lut_wr"].addr.eq(idx), wp["lut_wr"].data.eq(val),
            wp["lut_wr"].en.eq(step & sid["halt_lut"] & (idx < FORMATS.halt_lut_size)),
        ]
        for wr in (wp["ew_wr"], wp["eb_wr"], wp["hw_wr"]):
            n = len(wr.data.as_value()) // len(wr.en)
            m.d.comb += [wr.data.as_value().word_select(k, n).eq(val) for k in range(len(wr.en))]
        return m
