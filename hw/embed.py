"""Patch embedding, the only multiplying layer (DSPs), once per image (docs/integer_model.md step 1).

``E[k, d] = clampR((sum_i emb_w[d, i] * patch[k, i] + emb_b[k, d]) >> emb_shift)``: each token's window
(``patch_dim`` uint8 pixels, ``packing.image_to_patches``) is multiplied with the int16 weights in
``lanes`` parallel multipliers (E output channels at a time), accumulated in 32 bits with the bias, shifted
(arithmetic, floor) and clamped to the residual range.

Memories (written at run time, one row per cycle): weights, row ``c * patch_dim + i`` holds
``emb_w[c*E : (c+1)*E, i]``; biases, row ``k * chunks + c`` holds ``emb_b[k, c*E : (c+1)*E]``
(``chunks = ceil(D / E)``; lanes past D are don't-care, their outputs are for the caller to drop).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import EMB_LATENCY
from dynaspike.formats import FORMATS

from .accumulate import BLOCK_RAM, connect_write, write_signature
from .arith import mul, saturate

EMB_ACC_BITS = 32  # the artifact loader checks that the embedding accumulator fits 32 bits


def window_layout(max_tokens: int, max_patch_dim: int, fmt=FORMATS) -> data.StructLayout:
    """One token's window: ``token`` index and ``pix`` (the first ``patch_dim`` entries are used)."""
    return data.StructLayout({"token": range(max_tokens),
                              "pix": data.ArrayLayout(unsigned(fmt.pixel_bits), max_patch_dim)})


def embed_out_layout(max_tokens: int, chunks: int, lanes: int, fmt=FORMATS) -> data.StructLayout:
    """E channels ``chunk * lanes ...`` of ``token``, in residual units."""
    return data.StructLayout({"token": range(max_tokens), "chunk": range(max(chunks, 1)),
                              "e": data.ArrayLayout(signed(fmt.res_bits), lanes)})


