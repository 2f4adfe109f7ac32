"""The accelerator's timing, in one place: every block's latency and the cycle model.

Plain Python (no Amaranth, no torch), so the compiler imports it without the gateware.
Each block's ``latency`` property returns one of these functions' values (a test checks
that it does), and :func:`layer_cycles` composes the same functions; a deeper PE pipeline
therefore changes the hardware and the prediction together.

Phases of one layer (see :mod:`hwgen.rtl.sequencer`)::

    SETUP   1 cycle: load the layer's descriptor
    WALK    rows + record_latency() cycles: the sequencer reads the first tile's
            receptive fields, one row's record per cycle
    RUN     tiles·P cycles: step k of a tile issued at tile cycle k (P = tile_period())
    FLUSH   until the last tile is drained, post-processed and written, then 1 cycle to
            close the layer

The last step of the last tile is issued in cycle ``setup + (tiles − 1)·P + K − 1`` and
leaves the sequencer, with its job, :func:`issue_latency` cycles later; the job waits
:func:`drain_delay` cycles in the drain, which then reads ``rows·cols``
slots, one per cycle; the last one leaves the drain :func:`drain_latency` cycles later and
post-processing :func:`post_process_latency` cycles after that; the FLUSH state sees the
pipeline idle one cycle later and closes the layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import check_int

__all__ = [
    "LayerCycles",
    "array_latency",
    "buffer_write_latency",
    "drain_delay",
    "drain_latency",
    "drain_reads",
    "drain_sum_latency",
    "feed_latency",
    "issue_latency",
    "layer_cycles",
    "memory_read_latency",
    "pe_latency",
    "post_process_latency",
    "record_latency",
    "tile_period",
]


def memory_read_latency():
    """Cycles from a memory read address to its data (registered read port): 1."""
    return 1


def buffer_write_latency():
    """Cycles from a write presented to the activation buffer to the memories holding it:
    1 (a register in front of the copies' shared write port, which gives the block RAMs'
    write path a cycle of its own).
    The last result of a layer is then written in the cycle FLUSH closes the layer
    (:func:`layer_cycles`), before any read of the next layer or of the unload; a longer
    latency would need FLUSH to wait for it."""
    return 1


def feed_latency():
    """Cycles from the memories' read data to the array's ports: 2. The engine registers
    each row's activation after the padding mask, the weights and the control, so that no
    path runs from a block RAM's output through the mask into a multiplier, and registers
    them once more, so that the placer can put the first register beside the block RAM
    and the second beside the first row's multipliers (with one register, an 8×8 design
    on ECP5 placed it beside the block RAM, 6.2 ns of routing from PE (0, 0)'s
    multiplier, which held the design at 84 MHz)."""
    return 2


def pe_latency(product_stages=0):
    """Cycles from a ``last`` step at a PE's inputs to its sum at ``result``:
    ``1 + product_stages`` (the product is registered ``product_stages`` times, then
    accumulated into the registered sum)."""
    return 1 + check_int(product_stages, "PE product stages", minimum=0)


def array_latency(row, col, pe_lat):
    """Cycles from a tile's ``last`` step at the systolic array's ports to its sum at
    ``result[row][col]``: ``row + col + pe_lat`` (the inputs are skewed one register per
    row and per column)."""
    return row + col + pe_lat


def drain_delay(rows, cols, pe_lat, split=False, pooled=0):
    """Cycles a tile's job waits in the drain before its first slot is read:
    ``memory_read_latency() + feed_latency() + array_latency(rows − 1, cols − 1, pe_lat)
    − 1`` (= ``rows + cols + pe_lat``).

    The job enters in the cycle the tile's last step is issued to the memories (``t``);
    with ``f = memory_read_latency() + feed_latency()`` (3), slot ``(r, c)`` is read in
    cycle ``t + delay + 1 + r·cols + c``, its value sampled by a gate register one cycle
    earlier (on more than one PE). It is final from ``t + f + r + c + pe_lat`` (needs
    ``delay >= f + pe_lat``, worst at ``r = 0``: ``rows + cols >= 3``; a single PE, read
    directly, needs ``delay >= f − 1 + pe_lat``) and the next tile,
    issued ``P >= rows·cols`` cycles later, replaces it at ``t + P + f + r + c + pe_lat``
    (needs ``delay <= rows + cols + f − 3 + pe_lat``, worst at ``r = rows − 1``). The
    drain takes the latest start, so that every slot is read as late as is safe.

    With ``split`` (a fully connected layer whose rows are slices of the reduction, summed
    by the drain) the drain reads column ``c`` of every row at once, in cycle ``t + delay +
    1 + c``: final from ``t + f + rows − 1 + c + pe_lat`` and replaced from ``t + P + f + c
    + pe_lat``, so the delay is the earliest, ``f − 1 + array_latency(rows − 1, 0, pe_lat)``
    (= ``rows + 1 + pe_lat``), and tiles may issue ``P >= rows`` apart
    (:func:`tile_period`).

    With ``pooled = win`` (a convolution whose max-pool windows of ``win`` pixels the drain
    takes, ``win <= cols``, ``rows`` a multiple of ``win``) the drain reads the rows
    ``[g·win, (g+1)·win)`` of column ``c`` at once, in cycle ``t + delay + 1 + g·cols + c``:
    final from ``t + f + (g+1)·win − 1 + c + pe_lat``, so the delay is ``f − 2 + win +
    pe_lat`` (= ``win + 1 + pe_lat``); the next tile replaces row ``g·win`` at ``t + P + f +
    g·win + c + pe_lat``, later than the read for ``P >= (rows / win)·cols``.
    """
    if pooled:
        return memory_read_latency() + feed_latency() - 2 + pooled + pe_lat
    if split:
        return memory_read_latency() + feed_latency() + array_latency(rows - 1, 0, pe_lat) - 1
    return (memory_read_latency() + feed_latency()
            + array_latency(rows - 1, cols - 1, pe_lat) - 1)


def drain_sum_latency(rows):
    """Cycles a split layer's column sum (or a pooled layer's window maximum) adds to the
    drain (see :func:`drain_delay` with ``split`` or ``pooled``): ``1 + ceil(log2(rows))``,
    the register after each row's column multiplexer and one per level of the tree over
    the rows. 0 on one row (nothing to add)."""
    rows = check_int(rows, "Array rows", minimum=1)
    return 0 if rows == 1 else 1 + (rows - 1).bit_length()


def drain_latency():
    """Cycles from a slot's parameter address to the drain's output ``o``: 1 (aligned with
    the parameter memory's read)."""
    return memory_read_latency()


def post_process_latency(scaled=False, stochastic=False):
    """Cycles from the post-processing unit's input to its output: 4 (bias and rounding
    constant; shift; overflow, ReLU or threshold; pooling register), plus 1 when the design
    has per-channel scales (the registered multiplier in front) or stochastic rounding (the
    registered hash of the position in front; it shares the multiplier's stage)."""
    return 4 + int(bool(scaled) or bool(stochastic))


def issue_latency():
    """Cycles from the sequencer deciding a step (or a tile's drain job) to the step, the
    activation buffer's read addresses and the job leaving it: 1 (registered, so that no
    path runs from the reduction counters through the address adders into the block
    RAMs). The drain sees the job as late as the array sees the step, so only the layer's
    length changes."""
    return 1


def record_latency():
    """Cycles from a walk step to the row record it reads entering the sequencer's banks:
    2 (the record table's registered read, then a register, so that no path runs from the
    block RAM's output into the banks' multiplexers). WALK lasts
    ``rows + record_latency()`` cycles, and the next tile's records, read while a tile
    runs, are complete only ``record_latency()`` cycles after its ``rows`` walk steps
    (see :func:`tile_period`)."""
    return 2


def tile_period(k, rows, cols, split=False, pooled=0):
    """``P = max(K, rows·cols, rows + record_latency())``: cycles between tile issues.

    A tile waits for its ``K`` steps, for the drain to read the previous tile's
    ``rows·cols`` results, and for its ``rows`` pixel records, read from the sequencer's
    table during the previous tile, to pass the record's stages (which binds only on
    one-column arrays and on ``1 × 2``). A ``split`` layer's drain reads a tile's ``cols`` column sums, one
    per cycle: ``P = max(K, cols, rows + record_latency())``; a ``pooled`` layer's the
    maxima of its ``rows / pooled`` windows in each column."""
    return max(k, drain_reads(rows, cols, split, pooled), rows + record_latency())


def drain_reads(rows, cols, split=False, pooled=0):
    """Reads the drain makes of a tile, one per cycle: ``rows·cols`` slots, ``cols`` column
    sums of a ``split`` layer, or ``(rows / pooled)·cols`` window maxima of a ``pooled``
    one."""
    if pooled:
        return rows // pooled * cols
    return cols if split else rows * cols


@dataclass(frozen=True)
class LayerCycles:
    """Predicted cycles of one layer, with the overheads split out for the reports.

    Attributes
    ----------
    total : int
        Cycles from the layer's SETUP to the end of its FLUSH (what the hardware counts).
    period : int
        ``P``: cycles between tile issues (:func:`tile_period`).
    compute : int
        ``tiles·K``: cycles the array does useful steps.
    drain_bound : int
        ``tiles·(P − K)``: cycles lost because a tile must wait for the previous drain.
    setup : int
        ``1 + rows + record_latency()``: SETUP and WALK.
    fill_drain : int
        The rest: filling the array and draining the last tile through post-processing.
    """

    total: int
    period: int
    compute: int
    drain_bound: int
    setup: int
    fill_drain: int

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, obj):
        return cls(**{name: int(obj[name]) for name in cls.__dataclass_fields__})


