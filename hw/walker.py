"""A walker: the tokens of a mask in index order, one per ``next()`` (the sequencer's passes, hw/core.py)."""

from amaranth.hdl import Const, Module, Signal

from .arith import at_most_one, lowest_set


class Walker:
    """The tokens of a mask in index order: ``cur`` is the lowest one left, ``any`` whether there is one,
    ``last`` whether ``cur`` is the final one; ``next()`` drops ``cur``.

    ``cur``, ``any`` and ``last`` are registers, set with the mask that ``load`` or ``next`` writes: the
    priority tree that finds the lowest token sits in front of them, not behind them, so the walker's
    token starts the sequencer's paths (spike-memory reads, the event generators, the LIF row address)
    straight from a flip-flop. ``load(mask)`` and ``next()`` return sync statements; when both are given
    in one cycle, the later one wins, as for any sync assignment. One priority tree is built per distinct
    mask value loaded (the same ``Value`` object shares its tree) and one for ``next``.
    """

    def __init__(self, m, n: int, name: str):
        # The priority trees live in a module of their own: a tree is first built where its mask is first
        # loaded, often inside an FSM state, and its comb output must be driven in every state.
        self.m = m.submodules[f"{name}_trees"] = Module()
        self.n, self.name = n, name
        self.rem = Signal(n, name=f"{name}_rem")              # the tokens left, cur included
        self.cur = Signal(range(max(n, 2)), name=f"{name}_cur")
        self.any = Signal(name=f"{name}_any")
        self.last = Signal(init=1, name=f"{name}_last")       # rem has at most one token
        after = Signal(n, name=f"{name}_after")               # rem without cur
        self.m.d.comb += after.eq(self.rem & ~(Const(1, n) << self.cur))
        self._trees = {}
        self._next = self._set(after, "next")

    def _set(self, mask, tag):
        idx, any_ = lowest_set(self.m, mask, f"{self.name}_{tag}")
        return [self.rem.eq(mask), self.cur.eq(idx), self.any.eq(any_), self.last.eq(at_most_one(mask))]

    def load(self, mask):
        key = id(mask)
        if key not in self._trees:   # keep the mask referenced so that its id stays its own
            self._trees[key] = (mask, self._set(mask, f"ld{len(self._trees)}"))
        return self._trees[key][1]

    def next(self):
        return self._next
