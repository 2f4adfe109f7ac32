"""Golden models of the accelerator's datapath blocks, in exact int64 numpy.

Each function is named after the block it specifies (:func:`pe_mac` for
:class:`hwgen.rtl.pe_mac.PEMac`, :func:`pe_shift` for :class:`hwgen.rtl.pe_shift.PEShift`,
:func:`pe_xnor` for :class:`hwgen.rtl.pe_xnor.PEXnor`, :func:`systolic_array` for
:class:`hwgen.rtl.systolic_array.SystolicArray`, :func:`post_process` and
:func:`max_pool_stream` for :class:`hwgen.rtl.post_process.PostProcess`,
:func:`pixel_walker` for the records of :mod:`hwgen.rtl.sequencer`, :func:`drain` for
:class:`hwgen.rtl.drain.Drain`, :func:`weight_lookup` for
:class:`hwgen.rtl.weight_lookup.WeightLookup`). The block tests
compare the hardware against these functions with ``assert_array_equal``; the compiler's
documentation uses them to state what each block computes.
"""

import numpy as np

from ..errors import FormatError, ShapeError
from ..numerics import QFormat, requantize

__all__ = ["drain", "max_pool_stream", "pe_mac", "pe_shift", "pe_xnor", "pixel_walker",
           "post_process", "systolic_array", "weight_lookup", "wrap_signed"]


def wrap_signed(x, width):
    """``x`` (int64) reduced to a ``width``-bit two's complement integer (``width <= 64``)."""
    x = np.asarray(x, dtype=np.int64)
    if width >= 64:
        return x
    mask = (np.int64(1) << np.int64(width)) - 1
    sign = np.int64(1) << np.int64(width - 1)
    return ((x & mask) ^ sign) - sign


def pe_mac(a_seq, w_seq, ctl_seq, acc_width=64, product_stages=0, overflow="wrap"):
    """Cycle-level reference of one MAC processing element.

    Step ``t`` presents ``a_seq[t]``, ``w_seq[t]`` and ``ctl_seq[t] = (valid, last)``
    at the PE's inputs; at the clock edge that ends the step, when ``valid``,
    ``acc <= bound(acc + a*w)``, or, when also ``last``, ``result`` loads that sum and
    ``acc`` returns to 0 (so the next step starts the next dot product). Both registers
    start at 0; ``bound`` is ``overflow`` at ``acc_width`` bits
    (``"wrap"``: the low bits, two's complement; ``"saturate"``: clamped to the signed
    range, the sum of the exact product), after every addition as
    :func:`hwgen.golden.network.narrow_dot` specifies. With
    ``product_stages = S`` the product and the control are registered ``S`` times first, so
    every step takes effect ``S`` cycles later (the PE's latency is ``1 + S``).

    Parameters
    ----------
    a_seq, w_seq : array_like of int, shape (N,)
        Activations and weights of each step.
    ctl_seq : array_like of int, shape (N, 2)
        ``(valid, last)`` of each step.
    acc_width : int
        Width of the accumulator (and of ``result``).
    product_stages : int
        Pipeline registers on the product.
    overflow : str
        ``"wrap"`` or ``"saturate"``.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        ``results[t]``: the value of ``result`` in the cycle after step ``t``.
    """
    a = np.asarray(a_seq, dtype=np.int64)
    w = np.asarray(w_seq, dtype=np.int64)
    ctl = np.asarray(ctl_seq, dtype=np.int64).reshape(-1, 2)
    if not (a.shape == w.shape == (len(ctl),)):
        raise ShapeError(f"PE streams must have one length, not {a.shape!r}, {w.shape!r} and "
                         f"{ctl.shape!r}")
    return _accumulate(a * w, ctl, acc_width, product_stages, overflow)


def _accumulate(products, ctl, acc_width, product_stages, overflow="wrap"):
    """The accumulate/result behaviour every PE kind shares (see :func:`pe_mac`)."""
    if overflow not in ("wrap", "saturate"):
        raise FormatError(f"PE overflow must be 'wrap' or 'saturate', not {overflow!r}")
    n = len(products)
    acc = np.int64(0)
    result = np.int64(0)
    results = np.zeros(n, dtype=np.int64)
    s = product_stages
    # The pipeline starts empty: s idle steps in front, the last s steps not yet applied.
    products = np.asarray(products, dtype=np.int64)
    if overflow == "wrap":
        products = wrap_signed(products, acc_width)
        bound = wrap_signed
    else:
        lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1

        def bound(x, _width):
            return np.int64(min(max(int(x), lo), hi))
    prods = np.concatenate([np.zeros(s, dtype=np.int64), products])[:n]
    ctl = np.concatenate([np.zeros((s, 2), dtype=np.int64), ctl])[:n]
    for t, (valid, last) in enumerate(ctl):
        if valid:
            total = bound(acc + prods[t], acc_width)
            acc = total
            if last:
                result, acc = total, np.int64(0)
        results[t] = result
    return results


