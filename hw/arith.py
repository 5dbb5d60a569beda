"""Small arithmetic helpers for control logic."""

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed


def mul(a, b):
    """``a * b`` as shifts and adds, in LUTs.

    For the small products of addressing and configuration (token x rows per token, blocks x block size):
    synthesis maps every ``*`` to a DSP48 slice, and the DSPs are kept for the real multiplies (embedding
    and classifier). ``b`` may be an int constant or a narrow value.
    """
    a = Value.cast(a)
    if isinstance(b, int):
        if b < 0:
            raise ValueError(f"mul takes a non-negative constant, got {b}")
        terms = [a << i for i in range(b.bit_length()) if (b >> i) & 1]
    else:
        b = Value.cast(b)
        terms = [Mux(b[i], a << i, 0) for i in range(len(b))]
    if not terms:
        return Const(0)
    while len(terms) > 1:  # a balanced adder tree: log2(terms) adders deep, not a chain of them
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
    return terms[0]


def saturate(value, bits: int):
    """``value`` (signed) clamped to the signed ``bits``-bit range, as ``bits`` wide.

    It fits iff the bits above ``bits - 1`` all equal the sign: a few LUTs instead of two full-width
    comparators, which matters at P lanes (every residual add and every embedding lane clamps).
    """
    value = Value.cast(value)
    width = len(value)
    if width <= bits:
        return value
    top = value[bits - 1:]
    fits = (top == 0) | (top == (1 << (width - bits + 1)) - 1)
    sign = value[width - 1]
    limit = Mux(sign, Const(-(1 << (bits - 1)), signed(bits)), Const((1 << (bits - 1)) - 1, signed(bits)))
    return Mux(fits, value[:bits].as_signed(), limit)


def prefix_or(bits):
    """Bit ``k``: any of ``bits[0 .. k-1]`` (exclusive prefix OR; ``bits & ~prefix_or(bits)`` is the lowest
    set bit one-hot). Each bit is its own OR tree (two LUT levels up to 36 bits)."""
    n = len(bits)
    return Cat(Const(0, 1), *(bits[:k].any() for k in range(1, n)))[:n]


def _at_least(bits):
    """``(any, two or more, three or more)`` set bits of ``bits``: a balanced tree of flags, log2 deep and free
    of adders (which synthesis would map to carry chains, one per level)."""
    terms = [(Value.cast(bits[k]), Const(0, 1), Const(0, 1)) for k in range(len(bits))]
    while len(terms) > 1:
        nxt = []
        for k in range(0, len(terms), 2):
            if k + 1 == len(terms):
                nxt.append(terms[k])
                continue
            (a1, a2, a3), (b1, b2, b3) = terms[k], terms[k + 1]
            nxt.append((a1 | b1, a2 | b2 | (a1 & b1), a3 | b3 | (a2 & b1) | (a1 & b2)))
        terms = nxt
    return terms[0] if terms else (Const(0, 1),) * 3


def at_most_one(bits):
    """Whether ``bits`` has at most one bit set (``_at_least``'s tree)."""
    return ~_at_least(bits)[1]


def at_most_two(bits):
    """Whether ``bits`` has at most two bits set (``_at_least``'s tree)."""
    return ~_at_least(bits)[2]


def lowest_set(m, bits, name: str):
    """``(index, any)`` of the lowest set bit of ``bits``: a balanced tree of log2(width) levels (a priority
    chain would be width levels deep). ``index`` means nothing while ``any`` is 0."""
    return _first_set(m, bits, name, highest=False)


def highest_set(m, bits, name: str):
    """``(index, any)`` of the highest set bit of ``bits`` (the mirror of ``lowest_set``)."""
    return _first_set(m, bits, name, highest=True)


def _first_set(m, bits, name: str, highest: bool):
    def tree(lo, hi):
        if hi - lo == 1:
            return Const(0, 1), bits[lo]
        mid = (lo + hi + 1) // 2
        (i0, a0), (i1, a1) = tree(lo, mid), tree(mid, hi)
        if highest:
            return Mux(a1, i1 + (mid - lo), i0), a0 | a1
        return Mux(a0, i0, i1 + (mid - lo)), a0 | a1
    idx, any_ = tree(0, len(bits))
    sig = Signal(range(max(len(bits), 2)), name=f"{name}_idx")
    m.d.comb += sig.eq(idx)
    return sig, any_
