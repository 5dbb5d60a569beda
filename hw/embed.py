"""Patch embedding, the only multiplying layer (DSPs), once per image (docs/integer_model.md step 1).

``E[k, d] = clampR((sum_i emb_w[d, i] * patch[k, i] + emb_b[k, d]) >> emb_shift)``: each token's window
(``patch_dim`` uint8 pixels, ``packing.image_to_patches``) is multiplied with the int16 weights in
``lanes`` x ``pixels`` parallel multipliers (E output channels at a time, ``pixels`` =
``dynaspike.cycles.EMB_PIXELS`` = 2 pixels of the window per cycle), accumulated in 32 bits with the bias,
shifted (arithmetic, floor) and clamped to the residual range.

Memories (written at run time, one row per cycle): weights, row ``c * patch_dim + i`` holds
``emb_w[c*E : (c+1)*E, i]``; biases, row ``k * chunks + c`` holds ``emb_b[k, c*E : (c+1)*E]``
(``chunks = ceil(D / E)``; lanes past D are don't-care, their outputs are for the caller to drop); the
windows, row ``k * bpt + b`` holds bytes ``8b .. 8b + 7`` of token k's window (the image packet's beats as
they arrive, ``bpt = ceil(patch_dim / 8)`` beats per token): the embedding reads the one beat that holds
the pixels it multiplies, so no window is ever held in registers or multiplexed byte by byte.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import EMB_LATENCY, EMB_PIXELS
from dynaspike.formats import FORMATS
from dynaspike.packing import BEAT_BYTES  # a window memory row is one beat of the image packet

from .accumulate import BLOCK_RAM, connect_write, read_ports_sharing_write, write_signature
from .arith import mul, saturate
from .loader import log2

EMB_ACC_BITS = 32  # the artifact loader checks that the embedding accumulator fits 32 bits


def window_layout(max_tokens: int) -> data.StructLayout:
    """The start of one token: its index (its window must be in the window memory)."""
    return data.StructLayout({"token": range(max_tokens)})


def embed_out_layout(max_tokens: int, chunks: int, lanes: int, fmt=FORMATS) -> data.StructLayout:
    """E channels ``chunk * lanes ...`` of ``token``, in residual units."""
    return data.StructLayout({"token": range(max_tokens), "chunk": range(max(chunks, 1)),
                              "e": data.ArrayLayout(signed(fmt.res_bits), lanes)})


class Embedding(wiring.Component):
    """Multiply token windows with the embedding weights, ``lanes`` channels per cycle.

    Contract (``dynaspike.cycles.embed_cycles``): a token costs ``chunks * ceil(patch_dim / pixels)`` cycles
    (``pixels`` multiply-accumulates of ``lanes`` channels per cycle: weight rows i and i + 1, one per port
    of the block RAMs), tokens follow each other without a bubble; the output of (token, chunk) is valid
    ``EMB_LATENCY`` (4) cycles after its last multiply is issued (weight read, registered multiply,
    accumulate in the DSPs, sum of the pixel slots with shift and clamp). It stalls while an output waits
    on ``o.ready``. ``chunks`` and ``patch_dim`` come from the loaded model and must be stable while tokens
    flow.
    """

    def __init__(self, lanes: int, max_dim: int, max_patch_dim: int, max_tokens: int, *, fmt=FORMATS,
                 granules: int = 1, pixels: int = EMB_PIXELS):
        for name, value in (("lanes", lanes), ("max_dim", max_dim), ("max_patch_dim", max_patch_dim),
                            ("max_tokens", max_tokens), ("pixels", pixels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Embedding {name} must be a positive integer, got {value!r}")
        if BEAT_BYTES % pixels:
            raise ValueError(f"Embedding pixels must divide the {BEAT_BYTES} bytes of a beat, got {pixels}")
        self.lanes, self.max_tokens, self.max_patch_dim, self.fmt = lanes, max_tokens, max_patch_dim, fmt
        self.pixels, self.latency = pixels, EMB_LATENCY
        self.max_chunks = -(-max_dim // lanes)
        self.w_rows = self.max_chunks * max_patch_dim
        self.b_rows = max_tokens * self.max_chunks
        self.w_shape = data.ArrayLayout(signed(fmt.emb_weight_bits), lanes)
        self.b_shape = data.ArrayLayout(signed(EMB_ACC_BITS), lanes)
        self.max_bpt = -(-max_patch_dim // BEAT_BYTES)
        self.pix_rows = max_tokens * self.max_bpt
        super().__init__({
            "i": In(stream.Signature(window_layout(max_tokens))),
            "o": Out(stream.Signature(embed_out_layout(max_tokens, self.max_chunks, lanes, fmt))),
            "chunks": In(range(self.max_chunks + 1)),
            "patch_dim": In(range(max_patch_dim + 1)),
            "bpt": In(range(self.max_bpt + 1)),       # beats per window of the loaded model
            "pix_wr": In(write_signature(self.pix_rows, 8 * BEAT_BYTES)),
            "w_wr": In(write_signature(self.w_rows, self.w_shape, granules)),
            "b_wr": In(write_signature(self.b_rows, self.b_shape, granules)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, E, K = self.fmt, self.lanes, self.pixels
        m.submodules.wmem = wmem = Memory(shape=self.w_shape, depth=self.w_rows, init=[], attrs=BLOCK_RAM)
        m.submodules.bmem = bmem = Memory(shape=self.b_shape, depth=self.b_rows, init=[], attrs=BLOCK_RAM)
        connect_write(m, bmem, self.b_wr)
        b_rd = bmem.read_port()
        m.submodules.pmem = pmem = Memory(shape=8 * BEAT_BYTES, depth=self.pix_rows, init=[], attrs=BLOCK_RAM)
        connect_write(m, pmem, self.pix_wr)
        p_rd = pmem.read_port()

        advance = ~self.o.valid | self.o.ready  # the whole pipeline holds while an output waits
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # ---- stage 0: walk (chunk, K inputs) of the working token, K weight rows per cycle
        busy = Signal()
        token = Signal(range(self.max_tokens))
        p_base = Signal(range(self.pix_rows + 1))  # the token's first window row: token * bpt
        c = Signal(range(self.max_chunks + 1))
        i = Signal(range(self.max_patch_dim + K))
        w_chunk = Signal(range(self.w_rows + 1))   # row of input 0 of chunk c: c * patch_dim
        b_base = Signal(range(self.b_rows + 1))
        last_i = i + K >= self.patch_dim
        final = busy & last_i & (c == self.chunks - 1)  # the token's last multiply is issued now
        m.d.comb += self.i.ready.eq(advance & (~busy | final))
        m.d.comb += [b_rd.en.eq(advance), b_rd.addr.eq(b_base + c),
                     # the beat holding pixels i .. i + K - 1
                     p_rd.en.eq(advance), p_rd.addr.eq(p_base + (i >> log2(BEAT_BYTES)))]
        # weight rows i .. i + K - 1 of the chunk (past the window's end a port reads any row: its pixel is 0)
        w_rds = read_ports_sharing_write(m, wmem, self.w_wr, [w_chunk + i + k for k in range(K)])
        m.d.comb += [rd.en.eq(advance) for rd in w_rds]

        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "i": range(self.max_patch_dim + K),
                                       "token": range(self.max_tokens), "chunk": range(max(self.max_chunks, 1))}))
        with m.If(advance):
            m.d.sync += [s1.valid.eq(busy), s1.first.eq(i == 0), s1.last.eq(last_i), s1.i.eq(i),
                         s1.token.eq(token), s1.chunk.eq(c)]
            with m.If(busy):
                m.d.sync += i.eq(i + K)
                with m.If(last_i):
                    m.d.sync += [i.eq(0), c.eq(c + 1), w_chunk.eq(w_chunk + self.patch_dim)]
                with m.If(final):
                    m.d.sync += busy.eq(0)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [busy.eq(1), token.eq(self.i.payload.token), i.eq(0), c.eq(0), w_chunk.eq(0),
                             b_base.eq(mul(self.i.payload.token, self.chunks)),
                             p_base.eq(mul(self.i.payload.token, self.bpt))]

        # ---- stage 1: the weight rows are read; multiply (registered: maps to the DSPs' M registers)
        s2 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "token": range(self.max_tokens),
                                       "chunk": range(max(self.max_chunks, 1))}))
        # one signal per product and accumulator (not one wide array): synthesis packs a multiply-accumulate
        # into a DSP48 only when its product and accumulator registers are registers of their own
        prod_shape = signed(fmt.emb_weight_bits + fmt.pixel_bits + 1)
        prods = [[Signal(prod_shape, name=f"prod{k}_{l}") for l in range(E)] for k in range(K)]
        bias = Signal(self.b_shape)
        with m.If(advance):
            m.d.sync += [s2.valid.eq(s1.valid), s2.first.eq(s1.first), s2.last.eq(s1.last),
                         s2.token.eq(s1.token), s2.chunk.eq(s1.chunk), bias.eq(b_rd.data)]
            for k, (prod, rd) in enumerate(zip(prods, w_rds)):
                # pixel i + k: byte (i % 8) | k of the beat read (i is a multiple of K, which divides 8), or 0
                # past the window (the beat's padding is not trusted)
                byte = s1.i[:log2(BEAT_BYTES)] | k
                pixel = Mux(s1.i + k < self.patch_dim, p_rd.data.word_select(byte, fmt.pixel_bits), 0)
                m.d.sync += [prod[l].eq(rd.data[l] * pixel) for l in range(E)]

        # ---- stage 2: accumulate, one accumulator per pixel slot (the bias starts slot 0's, zero the others').
        # Each is a DSP's post-adder and P register (P = C + M, then P = P + M): nothing reads the sum before
        # it is registered, so synthesis keeps the whole multiply-accumulate inside the DSP48s.
        accs = [[Signal(signed(EMB_ACC_BITS), name=f"acc{k}_{l}") for l in range(E)] for k in range(K)]
        fin = Signal()                       # the accumulators hold a finished chunk
        fin_token = Signal.like(s2.token)
        fin_chunk = Signal.like(s2.chunk)
        with m.If(advance):
            m.d.sync += fin.eq(s2.valid & s2.last)
            with m.If(s2.valid):
                m.d.sync += [fin_token.eq(s2.token), fin_chunk.eq(s2.chunk)]
                for k, (acc, prod) in enumerate(zip(accs, prods)):
                    for l in range(E):
                        start = bias[l] if k == 0 else 0
                        m.d.sync += acc[l].eq(Mux(s2.first, start, acc[l]) + prod[l])
        # ---- stage 3: add the slots, shift, clamp and offer the chunk
        with m.If(advance & fin):
            for l in range(E):
                total = Signal(signed(EMB_ACC_BITS), name=f"sum{l}")
                m.d.comb += total.eq(sum(acc[l] for acc in accs))
                m.d.sync += self.o.payload.e[l].eq(saturate(total >> fmt.emb_shift, fmt.res_bits))
            m.d.sync += [self.o.valid.eq(1), self.o.payload.token.eq(fin_token), self.o.payload.chunk.eq(fin_chunk)]
        return m