def pe_shift(a_seq, zero_seq, sign_seq, code_seq, ctl_seq, acc_width=64, product_stages=0,
             overflow="wrap"):
    """Cycle-level reference of one shift processing element
    (:class:`hwgen.rtl.pe_shift.PEShift`).

    The product of step ``t`` is ``0`` when ``zero_seq[t]``, else ``a << code`` negated when
    ``sign_seq[t]``; accumulation (with ``overflow``), ``result`` and the pipeline are
    those of :func:`pe_mac`.

    Parameters
    ----------
    a_seq : array_like of int, shape (N,)
        Activations.
    zero_seq, sign_seq, code_seq : array_like of int, shape (N,)
        The weight fields of each step.
    ctl_seq : array_like of int, shape (N, 2)
        ``(valid, last)`` of each step.
    acc_width, product_stages : int
        As for :func:`pe_mac`.
    overflow : str
        As for :func:`pe_mac`.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
    """
    a = np.asarray(a_seq, dtype=np.int64)
    zero, sign, code = (np.asarray(v, dtype=np.int64) for v in (zero_seq, sign_seq, code_seq))
    ctl = np.asarray(ctl_seq, dtype=np.int64).reshape(-1, 2)
    if not (a.shape == zero.shape == sign.shape == code.shape == (len(ctl),)):
        raise ShapeError(f"PE streams must have one length, not {a.shape!r}, {zero.shape!r}, "
                         f"{sign.shape!r}, {code.shape!r} and {ctl.shape!r}")
    if np.any((code < 0) | (code > 62)):
        raise FormatError(f"Shift codes must be in 0..62, not {code!r}")
    if overflow == "wrap":
        # Shifting left then wrapping equals wrapping the exact product: only the low bits
        # count.
        shifted = wrap_signed(a << np.minimum(code, acc_width), acc_width)
    else:
        shifted = a << code
    prods = np.where(zero != 0, 0, np.where(sign != 0, -shifted, shifted))
    return _accumulate(prods, ctl, acc_width, product_stages, overflow)


def pe_xnor(a_seq, mask_seq, w_seq, ctl_seq, p, acc_width=64, product_stages=0):
    """Cycle-level reference of one XNOR/popcount processing element
    (:class:`hwgen.rtl.pe_xnor.PEXnor`).

    Step ``t`` carries ``p`` packed binary activations ``a_seq[t]`` (bit ``i`` set: +1),
    their valid mask ``mask_seq[t]`` and ``p`` packed weights ``w_seq[t]``; its product is
    ``2·popcount(~(a ^ w) & mask) − popcount(mask)``, the dot product of the valid ±1
    positions (a masked position contributes 0, like the golden model's zero padding).
    Accumulation, ``result`` and the pipeline are those of :func:`pe_mac`.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
    """
    a, mask, w = (np.asarray(v, dtype=object) for v in (a_seq, mask_seq, w_seq))
    ctl = np.asarray(ctl_seq, dtype=np.int64).reshape(-1, 2)
    if not (a.shape == mask.shape == w.shape == (len(ctl),)):
        raise ShapeError(f"PE streams must have one length, not {a.shape!r}, {mask.shape!r}, "
                         f"{w.shape!r} and {ctl.shape!r}")
    full = (1 << p) - 1
    prods = np.array([2 * (~(int(x) ^ int(y)) & int(v) & full).bit_count()
                      - (int(v) & full).bit_count() for x, v, y in zip(a, mask, w)],
                     dtype=np.int64)
    return _accumulate(prods, ctl, acc_width, product_stages)


def systolic_array(A, W):
    """Exact ``A @ W`` in int64: what ``result[r][c]`` holds after a tile.

    Parameters
    ----------
    A : array_like of int, shape (rows, K)
        Activation tile; row ``r`` streams into array row ``r``, step ``k`` is ``A[:, k]``.
    W : array_like of int, shape (K, cols)
        Weight tile; column ``c`` streams into array column ``c``, step ``k`` is ``W[k, :]``.

    Returns
    -------
    numpy.ndarray of int64, shape (rows, cols)
    """
    A = np.asarray(A, dtype=np.int64)
    W = np.asarray(W, dtype=np.int64)
    if A.ndim != 2 or W.ndim != 2 or A.shape[1] != W.shape[0]:
        raise ShapeError(f"Tiles must be (rows, K) and (K, cols), not {A.shape!r} and "
                         f"{W.shape!r}")
    # Integer matmul in numpy is exact (no BLAS); the explicit sum keeps it obviously so.
    return (A[:, :, None] * W[None, :, :]).sum(axis=1, dtype=np.int64)


