"""A walker: the tokens of a mask in index order, one per ``next()`` (the sequencer's passes, hw/core.py)."""

from amaranth.hdl import Signal

from .arith import lowest_set


class Walker:
    """The tokens of a mask in index order: ``cur`` (comb) is the lowest one left; ``next()`` drops it."""

    def __init__(self, m, n: int, name: str):
        self.rem = Signal(n, name=f"{name}_rem")
        self.cur, self.any = lowest_set(m, self.rem, name)
        self.last = (self.rem & (self.rem - 1)) == 0  # cur is the final token

    def load(self, mask):
        return self.rem.eq(mask)

    def next(self):
        return self.rem.eq(self.rem & (self.rem - 1))

