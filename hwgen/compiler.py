"""Map a quantized IR graph onto a systolic accelerator: tiling, layer program, memory
images and the cycle model.

The accelerator (see :mod:`hwgen.rtl.top`) runs one *layer program entry* per Conv2d or
Linear node; Flatten is free (activations are stored ``C, H, W`` in order). A Linear layer
is a 1×1 convolution of a ``Cin × 1 × 1`` image.

Tiling
------
The output of a layer is a matrix ``pixels × channels`` (pixels in *pool-window order*: the
``pool × pool`` pixels of one max-pool window are consecutive, so the post-processing unit
pools a stream). The array computes a tile of ``rows`` pixels × ``cols`` channels in ``K``
steps (``K = Cin·KH·KW``), one product per PE per step. Tiles run channel-tile-major,
pixel-tile-minor, so every pixel tile of one channel tile reuses the same weights. Tiles
issue every ``P = max(K, rows·cols)`` cycles: the results of a tile are drained through the
one post-processing unit at one value per cycle, so a tile must not finish before the
previous one has drained. Edge tiles (pixels or channels past the layer's size) compute
zeros that are never written.

Cycle model
-----------
Per layer, exactly (checked against the hardware's cycle counter in simulation)::

    cycles = 1 (setup) + rows (first pixel walk) + tiles·P
             + K − P + rows + cols + rows·cols + post_latency + 1 (flush)

``ideal = MACs / (rows·cols)``; ``utilization = ideal / cycles``.

Size limits
-----------
A mistyped size must not take a machine down, so :func:`check_size` refuses, before any
memory image is built or any gateware elaborated, a design beyond :data:`SIZE_LIMITS`:
more than 1,024 PEs (32×32: the largest array whose generation is measured, see
``benchmarks/compile_time.py``), operands wider than 32 bits, accumulators wider than 64
(the golden model's integers), or on-chip memory beyond the largest supported device (the
ECP5-85F's 208 block RAMs of 18 Kbit). ``allow_large=True`` (``--allow-large``) lifts them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import ir
from .errors import DoesNotFitError, FormatError, UnsupportedLayerError, check_positive
from .numerics import QFormat, accumulator_width, format_from_json

__all__ = [
    "HW_OVERFLOWS",
    "HW_ROUNDINGS",
    "SHIFT_BITS",
    "SIZE_LIMITS",
    "AcceleratorConfig",
    "CompiledDesign",
    "LayerProgram",
    "SizeLimits",
    "check_size",
    "compile_graph",
    "memory_bits",
]

HW_ROUNDINGS = ("nearest_even", "nearest_up", "floor")
HW_OVERFLOWS = ("saturate", "wrap")
#: Width of the per-channel requantization shift (signed) in the parameter memory.
SHIFT_BITS = 8


@dataclass(frozen=True)
class AcceleratorConfig:
    """What the user asks of the accelerator; ``None`` widths are sized from the model.

    Parameters
    ----------
    rows, cols : int
        Systolic array shape: ``rows`` output pixels × ``cols`` output channels per tile.
    pe_kind : str
        ``"fixed"``: fixed-point multiply-accumulate PEs.
    act_width : int or None
        Bits of a stored activation (signed). At least the widest activation format.
    weight_width : int or None
        Bits of a stored weight (signed). At least the widest weight format.
    acc_width : int or None
        Accumulator bits. At least what bit growth needs for the longest dot product.
    buffer_depth : int or None
        Words of each activation buffer copy (two ping-pong regions).
    """

    rows: int = 4
    cols: int = 4
    pe_kind: str = "fixed"
    act_width: int | None = None
    weight_width: int | None = None
    acc_width: int | None = None
    buffer_depth: int | None = None

    def __post_init__(self):
        check_positive(self.rows, "Array rows", DoesNotFitError)
        check_positive(self.cols, "Array columns", DoesNotFitError)
        if self.pe_kind != "fixed":
            raise DoesNotFitError(f"PE kind must be 'fixed', not {self.pe_kind!r}")
        for name in ("act_width", "weight_width", "acc_width", "buffer_depth"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name.replace("_", " ").capitalize(),
                               DoesNotFitError)

    @classmethod
    def parse_array(cls, text, **kwargs):
        """``"4x4"`` → ``AcceleratorConfig(rows=4, cols=4, **kwargs)``."""
        try:
            rows, cols = (int(part) for part in str(text).lower().split("x"))
        except ValueError:
            raise DoesNotFitError(
                f"Array shape must be written ROWSxCOLS like '4x4', not {text!r}") from None
        return cls(rows=rows, cols=cols, **kwargs)

    @property
    def pes(self):
        return self.rows * self.cols


# Descriptor fields (one layer program entry), in the order of the hardware struct.
# "s" fields are signed address arithmetic, "u" fields are unsigned counts.
DESCRIPTOR_FIELDS = (
    # reduction loop: k = (ci, ky, kx); address offset steps
    ("k_len", "u"), ("period", "u"), ("kw", "u"), ("kh", "u"), ("cin", "u"),
    ("d_ky", "s"), ("d_ci", "s"), ("in_h", "s"), ("in_w", "s"), ("in_base", "s"),
    # pixel walker: (dx, dy) inside a pool window, (px, py) over windows
    ("pool", "u"), ("pw", "u"), ("ph", "u"), ("walk_len", "u"), ("npix", "u"),
    ("start_iy", "s"), ("start_ix", "s"), ("start_base", "s"),
    ("d0_iy", "s"), ("d0_ix", "s"), ("d0_base", "s"),
    ("d1_iy", "s"), ("d1_ix", "s"), ("d1_base", "s"),
    ("d2_iy", "s"), ("d2_ix", "s"), ("d2_base", "s"),
    ("d3_iy", "s"), ("d3_ix", "s"), ("d3_base", "s"),
    # tiles
    ("n_pt", "u"), ("n_ct", "u"), ("cout", "u"), ("w_base", "u"),
    ("rows_div", "u"), ("rows_mod", "u"),
    # drain and post-processing
    ("param_base", "u"), ("out_base", "u"), ("plane", "u"), ("win", "u"),
    ("chan_tile_off", "u"),
    ("out_width", "u"), ("out_signed", "u"), ("relu", "u"), ("pool_en", "u"),
    ("rounding", "e"), ("overflow", "e"),
)


@dataclass(frozen=True)
class LayerProgram:
    """One entry of the layer program, with its predicted cycles."""

    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    in_fmt: QFormat
    out_fmt: QFormat
    w_width: int
    macs: int
    tiles: int
    desc: dict = field(compare=False)
    cycles: dict = field(compare=False)

    def to_json(self):
        return {
            "name": self.name, "kind": self.kind, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "in_fmt": self.in_fmt.to_json(),
            "out_fmt": self.out_fmt.to_json(), "w_width": self.w_width, "macs": self.macs,
            "tiles": self.tiles, "descriptor": dict(self.desc), "cycles": dict(self.cycles),
        }

    @classmethod
    def from_json(cls, obj):
        return cls(obj["name"], obj["kind"], tuple(obj["in_shape"]), tuple(obj["out_shape"]),
                   format_from_json(obj["in_fmt"]), format_from_json(obj["out_fmt"]),
                   obj["w_width"], obj["macs"], obj["tiles"], dict(obj["descriptor"]),
                   dict(obj["cycles"]))


@dataclass(frozen=True, eq=False)
class CompiledDesign:
    """Everything the hardware generator and the testbench need: the resolved config, the
    layer program, the memory images and the predicted cycles. ``to_json`` is the manifest.
    """

    name: str
    config: AcceleratorConfig
    act_width: int
    weight_width: int
    acc_width: int
    buffer_depth: int
    post_latency: int
    input_shape: tuple
    input_fmt: QFormat
    output_shape: tuple
    output_fmt: QFormat
    input_base: int
    output_base: int
    layers: tuple
    weight_image: tuple
    param_image: tuple      # (bias, shift) per channel slot
    roundings: tuple
    overflows: tuple

    @property
    def n_in(self):
        return int(np.prod(self.input_shape))

    @property
    def n_out(self):
        return int(np.prod(self.output_shape))

    @property
    def cycles(self):
        return sum(layer.cycles["total"] for layer in self.layers)

    @property
    def macs(self):
        return sum(layer.macs for layer in self.layers)

    @property
    def ideal_cycles(self):
        return self.macs / self.config.pes

    def to_json(self):
        return {
            "format": "hwgen-manifest", "version": 1, "name": self.name,
            "config": asdict(self.config),
            "widths": {"act": self.act_width, "weight": self.weight_width,
                       "acc": self.acc_width},
            "buffer_depth": self.buffer_depth, "post_latency": self.post_latency,
            "input": {"shape": list(self.input_shape), "fmt": self.input_fmt.to_json(),
                      "base": self.input_base, "words": self.n_in},
            "output": {"shape": list(self.output_shape), "fmt": self.output_fmt.to_json(),
                       "base": self.output_base, "words": self.n_out},
            "modes": {"rounding": list(self.roundings), "overflow": list(self.overflows)},
            "layers": [layer.to_json() for layer in self.layers],
            "cycles": {"predicted_total": self.cycles, "macs": self.macs,
                       "ideal": self.ideal_cycles,
                       "per_layer": {layer.name: layer.cycles["total"]
                                     for layer in self.layers}},
            "weight_image": list(self.weight_image),
            "param_image": [list(p) for p in self.param_image],
        }

    @classmethod
    def from_json(cls, obj):
        if not isinstance(obj, dict) or obj.get("format") != "hwgen-manifest":
            raise FormatError("Manifest is not an hwgen manifest")
        return cls(
            name=obj["name"], config=AcceleratorConfig(**obj["config"]),
            act_width=obj["widths"]["act"], weight_width=obj["widths"]["weight"],
            acc_width=obj["widths"]["acc"], buffer_depth=obj["buffer_depth"],
            post_latency=obj["post_latency"],
            input_shape=tuple(obj["input"]["shape"]),
            input_fmt=format_from_json(obj["input"]["fmt"]),
            output_shape=tuple(obj["output"]["shape"]),
            output_fmt=format_from_json(obj["output"]["fmt"]),
            input_base=obj["input"]["base"], output_base=obj["output"]["base"],
            layers=tuple(LayerProgram.from_json(layer) for layer in obj["layers"]),
            weight_image=tuple(obj["weight_image"]),
            param_image=tuple(tuple(p) for p in obj["param_image"]),
            roundings=tuple(obj["modes"]["rounding"]), overflows=tuple(obj["modes"]["overflow"]),
        )

    def dumps(self):
        return json.dumps(self.to_json(), indent=1)


# --- size limits ------------------------------------------------------------------------

@dataclass(frozen=True)
class SizeLimits:
    """The largest design hwgen builds unless told ``allow_large`` (see the module
    docstring)."""

    pes: int = 1024
    operand_width: int = 32
    acc_width: int = 64
    memory_bits: int = 208 * 18 * 1024


SIZE_LIMITS = SizeLimits()


def _refuse(what, limit_text):
    raise DoesNotFitError(f"{what} is more than hwgen builds ({limit_text}); pass "
                          f"--allow-large (allow_large=True) to build it anyway")


def check_size(config, memory=None, allow_large=False, limits=SIZE_LIMITS):
    """Refuse ``config`` (and, once the widths are known, ``memory`` bits of on-chip
    memory) beyond ``limits`` with :class:`~hwgen.errors.DoesNotFitError`, unless
    ``allow_large``. Cheap: call it before any long work."""
    if allow_large:
        return
    if config.pes > limits.pes:
        _refuse(f"A {config.rows}x{config.cols} array of {config.pes:,} PEs",
                f"at most {limits.pes:,} PEs, e.g. 32x32")
    for name in ("act_width", "weight_width"):
        value = getattr(config, name)
        if value is not None and value > limits.operand_width:
            _refuse(f"A {value}-bit {name.replace('_', ' ')}",
                    f"at most {limits.operand_width} bits")
    if config.acc_width is not None and config.acc_width > limits.acc_width:
        _refuse(f"A {config.acc_width}-bit accumulator", f"at most {limits.acc_width} bits")
    if memory is not None and memory > limits.memory_bits:
        _refuse(f"{memory:,} bits of on-chip memory",
                f"at most {limits.memory_bits:,}, the block RAM of an ECP5-85F")


def memory_bits(config, act_width, weight_width, acc_width, buffer_depth, weight_words,
                param_words, shift_bits=None):
    """Bits of on-chip memory of a design: the activation buffer (one copy per array row),
    the weight memory (``cols`` weights a word) and the parameter memory (bias and shift)."""
    shift_bits = SHIFT_BITS if shift_bits is None else shift_bits
    return (config.rows * buffer_depth * act_width + weight_words * config.cols * weight_width
            + param_words * (acc_width + shift_bits))


# --- the cycle model ------------------------------------------------------------------

def layer_cycles(k, tiles, rows, cols, post_latency):
    """Predicted cycles of one layer (see the module docstring), with the overheads split
    out so reports can say which one costs the cycles."""
    period = max(k, rows * cols)
    total = 1 + rows + tiles * period + k - period + rows + cols + rows * cols \
        + post_latency + 1
    return {
        "total": total,
        "period": period,
        "compute": tiles * k,
        "drain_bound": tiles * (period - k),
        "setup": 1 + rows,
        "fill_drain": k - period + rows + cols + rows * cols + post_latency + 1,
    }


# --- lowering ---------------------------------------------------------------------------

def _chain(graph):
    """The hardware layers of ``graph`` (Conv2d/Linear), Flatten folded away."""
    out = []
    for layer in graph.layers:
        if isinstance(layer, ir.Flatten):
            continue
        if isinstance(layer, (ir.Conv2d, ir.Linear)):
            out.append(layer)
            continue
        raise UnsupportedLayerError(
            f"Layer {layer.name!r} ({type(layer).__name__}) has no hardware mapping; the "
            f"accelerator pools only inside a Conv2d (fuse the pool into the convolution "
            f"before it)")
    if not out:
        raise UnsupportedLayerError(f"Model {graph.name!r} has no Conv2d or Linear layer")
    return out


def _check_formats(graph, layers):
    if not isinstance(graph.input_fmt, QFormat):
        raise UnsupportedLayerError(
            f"The input format {graph.input_fmt} must be fixed-point for this accelerator")
    for layer in layers:
        for fmt in layer.w_fmts:
            if not isinstance(fmt, QFormat):
                raise UnsupportedLayerError(
                    f"Layer {layer.name!r} has {fmt} weights; the fixed-point MAC array takes "
                    f"fixed-point weights only")
        if not isinstance(layer.out_fmt, QFormat):
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} output format {layer.out_fmt} is not fixed-point")
        if layer.rounding not in HW_ROUNDINGS:
            raise UnsupportedLayerError(
                f"Layer {layer.name!r} uses rounding {layer.rounding!r}; the hardware rounds "
                f"with {', '.join(HW_ROUNDINGS)}")


def _stored_width(fmt):
    return fmt.width + (0 if fmt.signed else 1)


def _geometry(layer):
    """(Cin, H, W, KH, KW, stride, pad, pool) of a layer seen as a convolution."""
    if isinstance(layer, ir.Linear):
        return layer.in_shape[0], 1, 1, 1, 1, 1, 0, 1
    cin, h, w = layer.in_shape
    kh, kw = layer.kernel
    return cin, h, w, kh, kw, layer.stride, layer.padding, layer.pool


def walk_deltas(h, w, stride, pad, pool, pw):
    """Start values and per-level steps of the hardware pixel walker.

    The walker visits output pixels in pool-window order, keeping for each the input
    coordinates of its receptive field's corner ``(iy0, ix0)`` and the address offset
    ``base = iy0*W + ix0``. Level 0 steps ``dx`` inside a window, level 1 ``dy``, level 2
    the window column ``px``, level 3 the window row ``py``; each level adds its deltas.
    """
    s = stride
    start = (-pad, -pad, -pad * w - pad)
    d0 = (0, s, s)
    d1 = (s, -(pool - 1) * s, s * w - (pool - 1) * s)
    d2 = (-(pool - 1) * s, s, s - (pool - 1) * s * w)
    d3 = (s, -(pw * pool - 1) * s, s * w - (pw * pool - 1) * s)
    return start, (d0, d1, d2, d3)


def walk_pixels(desc, count):
    """Software model of the walker: ``(iy0, ix0, base)`` of the first ``count`` pixels.

    Used by the tests to check the deltas against the direct formula; the RTL walker
    implements the same counters.
    """
    iy, ix, base = desc["start_iy"], desc["start_ix"], desc["start_base"]
    dx = dy = px = py = 0
    out = []
    for _ in range(count):
        out.append((iy, ix, base))
        if dx + 1 < desc["pool"]:
            dx += 1
            level = 0
        elif dy + 1 < desc["pool"]:
            dx, dy = 0, dy + 1
            level = 1
        elif px + 1 < desc["pw"]:
            dx, dy, px = 0, 0, px + 1
            level = 2
        else:
            dx, dy, px, py = 0, 0, 0, py + 1
            level = 3
        iy += desc[f"d{level}_iy"]
        ix += desc[f"d{level}_ix"]
        base += desc[f"d{level}_base"]
    return out


def compile_graph(graph, config, *, post_latency=None, allow_large=False):
    """Lower ``graph`` onto ``config``; return a :class:`CompiledDesign`.

    Raises :class:`DoesNotFitError` with what does not fit and what to change, and for a
    design beyond :data:`SIZE_LIMITS` unless ``allow_large``.
    """
    check_size(config, allow_large=allow_large)
    layers = _chain(graph)
    _check_formats(graph, layers)
    rows, cols = config.rows, config.cols

    # widths
    need_act = max([_stored_width(graph.input_fmt)] + [_stored_width(l.out_fmt) for l in layers])
    need_w = max(f.width for l in layers for f in l.w_fmts)
    act_width = config.act_width or need_act
    weight_width = config.weight_width or need_w
    if act_width < need_act:
        raise DoesNotFitError(f"Activations need {need_act} bits but the config stores "
                              f"{act_width!r}; raise act_width")
    if weight_width < need_w:
        raise DoesNotFitError(f"Weights need {need_w} bits but the config stores "
                              f"{weight_width!r}; raise weight_width")
    need_acc = 0
    for layer in layers:
        bits = accumulator_width(act_width, weight_width, layer.reduction)
        if layer.bias is not None and layer.bias.size:
            bias_bits = int(max(abs(int(layer.bias.min())), abs(int(layer.bias.max())))
                            ).bit_length() + 2
            bits = max(bits, bias_bits)
        need_acc = max(need_acc, bits)
    acc_width = config.acc_width or need_acc
    if acc_width < need_acc:
        raise DoesNotFitError(f"Dot products need a {need_acc}-bit accumulator but the config "
                              f"has {acc_width!r}; raise acc_width")

    if post_latency is None:
        from .rtl.post_process import PostProcess
        post_latency = PostProcess.LATENCY

    # activation memory: two ping-pong regions of the largest tensor
    sizes = [int(np.prod(graph.input_shape))] + [int(np.prod(l.out_shape)) for l in layers]
    region = max(sizes)
    depth_needed = 2 * region
    buffer_depth = config.buffer_depth or depth_needed
    if buffer_depth < depth_needed:
        raise DoesNotFitError(f"Activations need {depth_needed} words of buffer (two regions of "
                              f"{region}) but the config has {buffer_depth!r}; raise "
                              f"buffer_depth")

    n_ct_all = [math.ceil(layer.out_channels / cols) for layer in layers]
    check_size(config, memory_bits(
        config, act_width, weight_width, acc_width, buffer_depth,
        sum(n * layer.reduction for n, layer in zip(n_ct_all, layers)),
        sum(n * cols for n in n_ct_all)), allow_large=allow_large)

    weight_image, param_image, programs = [], [], []
    w_mask = (1 << weight_width) - 1
    for index, layer in enumerate(layers):
        cin, h, w, kh, kw, stride, pad, pool = _geometry(layer)
        cout = layer.out_channels
        k = layer.reduction
        if isinstance(layer, ir.Conv2d):
            _, ho, wo = layer.pre_pool_shape
            ph, pwin = (ho // pool, wo // pool)
        else:
            ph = pwin = 1
        if ph < 1 or pwin < 1:
            raise DoesNotFitError(f"Layer {layer.name!r} produces no output pixels")
        npix = ph * pwin * pool * pool
        n_pt = math.ceil(npix / rows)
        n_ct = math.ceil(cout / cols)
        tiles = n_pt * n_ct
        start, deltas = walk_deltas(h, w, stride, pad, pool, pwin)
        win = pool * pool
        in_base = (index % 2) * region
        out_base = ((index + 1) % 2) * region
        shifts = layer.acc_frac - layer.out_fmt.frac
        lo, hi = -(1 << (SHIFT_BITS - 1)), (1 << (SHIFT_BITS - 1)) - 1
        if shifts.min() < lo or shifts.max() > hi:
            raise DoesNotFitError(f"Layer {layer.name!r} needs a requantization shift of "
                                  f"{int(shifts.max())!r}, outside [{lo}, {hi}]")
        desc = {
            "k_len": k, "period": max(k, rows * cols), "kw": kw, "kh": kh, "cin": cin,
            "d_ky": w - (kw - 1), "d_ci": h * w - (kh - 1) * w - (kw - 1),
            "in_h": h, "in_w": w, "in_base": in_base,
            "pool": pool, "pw": pwin, "ph": ph, "walk_len": n_pt * rows, "npix": npix,
            "start_iy": start[0], "start_ix": start[1], "start_base": start[2],
            "n_pt": n_pt, "n_ct": n_ct, "cout": cout, "w_base": len(weight_image),
            "rows_div": rows // win, "rows_mod": rows % win,
            "param_base": len(param_image), "out_base": out_base, "plane": ph * pwin,
            "win": win, "chan_tile_off": cols * ph * pwin,
            "out_width": layer.out_fmt.width, "out_signed": int(layer.out_fmt.signed),
            "relu": int(layer.relu), "pool_en": int(pool > 1),
            "rounding": layer.rounding, "overflow": layer.overflow,
        }
        for level, (diy, dix, dbase) in enumerate(deltas):
            desc.update({f"d{level}_iy": diy, f"d{level}_ix": dix, f"d{level}_base": dbase})
        # weights: one word per (channel tile, k) holding `cols` weights, column c at c*WW
        wmat = layer.weight.reshape(cout, k)
        for ct in range(n_ct):
            block = np.zeros((cols, k), dtype=np.int64)
            chans = wmat[ct * cols:(ct + 1) * cols]
            block[:len(chans)] = chans
            for kk in range(k):
                word = 0
                for c in range(cols):
                    word |= (int(block[c, kk]) & w_mask) << (c * weight_width)
                weight_image.append(word)
        bias = layer.bias if layer.bias is not None else np.zeros(cout, dtype=np.int64)
        for ch in range(n_ct * cols):
            if ch < cout:
                param_image.append((int(bias[ch]), int(shifts[ch])))
            else:
                param_image.append((0, 0))
        programs.append(LayerProgram(
            name=layer.name, kind="conv" if isinstance(layer, ir.Conv2d) else "linear",
            in_shape=tuple(layer.in_shape), out_shape=tuple(layer.out_shape),
            in_fmt=layer.in_fmt, out_fmt=layer.out_fmt,
            w_width=max(f.width for f in layer.w_fmts), macs=layer.macs, tiles=tiles,
            desc=desc, cycles=layer_cycles(k, tiles, rows, cols, post_latency)))

    n_layers = len(layers)
    return CompiledDesign(
        name=graph.name, config=config, act_width=act_width, weight_width=weight_width,
        acc_width=acc_width, buffer_depth=buffer_depth, post_latency=post_latency,
        input_shape=tuple(graph.input_shape), input_fmt=graph.input_fmt,
        output_shape=tuple(layers[-1].out_shape), output_fmt=layers[-1].out_fmt,
        input_base=0, output_base=(n_layers % 2) * region,
        layers=tuple(programs), weight_image=tuple(weight_image),
        param_image=tuple(param_image),
        roundings=tuple(sorted({l.rounding for l in layers})),
        overflows=tuple(sorted({l.overflow for l in layers})),
    )
