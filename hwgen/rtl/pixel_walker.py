"""The pixel walker: output pixels in pool-window order, as receptive-field corners."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import check_positive
from .layouts import walker_config_layout

__all__ = ["PixelWalker"]


class PixelWalker(wiring.Component):
    """Visit a layer's output pixels in pool-window order, one per ``step``.

    For each pixel the walker gives the input coordinates of its receptive field's corner
    ``(iy, ix)`` (negative inside the zero padding) and the address offset
    ``base = iy·W + ix``, using only adders: four nested loop levels (``dx`` and ``dy``
    inside a ``pool × pool`` window, then the window column and row) each add their own
    steps from ``cfg``, which :func:`hwgen.compiler.walk_deltas` computes. The golden model
    is :func:`hwgen.golden.blocks.pixel_walker`. After ``walk_len`` steps the walker starts over,
    so it can run a whole channel tile ahead of the array; ``valid`` is low for the pixels
    past ``npix`` that fill a last, partial tile.

    The state is held as offsets from the start corner, so ``restart`` needs no ``cfg``
    yet: a layer's configuration may arrive in the same cycle as its restart.

    Parameters
    ----------
    coord_width : int
        Bits of the signed coordinates and offsets.
    count_width : int
        Bits of the unsigned counts.

    Members
    -------
    cfg : In(walker_config_layout(coord_width, count_width))
        The layer's walk; must be steady while stepping.
    restart : In(1)
        Go back to the first pixel at the next edge (takes priority over ``step``).
    step : In(1)
        Advance to the next pixel at the next edge.
    iy, ix, base : Out(signed(coord_width))
        The current pixel's corner and address offset.
    valid : Out(1)
        The current pixel is a real one (its index is below ``npix``).

    Attributes
    ----------
    latency : int
        Cycles from ``step`` to the outputs describing the pixel.
    """

    def __init__(self, coord_width, count_width):
        self._coord_width = check_positive(coord_width, "Walker coordinate width")
        self._count_width = check_positive(count_width, "Walker count width")
        super().__init__({
            "cfg": In(walker_config_layout(coord_width, count_width)),
            "restart": In(1),
            "step": In(1),
            "iy": Out(signed(coord_width)),
            "ix": Out(signed(coord_width)),
            "base": Out(signed(coord_width)),
            "valid": Out(1),
        })

    @property
    def latency(self):
        """0: the outputs describe the current pixel; ``step`` moves them at the next edge
        (:func:`hwgen.timing.pixel_walker_latency`)."""
        return timing.pixel_walker_latency()

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        offsets = {axis: Signal(signed(self._coord_width), name=f"off_{axis}")
                   for axis in ("iy", "ix", "base")}
        dx, dy, px, index = (Signal(unsigned(self._count_width), name=name)
                             for name in ("dx", "dy", "px", "index"))
        for axis, offset in offsets.items():
            m.d.comb += getattr(self, axis).eq(cfg[f"start_{axis}"] + offset)
        m.d.comb += self.valid.eq(index < cfg.npix)

        def advance(level):
            return [offset.eq(offset + cfg[f"d{level}_{axis}"])
                    for axis, offset in offsets.items()]

        with m.If(self.restart | (self.step & (index + 1 == cfg.walk_len))):
            m.d.sync += [index.eq(0), dx.eq(0), dy.eq(0), px.eq(0)]
            m.d.sync += [offset.eq(0) for offset in offsets.values()]
        with m.Elif(self.step):
            m.d.sync += index.eq(index + 1)
            with m.If(dx + 1 < cfg.pool):
                m.d.sync += [dx.eq(dx + 1), *advance(0)]
            with m.Elif(dy + 1 < cfg.pool):
                m.d.sync += [dx.eq(0), dy.eq(dy + 1), *advance(1)]
            with m.Elif(px + 1 < cfg.pw):
                m.d.sync += [dx.eq(0), dy.eq(0), px.eq(px + 1), *advance(2)]
            with m.Else():
                m.d.sync += [dx.eq(0), dy.eq(0), px.eq(0), *advance(3)]
        return m