def layer_cycles(k, tiles, rows, cols, pe_lat, post_lat=None, split=False, pooled=0):
    """Predicted :class:`LayerCycles` of a layer of reduction length ``k`` in ``tiles``
    tiles on a ``rows × cols`` array of PEs of latency ``pe_lat``, post-processed with
    latency ``post_lat`` (default :func:`post_process_latency` ``()``)::

        total = 1 + rows + record_latency()   SETUP, WALK
              + (tiles − 1)·P + K             RUN up to the last step's issue
              + issue_latency()               the step leaves the sequencer
              + drain_delay(rows, cols, pe_lat) + rows·cols
              + drain_latency() + post_lat
              + 1                             FLUSH sees idle, closes the layer
                                              (the buffer writes the last result:
                                              buffer_write_latency() = 1)

    A ``split`` layer (``k`` is then a row's slice of the reduction) drains ``cols``
    column sums instead of ``rows·cols`` slots, after :func:`drain_delay` ``(split=True)``,
    and each sum takes :func:`drain_sum_latency` more cycles; a ``pooled`` layer (the
    drain takes the maximum of each pool window of ``pooled`` pixels) likewise drains
    :func:`drain_reads` maxima after :func:`drain_delay` ``(pooled=…)``.
    """
    post_lat = post_process_latency() if post_lat is None else post_lat
    for value, what in ((k, "Reduction length"), (tiles, "Tiles"), (rows, "Array rows"),
                        (cols, "Array columns"), (pe_lat, "PE latency")):
        check_int(value, what, minimum=1)
    period = tile_period(k, rows, cols, split, pooled)
    setup = 1 + rows + record_latency()
    run = (tiles - 1) * period + k
    post_lat = check_int(post_lat, "Post-processing latency", minimum=1)
    reads = drain_reads(rows, cols, split, pooled)
    if split or pooled:
        reads += drain_sum_latency(rows)
    tail = (issue_latency() + drain_delay(rows, cols, pe_lat, split, pooled) + reads
            + drain_latency() + post_lat + 1)
    total = setup + run + tail
    compute = tiles * k
    drain_bound = tiles * (period - k)
    return LayerCycles(total=total, period=period, compute=compute, drain_bound=drain_bound,
                       setup=setup, fill_drain=total - setup - compute - drain_bound)