class Embedding(wiring.Component):
    """Multiply token windows with the embedding weights, ``lanes`` channels per cycle.

    Contract (``dynaspike.cycles.embed_cycles``): a token costs ``chunks * patch_dim`` cycles (one
    multiply-accumulate of ``lanes`` channels per cycle), tokens follow each other without a bubble; the
    output of (token, chunk) is valid ``EMB_LATENCY`` (3) cycles after its last multiply is issued (weight
    read, registered multiply, accumulate). It stalls while an output waits on ``o.ready``. ``chunks`` and
    ``patch_dim`` come from the loaded model and must be stable while tokens flow.
    """

    def __init__(self, lanes: int, max_dim: int, max_patch_dim: int, max_tokens: int, *, fmt=FORMATS,
                 granules: int = 1):
        for name, value in (("lanes", lanes), ("max_dim", max_dim), ("max_patch_dim", max_patch_dim),
                            ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Embedding {name} must be a positive integer, got {value!r}")
        self.lanes, self.max_tokens, self.max_patch_dim, self.fmt = lanes, max_tokens, max_patch_dim, fmt
        self.max_chunks = -(-max_dim // lanes)
        self.w_rows = self.max_chunks * max_patch_dim
        self.b_rows = max_tokens * self.max_chunks
        self.w_shape = data.ArrayLayout(signed(fmt.emb_weight_bits), lanes)
        self.b_shape = data.ArrayLayout(signed(EMB_ACC_BITS), lanes)
        super().__init__({
            "i": In(stream.Signature(window_layout(max_tokens, max_patch_dim, fmt))),
            "o": Out(stream.Signature(embed_out_layout(max_tokens, self.max_chunks, lanes, fmt))),
            "chunks": In(range(self.max_chunks + 1)),
            "patch_dim": In(range(max_patch_dim + 1)),
            "w_wr": In(write_signature(self.w_rows, self.w_shape, granules)),
            "b_wr": In(write_signature(self.b_rows, self.b_shape, granules)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, E = self.fmt, self.lanes
        m.submodules.wmem = wmem = Memory(shape=self.w_shape, depth=self.w_rows, init=[], attrs=BLOCK_RAM)
        m.submodules.bmem = bmem = Memory(shape=self.b_shape, depth=self.b_rows, init=[], attrs=BLOCK_RAM)
        connect_write(m, wmem, self.w_wr)
        connect_write(m, bmem, self.b_wr)
        w_rd, b_rd = wmem.read_port(), bmem.read_port()

        advance = ~self.o.valid | self.o.ready  # the whole pipeline holds while an output waits
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # ---- stage 0: walk (chunk, input) of the working token, one weight row per cycle
        busy = Signal()
        pix = Signal(window_layout(self.max_tokens, self.max_patch_dim, fmt).members["pix"])
        token = Signal(range(self.max_tokens))
        c = Signal(range(self.max_chunks + 1))
        i = Signal(range(self.max_patch_dim + 1))
        w_addr = Signal(range(self.w_rows + 1))
        b_base = Signal(range(self.b_rows + 1))
        last_i = i == self.patch_dim - 1
        final = busy & last_i & (c == self.chunks - 1)  # the token's last multiply is issued now
        m.d.comb += self.i.ready.eq(advance & (~busy | final))
        m.d.comb += [w_rd.en.eq(advance), w_rd.addr.eq(w_addr), b_rd.en.eq(advance), b_rd.addr.eq(b_base + c)]

        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "pixel": fmt.pixel_bits,
                                       "token": range(self.max_tokens), "chunk": range(max(self.max_chunks, 1))}))
        pix_i = Signal(fmt.pixel_bits)
        with m.Switch(i):
            for k in range(self.max_patch_dim):
                with m.Case(k):
                    m.d.comb += pix_i.eq(pix[k])
        with m.If(advance):
            m.d.sync += [s1.valid.eq(busy), s1.first.eq(i == 0), s1.last.eq(last_i), s1.pixel.eq(pix_i),
                         s1.token.eq(token), s1.chunk.eq(c)]
            with m.If(busy):
                m.d.sync += [i.eq(i + 1), w_addr.eq(w_addr + 1)]
                with m.If(last_i):
                    m.d.sync += [i.eq(0), c.eq(c + 1)]
                with m.If(final):
                    m.d.sync += busy.eq(0)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [busy.eq(1), pix.eq(self.i.payload.pix), token.eq(self.i.payload.token),
                             i.eq(0), c.eq(0), w_addr.eq(0), b_base.eq(mul(self.i.payload.token, self.chunks))]

        # ---- stage 1: the weight row is read; multiply (registered: maps to the DSP's M register)
        s2 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "token": range(self.max_tokens),
                                       "chunk": range(max(self.max_chunks, 1))}))
        prod = Signal(data.ArrayLayout(signed(fmt.emb_weight_bits + fmt.pixel_bits + 1), E))
        bias = Signal(self.b_shape)
        with m.If(advance):
            m.d.sync += [s2.valid.eq(s1.valid), s2.first.eq(s1.first), s2.last.eq(s1.last),
                         s2.token.eq(s1.token), s2.chunk.eq(s1.chunk), bias.eq(b_rd.data)]
            m.d.sync += [prod[l].eq(w_rd.data[l] * s1.pixel) for l in range(E)]

        # ---- stage 2: accumulate (the bias starts a chunk), then shift, clamp and offer the chunk
        acc = Signal(self.b_shape)
        with m.If(advance & s2.valid):
            for l in range(E):
                new = Signal(signed(EMB_ACC_BITS), name=f"acc_new{l}")
                m.d.comb += new.eq(Mux(s2.first, bias[l], acc[l]) + prod[l])
                m.d.sync += acc[l].eq(new)
                shifted = new >> fmt.emb_shift
                clamped = saturate(shifted, fmt.res_bits)
                with m.If(s2.last):
                    m.d.sync += self.o.payload.e[l].eq(clamped)
            with m.If(s2.last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.token.eq(s2.token),
                             self.o.payload.chunk.eq(s2.chunk)]
        return m