def post_process(acc, bias, shift, fmt, rounding="nearest_even", overflow="saturate",
                 relu=False, scale=None, binary=False, flip=0, random=None):
    """Bias, requantize, overflow and ReLU of the post-processing unit (no pooling).

    ``y = requantize(acc + bias, from_frac=shift, to_fmt=QFormat(fmt.width, 0, fmt.signed),
    rounding, overflow)``, then ``max(0, y)`` when ``relu``. ``shift`` is the whole shift,
    ``F_acc - F_out`` (positive: right with rounding; negative: left, exact); only the
    width and signedness of ``fmt`` matter. With ``scale``, ``acc·scale`` replaces ``acc``
    (the bias is then at the scaled binary point). With ``binary`` the result is instead
    ``+1`` where ``acc·scale + bias >= 0`` (``<= 0`` where ``flip``), else ``−1``: the
    threshold compare of a binary output with ``bias = −threshold`` (``shift``, ``fmt``,
    the modes and ``relu`` are then ignored). Stochastic rounding takes the random values
    ``random`` (:func:`hwgen.numerics.stochastic_random` of each value's position).

    Parameters
    ----------
    acc, bias, shift : array_like of int
        Broadcastable against each other; ``bias`` is at the accumulator's binary point.
    fmt : QFormat
        Output format.
    rounding, overflow : str
        Modes of :func:`hwgen.numerics.requantize`.
    relu : bool

    Returns
    -------
    numpy.ndarray of int64
    """
    if not isinstance(fmt, QFormat):
        raise FormatError(f"Post-processing output format must be a QFormat, not {fmt!r}")
    acc, bias, shift = np.broadcast_arrays(np.asarray(acc, dtype=np.int64),
                                           np.asarray(bias, dtype=np.int64),
                                           np.asarray(shift, dtype=np.int64))
    if scale is not None:
        acc = acc * np.asarray(scale, dtype=np.int64)
    if binary:
        x = acc + bias
        return np.where(np.asarray(flip, dtype=bool), x <= 0, x >= 0).astype(np.int64) * 2 - 1
    y = requantize(acc + bias, shift, QFormat(fmt.width, 0, fmt.signed), rounding, overflow,
                   random)
    if relu:
        y = np.maximum(y, 0)
    return np.asarray(y, dtype=np.int64)


def max_pool_stream(values, col, pool_first, pool_last, cols):
    """Running per-column maximum of the post-processing unit's pooling stage.

    For each item ``t`` in order: ``m[col[t]] = values[t] if pool_first[t] else
    max(m[col[t]], values[t])``, and ``m[col[t]]`` is emitted when ``pool_last[t]``. The
    registers ``m`` start at 0.

    Parameters
    ----------
    values, col, pool_first, pool_last : array_like of int, shape (N,)
        The valid items only (invalid cycles change nothing).
    cols : int
        Number of pooling registers.

    Returns
    -------
    emitted : numpy.ndarray of bool, shape (N,)
        Which items produce an output.
    outputs : numpy.ndarray of int64, shape (emitted.sum(),)
        The emitted maxima, in order.
    """
    values = np.asarray(values, dtype=np.int64)
    col = np.asarray(col, dtype=np.int64)
    first = np.asarray(pool_first, dtype=bool)
    last = np.asarray(pool_last, dtype=bool)
    if not (values.shape == col.shape == first.shape == last.shape) or values.ndim != 1:
        raise ShapeError(f"Pooling streams must be one-dimensional of one length, not "
                         f"{values.shape!r}, {col.shape!r}, {first.shape!r} and {last.shape!r}")
    if np.any((col < 0) | (col >= cols)):
        raise ShapeError(f"Pooling columns must be in range({cols}), not {col!r}")
    m = np.zeros(cols, dtype=np.int64)
    outputs = []
    for t in range(len(values)):
        c = col[t]
        m[c] = values[t] if first[t] else max(m[c], values[t])
        if last[t]:
            outputs.append(m[c])
    return last.copy(), np.asarray(outputs, dtype=np.int64)


