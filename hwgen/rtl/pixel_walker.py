"""The pixel walker: output pixels in pool-window order, as receptive-field corners."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..errors import check_positive
from .layouts import walker_config_layout

__all__ = ["PixelWalker", "walk_bounds"]


def walk_bounds(walk_len, pool, pw, count_width):
    """``(restart_last, restart_at)`` of a walk, as the :class:`PixelWalker` samples them
    with ``restart``: per loop (``index``, ``dx``, ``dy``, ``px``) whether its bound is 1,
    and the bound minus 2 modulo ``2**(count_width + 1)`` (the counter's value one step
    before its last; a bound of 1 gives a value the counter never takes)."""
    bounds = {"index": walk_len, "dx": pool, "dy": pool, "px": pw}
    return ({name: int(b == 1) for name, b in bounds.items()},
            {name: (b - 2) % (1 << (count_width + 1)) for name, b in bounds.items()})


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
    yet: a layer's configuration may arrive in the cycle after its restart. The loops'
    terminal counts are registered flags; the ones of the first pixel come with
    ``restart`` in ``restart_last``, and the loops' bounds (minus 2) in ``restart_at``
    (from constants the user knows before ``cfg``), so that no adder or compare of ``cfg``
    lies in front of a step and each flag is one equality compare.

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
    restart_last : In(StructLayout({"index": 1, "dx": 1, "dy": 1, "px": 1}))
        Sampled with ``restart``: ``walk_len == 1``, ``pool == 1``, ``pool == 1`` and
        ``pw == 1`` of the walk restarted into.
    restart_at : In(StructLayout({"index": count_width + 1, "dx": …, "dy": …, "px": …}))
        Sampled with ``restart``: ``walk_len − 2``, ``pool − 2``, ``pool − 2`` and
        ``pw − 2`` modulo ``2**(count_width + 1)`` (:func:`walk_bounds`).
    step : In(1)
        Advance to the next pixel at the next edge.
    iy, ix, base : Out(signed(coord_width))
        The current pixel's corner and address offset.
    valid : Out(1)
        The current pixel is a real one (its index is below ``npix``).
    off_iy, off_ix, off_base : Out(signed(coord_width))
        The same as offsets from the start corner (registers: ``iy = cfg.start_iy +
        off_iy``), for a user that folds the start into constants of its own.

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
            "restart_last": In(data.StructLayout({"index": 1, "dx": 1, "dy": 1, "px": 1})),
            "restart_at": In(data.StructLayout({name: unsigned(count_width + 1)
                                                for name in ("index", "dx", "dy", "px")})),
            "step": In(1),
            "iy": Out(signed(coord_width)),
            "ix": Out(signed(coord_width)),
            "base": Out(signed(coord_width)),
            "valid": Out(1),
            "off_iy": Out(signed(coord_width)),
            "off_ix": Out(signed(coord_width)),
            "off_base": Out(signed(coord_width)),
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
            m.d.comb += [getattr(self, axis).eq(cfg[f"start_{axis}"] + offset),
                         getattr(self, f"off_{axis}").eq(offset)]
        m.d.comb += self.valid.eq(index < cfg.npix)

        def advance(level):
            return [offset.eq(offset + cfg[f"d{level}_{axis}"])
                    for axis, offset in offsets.items()]

        # Terminal counts as registered flags, each computed from the next value (see the
        # sequencer): ``*_last`` is ``x + 1 == bound`` of the current ``x``; after a restart
        # they are ``restart_last``.
        names = ("index", "dx", "dy", "px")
        flags = {name: Signal(name=f"{name}_last") for name in names}
        ones = {name: Signal(name=f"{name}_one") for name in names}
        at = {name: Signal(self._count_width + 1, name=f"{name}_at") for name in names}
        counters = {"index": index, "dx": dx, "dy": dy, "px": px}

        def set_counter(name, step):
            """``counter <= counter + 1`` (``step``) or ``0``, with its flag."""
            counter = counters[name]
            if not step:
                return [counter.eq(0), flags[name].eq(ones[name])]
            return [counter.eq(counter + 1), flags[name].eq(counter == at[name])]

        with m.If(self.restart):
            m.d.sync += [index.eq(0), dx.eq(0), dy.eq(0), px.eq(0)]
            m.d.sync += [flags[name].eq(self.restart_last[name]) for name in flags]
            m.d.sync += [ones[name].eq(self.restart_last[name]) for name in flags]
            m.d.sync += [at[name].eq(self.restart_at[name]) for name in flags]
            m.d.sync += [offset.eq(0) for offset in offsets.values()]
        with m.Elif(self.step):
            with m.If(flags["index"]):
                m.d.sync += [*set_counter("index", 0), *set_counter("dx", 0),
                             *set_counter("dy", 0), *set_counter("px", 0)]
                m.d.sync += [offset.eq(0) for offset in offsets.values()]
            with m.Elif(~flags["dx"]):
                m.d.sync += [*set_counter("index", 1), *set_counter("dx", 1), *advance(0)]
            with m.Elif(~flags["dy"]):
                m.d.sync += [*set_counter("index", 1), *set_counter("dx", 0),
                             *set_counter("dy", 1), *advance(1)]
            with m.Elif(~flags["px"]):
                m.d.sync += [*set_counter("index", 1), *set_counter("dx", 0),
                             *set_counter("dy", 0), *set_counter("px", 1), *advance(2)]
            with m.Else():
                m.d.sync += [*set_counter("index", 1), *set_counter("dx", 0),
                             *set_counter("dy", 0), *set_counter("px", 0), *advance(3)]
        return m
