"""The double-buffered weight tiles of one DDR-mode event pass (issue 11; docs/hardware.md, "DDR mode").

An event pass in DDR mode reads its layer's tiles (``dynaspike.ddr.tiles``: one engine row's bias row,
threshold rows and ``fan_in`` weight rows each) in order from one contiguous range of the weight buffer, and
walks every active token over each tile. ``TilePass`` keeps two tiles on chip: it sends the tile loader
(``hw.tile_loader.TileLoader``) the command for tile ``i`` into bank ``i % 2`` as soon as the consumer is
done with tile ``i - 2``, so a tile loads while the engine reads the one before.

Banks: bank ``b``'s weight rows start at ``w0 + b * bank_rows``, its bias row is ``b0 + b`` and its two
threshold rows ``th0 + 2 b`` and ``th0 + 2 b + 1``.

Protocol:

- ``start`` (a stream of ``pass_layout``) takes a pass while ``busy`` is low: the byte address of its first
  tile, its number of tiles (>= 1), their ``fan_in`` and whether they carry threshold rows.
- ``cmd`` goes to the tile loader's ``cmd``; ``loaded`` is the tile loader's ``done`` (one pulse per tile).
- ``ready`` holds while the current tile (``index``) is in its bank: ``w_base``, ``b_row`` and ``th_row``
  say where, ``last`` whether it is the pass's last. The consumer raises ``next`` in the cycle of its last
  read of the tile (the bank is free from the next cycle); after the last tile ``busy`` falls.

Timing (``dynaspike.ddr.tile_pass_schedule`` gives it exactly): the pass is taken in cycle ``s``; tile 0 is
offered to the loader from ``s + 1``, tile 1 from ``s + 2``, tile ``i >= 2`` from the cycle after ``next``
for tile ``i - 2``. Tile ``i`` is ``ready`` from the cycle after its last beat (and after ``next`` for tile
``i - 1``).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dynaspike.cycles import ACC_ROWS
from dynaspike.ddr import BEAT_BYTES, SIDE_BITS
from dynaspike.formats import FORMATS

from .params import check_ints
from .tile_loader import tile_command_layout


def pass_layout(max_fan_in: int, max_tiles: int, addr_bits: int = 32) -> data.StructLayout:
    """A DDR event pass's tiles: the first one's byte address, how many, their fan-in, threshold rows or not."""
    return data.StructLayout({"addr": addr_bits, "tiles": range(max_tiles + 1), "fan_in": range(max_fan_in + 1),
                              "thresholds": 1})


class TilePass(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    lanes : int
        P (a tile's rows are ``ACC_ROWS * P`` lanes).
    max_fan_in, max_tiles : int
        The largest tile (a bank's weight rows) and the most tiles a pass has.
    weight_rows, bias_rows, th_rows : int
        The depths of the memories the tile loader writes (as ``TileLoader``'s).
    w0, b0, th0 : int
        Where bank 0's weight, bias and threshold rows start (bank 1's follow them).
    """

    def __init__(self, lanes: int, max_fan_in: int, max_tiles: int, weight_rows: int, bias_rows: int,
                 th_rows: int, *, w0: int = 0, b0: int = 0, th0: int = 0, addr_bits: int = 32):
        check_ints("TilePass", lanes=(lanes, 8), max_fan_in=(max_fan_in, 1), max_tiles=(max_tiles, 1), w0=(w0, 0),
                   b0=(b0, 0), th0=(th0, 0))
        for name, need, depth in (("weight_rows", w0 + 2 * max_fan_in, weight_rows), ("bias_rows", b0 + 2, bias_rows),
                                  ("th_rows", th0 + 2 * ACC_ROWS, th_rows)):
            if depth < need:
                raise ValueError(f"TilePass: two banks need {name} >= {need}, got {depth}")
        self.P, self.A = lanes, ACC_ROWS * lanes
        self.max_fan_in, self.max_tiles, self.w0, self.b0, self.th0 = max_fan_in, max_tiles, w0, b0, th0
        self.addr_bits = addr_bits
        cmd = tile_command_layout(max_fan_in, weight_rows, bias_rows, th_rows, addr_bits)
        super().__init__({
            "start": In(stream.Signature(pass_layout(max_fan_in, max_tiles, addr_bits))),
            "cmd": Out(stream.Signature(cmd)),
            "loaded": In(1),
            "ready": Out(1), "index": Out(range(max_tiles)), "last": Out(1),
            "w_base": Out(range(weight_rows)), "b_row": Out(range(bias_rows)), "th_row": Out(range(th_rows)),
            "next": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = Signal(self.start.payload.shape())       # the pass being read
        count = range(self.max_tiles + 1)
        issued, loaded, used = Signal(count), Signal(count), Signal(count)   # tiles sent, in their bank, done
        addr = Signal(self.addr_bits)                  # the next tile's byte address
        tile_bytes = Signal(self.addr_bits)
        side_beats = self.A * SIDE_BITS // (8 * BEAT_BYTES)                       # a bias row's beats
        w_beats = self.A * FORMATS.weight_bits // (8 * BEAT_BYTES)               # a weight row's
        busy = self.busy
        s = self.start.payload

        m.d.comb += self.start.ready.eq(~busy)
        with m.If(self.start.valid & ~busy):
            m.d.sync += [p.eq(s), busy.eq(1), issued.eq(0), loaded.eq(0), used.eq(0), addr.eq(s.addr),
                         tile_bytes.eq((Mux(s.thresholds, 2 * side_beats, side_beats) + s.fan_in * w_beats)
                                       * BEAT_BYTES)]

        def bank_rows(tile_bit):
            return (self.w0 + Mux(tile_bit, self.max_fan_in, 0), self.b0 + tile_bit, self.th0 + (tile_bit << 1))

        # the next tile's command: while it has a free bank (the consumer is done with the tile two before)
        c = self.cmd.payload
        w_base, b_row, th_row = bank_rows(issued[0])
        m.d.comb += [self.cmd.valid.eq(busy & (issued != p.tiles) & (issued - used < 2)),
                     c.addr.eq(addr), c.fan_in.eq(p.fan_in), c.thresholds.eq(p.thresholds),
                     c.w_base.eq(w_base), c.b_row.eq(b_row), c.th_row.eq(th_row)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [issued.eq(issued + 1), addr.eq(addr + tile_bytes)]
        with m.If(self.loaded & busy):
            m.d.sync += loaded.eq(loaded + 1)

        # the current tile
        w_base, b_row, th_row = bank_rows(used[0])
        m.d.comb += [self.ready.eq(busy & (loaded != used)), self.index.eq(used), self.last.eq(used + 1 == p.tiles),
                     self.w_base.eq(w_base), self.b_row.eq(b_row), self.th_row.eq(th_row)]
        with m.If(self.next & self.ready):
            m.d.sync += used.eq(used + 1)
            with m.If(self.last):
                m.d.sync += busy.eq(0)
        return m