def pixel_walker(start, deltas, pool, pw, count):
    """The pixel walker's pixels: ``(iy, ix, base)`` of the first ``count`` output pixels.

    Four nested loop levels (``dx`` and ``dy`` inside a ``pool × pool`` window, then the
    window column over ``pw`` windows, then the window row) each add their own steps
    ``deltas[level] = (d_iy, d_ix, d_base)`` to the corner, starting from ``start``
    (:func:`hwgen.compiler.walk_deltas` computes both).

    Returns
    -------
    list of (int, int, int)
    """
    iy, ix, base = (int(v) for v in start)
    dx = dy = px = 0
    out = []
    for _ in range(count):
        out.append((iy, ix, base))
        if dx + 1 < pool:
            dx += 1
            level = 0
        elif dy + 1 < pool:
            dx, dy = 0, dy + 1
            level = 1
        elif px + 1 < pw:
            dx, dy, px = 0, 0, px + 1
            level = 2
        else:
            dx, dy, px = 0, 0, 0
            level = 3
        iy, ix, base = (v + int(d) for v, d in zip((iy, ix, base), deltas[level]))
    return out


def drain(job, rows, cols, win, out_base, split=False, pooled=False):
    """The drain's reads of one tile, slot by slot (row-major).

    Slot ``(r, c)`` holds pixel ``m0 + r`` of the tile (pool window ``q0 + (m0 + r) //
    win``, place ``(m0 + r) % win``) and the channel at parameter address ``co_addr + c``.
    A ``split`` tile (a fully connected layer whose rows are slices of the reduction) has
    the ``cols`` slots of row 0 only, each the sum of its column. A ``pooled`` tile (the
    drain takes the max-pool windows, ``m0 = 0``) has ``rows / win`` slots per column,
    group ``g`` first, each the maximum of rows ``[g·win, (g+1)·win)``: pool window ``q0 +
    g``, a window of its own for post-processing.

    Parameters
    ----------
    job : mapping
        ``co_addr`` (the parameter address of the tile's first channel), ``cols_valid``,
        ``rows_valid``, ``q0``, ``m0``.
    rows, cols : int
        The array's shape.
    win, out_base : int
        The layer's pool window size and output region.
    split, pooled : bool
        The tile is a split or a pooled layer's.

    Returns
    -------
    list of dict
        Per slot: ``valid``, ``col``, ``pool_first``, ``pool_last``, ``tag`` (the output
        pixel's address, to which the channel's parameter ``offset`` is added) and
        ``param_addr``.
    """
    out = []
    if pooled:
        for g in range(rows // win):
            for c in range(cols):
                out.append({
                    "valid": int(g * win < job["rows_valid"] and c < job["cols_valid"]),
                    "col": c, "pool_first": 1, "pool_last": 1,
                    "tag": out_base + job["q0"] + g,
                    "param_addr": job["co_addr"] + c,
                })
        return out
    for r in range(1 if split else rows):
        place = job["m0"] + r
        q, pos = job["q0"] + place // win, place % win
        for c in range(cols):
            out.append({
                "valid": int((split or r < job["rows_valid"]) and c < job["cols_valid"]),
                "col": c, "pool_first": int(pos == 0), "pool_last": int(pos == win - 1),
                "tag": out_base + q,
                "param_addr": job["co_addr"] + c,
            })
    return out


def weight_lookup(addrs, indices, tables, bounds):
    """The weights a code-book engine's lookup gives for weight memory reads.

    Read ``t`` is of address ``addrs[t]`` and returned the index word ``indices[t]`` (one
    index per column); its row is the last ``n`` with ``bounds[n] <= addrs[t]``, and column
    ``c``'s weight is ``tables[row][c][indices[t][c]]``.

    Parameters
    ----------
    addrs : array_like of int, shape (N,)
    indices : array_like of int, shape (N, cols)
    tables : array_like of int, shape (rows, cols, entries)
    bounds : array_like of int, shape (rows,)

    Returns
    -------
    numpy.ndarray of int64, shape (N, cols)
    """
    tables = np.asarray(tables, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    row = np.searchsorted(np.asarray(bounds), np.asarray(addrs), side="right") - 1
    if idx.ndim != 2 or tables.ndim != 3 or idx.shape[1] != tables.shape[1]:
        raise ShapeError(f"Lookup indices of shape {idx.shape!r} do not match tables of shape "
                         f"{tables.shape!r}")
    cols = np.arange(idx.shape[1])[None, :]
    return tables[row[:, None], cols, idx]
