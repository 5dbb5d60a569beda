"""Small arithmetic helpers for control logic."""

from amaranth.hdl import Const, Mux, Value


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
    return sum(terms[1:], terms[0]) if terms else Const(0)
