"""Patch embedding, the only multiplying layer (DSPs), once per image (docs/integer_model.md step 1).

``E[k, d] = clampR((sum_i emb_w[d, i] * patch[k, i] + emb_b[k, d]) >> emb_shift)``: each token's window
(``patch_dim`` uint8 pixels, ``packing.image_to_patches``) is multiplied with the int16 weights in
``lanes`` x ``pixels`` parallel multipliers (E output channels at a time, ``pixels`` =
``dynaspike.cycles.EMB_PIXELS`` = 2 pixels of the window per cycle), accumulated in 32 bits with the bias,
shifted (arithmetic, floor) and clamped to the residual range.

Zero pixels are skipped: a product with a zero pixel adds nothing, and real images are mostly background
(about 55 % of Fashion-MNIST's window pixels, 56 % of the digits'). As a window's beats are written, the
embedding keeps one bit per pixel (non-zero) in a small LUT-RAM mask memory; the ``EventGenerator`` of the
accumulate engine's spike vectors (``hw.events``) then hands it the lowest and the highest non-zero pixel
left, two per cycle, so a (token, chunk) takes ``cycles.embed_beats(nnz)`` = ``max(1, ceil(nnz / 2))``
cycles for a window of ``nnz`` non-zero pixels, whatever their positions (an all-zero window: one cycle, the
bias alone).

Memories (written at run time, one row per cycle): weights, row ``c * patch_dim + i`` holds
``emb_w[c*E : (c+1)*E, i]``; biases, row ``k * chunks + c`` holds ``emb_b[k, c*E : (c+1)*E]``
(``chunks = ceil(D / E)``; lanes past D are don't-care, their outputs are for the caller to drop); the
windows, row ``k * beat_stride + b`` holds bytes ``8b .. 8b + 7`` of token k's window (the image packet's
beats as they arrive, ``bpt = ceil(patch_dim / 8)`` beats per token; ``beat_stride`` is ``max_bpt``
rounded up to a power of two, so a row address is the token and the beat side by side), one copy per
pixel slot (each slot reads the beat holding its pixel): no window is ever held in registers or
multiplexed byte by byte.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import EMB_LATENCY, EMB_PIXELS
from dynaspike.formats import EMB_ACC_BITS, FORMATS
from dynaspike.packing import BEAT_BYTES  # a window memory row is one beat of the image packet

from .accumulate import BLOCK_RAM, connect_write, read_ports_sharing_write, write_signature
from .arith import mul, saturate
from .events import EventGenerator
from .loader import log2


def beat_stride(max_patch_dim: int) -> int:
    """Window-memory rows per token: the beats of the largest window, rounded up to a power of two."""
    return 1 << (-(-max_patch_dim // BEAT_BYTES) - 1).bit_length()


def window_layout(max_tokens: int) -> data.StructLayout:
    """The start of one token: its index (its window must be in the window memory)."""
    return data.StructLayout({"token": range(max_tokens)})


def embed_out_layout(max_tokens: int, chunks: int, lanes: int, fmt=FORMATS) -> data.StructLayout:
    """E channels ``chunk * lanes ...`` of ``token``, in residual units."""
    return data.StructLayout({"token": range(max_tokens), "chunk": range(max(chunks, 1)),
                              "e": data.ArrayLayout(signed(fmt.res_bits), lanes)})


class Embedding(wiring.Component):
    """Multiply token windows with the embedding weights, ``lanes`` channels per cycle.

    Contract (``dynaspike.cycles.embed_cycles``): a token whose window has ``nnz`` non-zero pixels costs
    ``chunks * embed_beats(nnz)`` cycles (two multiply-accumulates of ``lanes`` channels per cycle, on the
    two lowest-and-highest non-zero pixels left: weight rows i and j, one per port of the block RAMs), tokens
    follow each other without a bubble; the token's window (all of its ``bpt`` beats) must be written
    before its index is offered on ``i``. The output of (token, chunk) is valid
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
        if pixels != 2:
            raise ValueError(f"Embedding pixels must be 2 (the event generator pairs the lowest and the highest "
                             f"non-zero pixel), got {pixels}")
        self.lanes, self.max_tokens, self.max_patch_dim, self.fmt = lanes, max_tokens, max_patch_dim, fmt
        self.pixels, self.latency = pixels, EMB_LATENCY
        self.max_chunks = -(-max_dim // lanes)
        self.w_rows = self.max_chunks * max_patch_dim
        self.b_rows = max_tokens * self.max_chunks
        self.w_shape = data.ArrayLayout(signed(fmt.emb_weight_bits), lanes)
        self.b_shape = data.ArrayLayout(signed(EMB_ACC_BITS), lanes)
        self.max_bpt = -(-max_patch_dim // BEAT_BYTES)
        self.beat_stride = beat_stride(max_patch_dim)
        self.pix_rows = max_tokens * self.beat_stride
        super().__init__({
            "i": In(stream.Signature(window_layout(max_tokens))),
            "o": Out(stream.Signature(embed_out_layout(max_tokens, self.max_chunks, lanes, fmt))),
            "chunks": In(range(self.max_chunks + 1)),
            "patch_dim": In(range(max_patch_dim + 1)),
            "bpt": In(range(self.max_bpt + 1)),       # beats per window of the loaded model
            "pix_wr": In(write_signature(self.pix_rows, 8 * BEAT_BYTES)),
            "pix_nonzero": Out(range(BEAT_BYTES + 1)),  # non-zero window pixels in the beat pix_wr writes
            "w_wr": In(write_signature(self.w_rows, self.w_shape, granules)),
            "b_wr": In(write_signature(self.b_rows, self.b_shape, granules)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, E, K = self.fmt, self.lanes, self.pixels
        S, nbits = self.beat_stride, 8 * BEAT_BYTES
        m.submodules.wmem = wmem = Memory(shape=self.w_shape, depth=self.w_rows, init=[], attrs=BLOCK_RAM)
        m.submodules.bmem = bmem = Memory(shape=self.b_shape, depth=self.b_rows, init=[], attrs=BLOCK_RAM)
        connect_write(m, bmem, self.b_wr)
        b_rd = bmem.read_port()
        p_rds = []
        for k in range(K):   # one copy of the windows per pixel slot: the image writes both
            m.submodules[f"pmem{k}"] = pmem = Memory(shape=nbits, depth=self.pix_rows, init=[], attrs=BLOCK_RAM)
            connect_write(m, pmem, self.pix_wr)
            p_rds.append(pmem.read_port())

        # ---- the non-zero pixels of each window: a bit per pixel, written with the beat; pixels past
        # patch_dim (the last beat's padding, which is never trusted) are zero
        m.submodules.nzm = nzm = Memory(shape=S * BEAT_BYTES, depth=self.max_tokens, init=[])
        nz_w = nzm.write_port(granularity=BEAT_BYTES)
        wr_beat = self.pix_wr.addr[:log2(S)] if S > 1 else 0
        pd_beat, pd_byte = self.patch_dim >> log2(BEAT_BYTES), self.patch_dim[:log2(BEAT_BYTES)]
        nz_byte = Cat(*((self.pix_wr.data.word_select(j, fmt.pixel_bits) != 0)
                        & ((wr_beat < pd_beat) | ((wr_beat == pd_beat) & (j < pd_byte))) for j in range(BEAT_BYTES)))
        m.d.comb += self.pix_nonzero.eq(sum(nz_byte))
        m.d.comb += [nz_w.addr.eq(self.pix_wr.addr >> log2(S)), nz_w.data.eq(nz_byte.replicate(S)),
                     nz_w.en.eq(Mux(self.pix_wr.en, 1 << wr_beat, 0))]
        nz_r = nzm.read_port(domain="comb")
        # beats past the model's bpt hold an earlier model's windows: masked
        in_window = Cat(*((b < self.bpt).replicate(BEAT_BYTES) for b in range(S)))
        # words of 16 pixels: the cheapest generator for a window (yosys: 591 LUT at 128 bits, 762 with words of 32)
        eg = m.submodules.events = EventGenerator(S * BEAT_BYTES, min(16, S * BEAT_BYTES))
        m.d.comb += [nz_r.addr.eq(self.i.payload.token), eg.bits.eq(nz_r.data & in_window)]

        advance = ~self.o.valid | self.o.ready  # the whole pipeline holds while an output waits
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # ---- stage 0: walk (chunk, the window's non-zero pixels two at a time) of the working token
        busy = Signal()
        first = Signal()                           # the pair is the chunk's first
        token = Signal(range(self.max_tokens))
        c = Signal(range(self.max_chunks + 1))
        w_chunk = Signal(range(self.w_rows + 1))   # row of input 0 of chunk c: c * patch_dim
        b_base = Signal(range(self.b_rows + 1))
        last_c = c == self.chunks - 1
        final = busy & eg.last & last_c            # the token's last multiply is issued now
        m.d.comb += self.i.ready.eq(advance & (~busy | final))
        accept = self.i.valid & self.i.ready
        m.d.comb += [eg.load.eq(accept), eg.step.eq(advance & busy), eg.rewind.eq(advance & busy & eg.last & ~last_c)]
        # Block RAM reads only what a multiply needs (a disabled port holds its data): a present slot's
        # window beat and weight row, the chunk's bias with its first pair
        m.d.comb += [b_rd.en.eq(advance & busy & first), b_rd.addr.eq(b_base + c)]
        for k, rd in enumerate(p_rds):              # the beat holding pixel idx[k]: the token, then the beat
            m.d.comb += [rd.en.eq(advance & busy & eg.present[k]),
                         rd.addr.eq(Cat(eg.idx[k][log2(BEAT_BYTES):], token))]
        # weight rows idx[0] and idx[1] of the chunk (a slot without a pixel reads any row: its pixel is 0)
        w_rds = read_ports_sharing_write(m, wmem, self.w_wr, [w_chunk + eg.idx[k] for k in range(K)],
                                         [advance & busy & eg.present[k] for k in range(K)])

        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "present": K,
                                       "byte": data.ArrayLayout(range(BEAT_BYTES), K),
                                       "token": range(self.max_tokens), "chunk": range(max(self.max_chunks, 1))}))
        with m.If(advance):
            m.d.sync += [s1.valid.eq(busy), s1.first.eq(first), s1.last.eq(eg.last), s1.present.eq(eg.present),
                         s1.token.eq(token), s1.chunk.eq(c)]
            m.d.sync += [s1.byte[k].eq(eg.idx[k][:log2(BEAT_BYTES)]) for k in range(K)]
            with m.If(busy):
                m.d.sync += first.eq(0)
                with m.If(eg.last):
                    m.d.sync += [first.eq(1), c.eq(c + 1), w_chunk.eq(w_chunk + self.patch_dim)]
                with m.If(final):
                    m.d.sync += busy.eq(0)
            with m.If(accept):
                m.d.sync += [busy.eq(1), first.eq(1), token.eq(self.i.payload.token), c.eq(0), w_chunk.eq(0),
                             b_base.eq(mul(self.i.payload.token, self.chunks))]

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
            for k, (prod, rd, p_rd) in enumerate(zip(prods, w_rds, p_rds)):
                pixel = Mux(s1.present[k], p_rd.data.word_select(s1.byte[k], fmt.pixel_bits), 0)
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
