"""An instant analytic estimate of a compiled design on iCE40: LUT4s, flip-flops, DSPs and
block RAMs, from the compiled configuration alone (no Verilog, no synthesis).

It stands in for :func:`hwgen.estimate.estimate` where thousands of designs are ranked
(``hwgen search``), so it must order designs as Yosys would: narrower weights and
accumulators cost less, a shift PE less than a LUT multiplier, an XNOR PE little per binary
MAC, and every extra engine kind costs a whole array. It predicts the *core* as
``hwgen estimate`` synthesizes it (``synth_ice40``, ``-dsp`` on the UP5K), without the pin
harness that report adds (``Estimate.harness``).

How it counts
-------------
**DSPs** and **block RAMs** follow Yosys' mapping rules exactly:

- a multiplier of ``a × b`` signed bits goes to ``SB_MAC16`` blocks when the device has
  them and ``a, b >= 2`` and ``a + b >= 11`` (``synth_ice40 -dsp``: ``mul2dsp`` with
  ``DSP_A/B_MINWIDTH=2``, ``DSP_Y_MINWIDTH=11``, 16×16 blocks), taking
  ``ceil(a/16)·ceil(b/16)`` of them; else it is built from LUTs. Multipliers: one per
  fixed-point PE (activation × weight width), and the post-processing unit's scale
  (accumulator × scale width) in designs with per-channel scales (binary, ternary);
- a memory of ``depth × width`` bits takes the fewest ``SB_RAM40_4K`` blocks of one
  aspect ratio, 256×16, 512×8, 1024×4 or 2048×2: ``min ceil(depth/d)·ceil(width/w)``;
  but a ROM goes to logic when that costs Yosys' ``memory_libmap`` less (1/16 per bit
  against 64 per block). The memories: one weight ROM per engine (its image's words ×
  ``cols`` weight fields) and, in an engine that runs split fully connected layers
  (``AcceleratorConfig(split_fc=True)``), one more ROM per weight bank ``1 … rows − 1``
  (its words × ``cols`` weight fields, counted like the weight ROM), one activation
  buffer copy per array row (``buffer_depth`` words of ``word_width`` bits) and the
  parameter ROM (one word per channel slot).

**LUTs and flip-flops** are sums of *coefficient × feature* per block, the blocks
``hwgen estimate --blocks`` reports, with every coefficient in the one table
:data:`COEFFICIENTS`:

=============  ============================================================================
block          features (design quantities)
=============  ============================================================================
``pe_<kind>``  one PE, times ``rows·cols`` per engine: ``acc`` accumulator bits; ``a``, ``w``
               activation and weight-field bits; ``lut_mul`` = ``a·w`` for a multiplier
               not in a DSP; ``shifter`` = ``a·(w − 2)`` for a shift PE (a barrel shifter
               of ``w − 2`` exponent-code bits); ``p`` binary positions of an XNOR PE
``engine``     per engine beyond its PEs: ``feed`` = ``rows · word_width``; a code-book
               engine's ``lookup`` (its tables' bits, :data:`LOOKUP_LUTS_PER_BIT`, or a
               block RAM per column where Yosys finds that cheaper; its PEs are
               ``pe_fixed`` of the entries' width); with weight banks (split layers)
               ``bank_mux`` and ``bank_regs`` (:data:`SPLIT_COEFFICIENTS`)
``drain``      ``mux`` = Σ over engines ``rows·cols·acc`` (the results' gate registers
               and their OR);
               ``line`` = ``(rows + cols) · count`` (the job delay line); with split
               or pooled layers ``column_select`` (instead of ``mux``), ``sum_add``,
               ``sum_regs`` and ``split_select``
               (:data:`SPLIT_COEFFICIENTS`)
``post``       ``acc`` = accumulator + scale bits; ``pool`` = ``cols · act_width``
               (a max-pool register per column); ``lut_mul`` = ``acc·scale`` when the
               scale multiplier is not in DSPs
``seq``        ``records`` = ``rows · (addr + 3)`` (each row's pixel records and address
               adder); ``table`` = the pixel-record table's bits when it is a ROM in
               logic (else its block RAMs are counted:
               :func:`hwgen.rtl.sequencer.records_in_block_ram`); ``count`` =
               counter bits; ``convs``, ``linears``: the layers of each kind (the layer
               program's descriptors are constants that Yosys folds, a Linear layer's
               more than a convolution's)
``act``        ``read`` = ``rows · word_width``; ``packed`` (1 with bit-writable words)
``top``        ``params`` = parameter words × word bits (the parameter ROM, in LUTs)
=============  ============================================================================

(every block also has a ``const``). ``count`` is the bit length of the largest of the
buffer depth, the memories' depths and ``rows·cols``, plus one; ``addr`` that of the buffer
depth.

Split layers' hardware (weight banks, the drain's adder tree) is in no calibration design,
so its features appear only in designs that have it and are counted first-order, one LUT
per multiplexer or adder bit and one flip-flop per register bit, with the coefficients
of :data:`SPLIT_COEFFICIENTS` (not fitted): a design without split layers gets exactly the
estimate it got before they existed.

**Logic cells** as nextpnr places them are ``0.969·LUTs + 0.79·FFs`` (:data:`LCS_PER`);
**Fmax** is a class, the band where designs with the same kind of multiplier on the MAC
path (:func:`multiplier_kind`) place on the device (:data:`FMAX_CLASSES`): the critical
path's routing is not in the configuration, and placement alone moves a design by several
MHz.

Synthesized flat, Yosys optimizes across the blocks' boundaries (constant descriptor
fields, shared counters), so the control blocks (everything but the engines) come out
smaller than their sum when synthesized apart: :data:`FLAT` scales them.

Source and accuracy
-------------------
Calibrated with ``benchmarks/analytic_estimate.py`` on YoWASP Yosys: the PE rows on single
PEs synthesized alone over a grid of widths (``benchmarks/pe_cost.py``'s method; fixed-point
PEs also without DSPs, for the LUT multiplier), the other rows and :data:`FLAT` on
``hwgen estimate DIR --target ice40-up5k --synth-only --blocks`` of 17 designs: the digits
CNN in fixed8, fixed6, fixed4, 8-bit weights on 4-bit activations, pow2-4, bwn, ternary,
binary, a fixed/shift mix and a ternary/3-bit mix, on 2×2, 3×5, 4×4 and 8×8 arrays, the
MLP (4×4, 2×2) and a five-layer chain; single PEs with the designs' product register
(``AcceleratorConfig.pe_stages``: without it Yosys merges a MAC PE's multiplier and
accumulator into one DSP block). On those, DSPs and block RAMs are exact, LUTs within 12 %
(mean absolute error 5.0 %, 90th percentile 11.4 %; 21.6 % on the two-layer MLP in
pow2-4 on 2×2, whose control logic folds more when synthesized flat) and flip-flops within
11 % (mean 5.3 %; 26.6 % on that MLP).
The split layers' first-order terms (:data:`SPLIT_COEFFICIENTS`) were checked on one
synthesis, the MLP in fixed8 on 4×4 with ``--split-fc``: block RAMs exact (12), LUTs
4.9 % high, flip-flops 5.5 % high (re-synthesized with the PEs' accumulator reset;
``FLAT`` is fitted on drains with gate registers, which this one has none of; the
sequencer's folding of split layers' descriptors is not modelled). The
script refits the table, prints it, and
prints every design's estimate against its synthesis; when a block of the RTL changes, run
it and paste the table it prints.

Other device families are not calibrated: :func:`analytic_estimate` refuses them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ArgumentError
from .devices import device

__all__ = ["BRAM_SHAPES", "COEFFICIENTS", "FLAT", "FMAX_CLASSES", "LCS_PER",
           "SPLIT_COEFFICIENTS", "AnalyticEstimate", "analytic_estimate", "block_features",
           "bram_blocks", "dsp_blocks", "multiplier_kind"]

#: Per block and resource: ``{feature: coefficient}`` (see the module docstring). Fitted by
#: ``benchmarks/analytic_estimate.py`` (least squares, iCE40 UP5K, ``synth_ice40 -dsp``).
COEFFICIENTS = {
    'pe_fixed': {'luts': {"a": 0.206, "acc": 0.333, "const": 0.0, "lut_mul": 2.67, "w": 2.038},
        'ffs': {"a": 2.0, "acc": 2.0, "const": 2.0, "lut_mul": 0.0, "w": 2.0}},
    'pe_shift': {'luts': {"a": 0.0, "acc": 1.236, "const": 0.0, "shifter": 0.835, "w": 1.873},
        'ffs': {"a": 0.843, "acc": 2.694, "const": 0.0, "shifter": 0.237, "w": 0.119}},
    'pe_xnor': {'luts': {"acc": 0.901, "const": 6.412, "p": 3.164},
        'ffs': {"acc": 1.893, "const": 11.241, "p": 3.198}},
    'engine': {'luts': {"const": 0.0, "feed": 0.0},
        'ffs': {"const": 0.0, "feed": 6.23}},
    'drain': {'luts': {"const": 183.206, "line": 0.0, "mux": 0.355},
        'ffs': {"const": 182.646, "line": 0.0, "mux": 1.027}},
    'post': {'luts': {"acc": 7.703, "const": 21.32, "lut_mul": 0.0, "pool": 1.235},
        'ffs': {"acc": 8.564, "const": 0.0, "lut_mul": 0.0, "pool": 0.986}},
    'seq': {'luts': {"const": 167.263, "convs": 63.611, "count": 4.192, "linears": 0.0, "records": 1.016, "table": 0.0},
        'ffs': {"const": 118.556, "convs": 54.055, "count": 0.0, "linears": 0.0, "records": 3.166, "table": 0.0}},
    'act': {'luts': {"const": 15.182, "packed": 29.479, "read": 0.042},
        'ffs': {"const": 15.182, "packed": 8.479, "read": 0.042}},
    'top': {'luts': {"const": 0.0, "params": 0.055},
        'ffs': {"const": 0.0, "params": 0.011}},
}

#: First-order costs of split layers' hardware (:class:`~hwgen.rtl.engine.Engine`'s
#: ``bank_images``, :class:`~hwgen.rtl.drain.Drain`'s ``split``), not fitted: one LUT4 per
#: bit of a 2:1 multiplexer or of an adder (iCE40 adders are a LUT and a carry per bit), one
#: flip-flop per register bit. Features (:func:`block_features`), per engine with banks:
#:
#: - ``bank_mux`` = ``(rows − 1) · cols · w``: each PE of rows ``1 …`` chooses its bank's
#:   weight or the weight from the row above;
#: - ``bank_regs`` = ``(rows − 1) · (count + cols·(cols + 1)/2 · w)``: per bank, its delayed
#:   read address, the register its word is read into and its column-skew triangle of
#:   ``cols·(cols − 1)/2`` weights (the bank's read register is in its block RAM; a bank
#:   that is a ROM in logic is not counted, like the weight memory);
#:
#: and in the drain of a design with split layers (``acc`` the widest accumulator):
#:
#: - ``sum_add`` = ``(rows − 1) · acc``: the adder tree over the rows;
#: - ``sum_regs`` = ``acc ·`` (the registers of the tree: ``rows``, then each level's) ``+
#:   meta · sum_latency``: the slot fields (valid bits, column, parameter address and
#:   output tag of ``count`` bits, pooling flags; pooled pixel and place with stochastic
#:   rounding) that wait beside the sum (:func:`hwgen.timing.drain_sum_latency`);
#: - ``split_select`` = ``acc + 2·count``: the output's choice between the sum and the
#:   ordinary slot (the value, its parameter address and its tag);
#: - with pooled layers (``Drain``'s ``pool_win``), ``pool_max`` = ``2·acc·(rows −
#:   rows/win)`` (a compare and a choice per node of the tree's first ``log2(win)``
#:   levels) ``+ acc·rows/win`` (picking the slot's window when a column holds several).
#:
#: - ``column_select`` = Σ over engines ``rows·cols·acc``, instead of ``mux``: the per-row
#:   column selections and the row selection, each value gated by a one-hot bit and ORed
#:   (:func:`hwgen.rtl.drain._select`, two values' bits per LUT4 and the OR tree: 2/3 LUT4
#:   per bit), where a drain without split or pooled layers has gate registers.
#:
#: A block's fitted coefficient of the same name, should :data:`COEFFICIENTS` ever have
#: one, takes precedence.
SPLIT_COEFFICIENTS = {
    'engine': {'luts': {"bank_mux": 1.0}, 'ffs': {"bank_regs": 1.0}},
    'drain': {'luts': {"split_select": 1.0, "sum_add": 1.0, "pool_max": 1.0,
                       "column_select": 0.667},
              'ffs': {"sum_regs": 1.0}},
}

#: PE kinds whose PEs are another kind's (a code-book engine's PEs are MACs).
PE_BLOCKS = {"codebook": "pe_fixed"}

#: LUTs per table bit of a code-book engine's lookup (``lookup`` = ``cols`` · table rows ·
#: ``2**index_bits`` · entry bits: a ROM per column, in logic). Measured, not fitted by
#: ``benchmarks/analytic_estimate.py``: the digits CNN in codebook-4 on 4×4 (3 rows of
#: 16 8-bit entries per column, 1,536 bits) synthesized 198 LUTs more than in fixed8.
LOOKUP_LUTS_PER_BIT = 0.129

#: Flat synthesis over the sum of the control blocks synthesized apart, per resource.
FLAT = {"luts": 0.815, "ffs": 0.863}

#: The blocks that :data:`FLAT` scales (the engines' PEs and feed are not scaled).
CONTROL_BLOCKS = ("drain", "post", "seq", "act", "top")

#: ``(depth, width)`` aspect ratios of an iCE40 ``SB_RAM40_4K``.
BRAM_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))

#: Yosys' ``memory_libmap`` costs: a block RAM (``share/ice40/brams.txt``) and a ROM bit in
#: logic (``-logic-cost-rom``' default).
BRAM_COST, ROM_LOGIC_COST = 64, 1 / 16

#: iCE40 logic cells as placed, per LUT4 and per flip-flop of the synthesis: an LC holds one
#: LUT4 and one flip-flop, and nextpnr packs a flip-flop with the LUT that feeds it alone,
#: so most pipeline registers take a cell of their own. Least squares over 22 placed
#: ``hwgen estimate`` runs (digits CNN and MLP, UP5K and HX8K, 1,240–5,146 LUTs): within 7 %.
#: ``benchmarks/fit_device.py`` prints the estimate against nextpnr for the arrays it picks.
LCS_PER = {"luts": 0.969, "ffs": 0.790}

#: Fmax classes (MHz) per device and :func:`multiplier_kind`: the band its designs place
#: in. Measured with ``benchmarks/fmax_class.py`` (the digits CNN in fixed8, fixed4 and
#: pow2-4 on 1×8 to 4×4 arrays, placed in the pin harness with nextpnr's default seed):
#: UP5K with DSPs 43.6–46.9 (4 designs), LUT multipliers 40.1–44.2 (2), none 44.4–45.1
#: (3); HX8K LUT multipliers 101.8–110.8 (3), none 115.8 (1). Each band is widened by the
#: placement noise seen over nextpnr seeds (about ±3 MHz on the UP5K, ±7 % on the HX8K).
FMAX_CLASSES = {
    ("ice40-up5k", "dsp"): (40, 50),
    ("ice40-up5k", "lut"): (37, 47),
    ("ice40-up5k", "none"): (41, 48),
    ("ice40-hx8k", "lut"): (95, 118),
    ("ice40-hx8k", "none"): (108, 124),
}

#: Yosys' DSP mapping thresholds for iCE40 (``synth_ice40 -dsp``).
DSP_MIN_WIDTH, DSP_MIN_PRODUCT, DSP_WIDTH = 2, 11, 16


@dataclass(frozen=True)
class AnalyticEstimate:
    """The estimate of one design on one target: the core's ``luts``, ``ffs``, ``dsps``
    and ``brams``, per block (``blocks``: ``{block: {resource: value}}``, engines as
    ``engine_<kind>``, before :data:`FLAT`); ``lcs`` the logic cells it would take placed
    (:data:`LCS_PER`); whether the core fits the device (LCs, flip-flops, DSPs and block
    RAMs within its capacities); ``lut_multipliers`` the multipliers built from LUTs
    because the device has no DSP blocks or the operands are too narrow for them;
    ``fmax_class`` the ``(low, high)`` MHz band designs of its kind place in
    (:data:`FMAX_CLASSES`)."""

    design: str
    target: str
    luts: int
    ffs: int
    dsps: int
    brams: int
    fits: bool
    blocks: dict
    lcs: int = 0
    lut_multipliers: int = 0
    fmax_class: tuple = (0, 0)

    def utilization(self, dev):
        """``{resource: fraction of`` :class:`~hwgen.estimate.devices.Device` ``dev``'s
        capacity}`` for LCs, flip-flops, DSPs and block RAMs (a resource the device lacks:
        ``inf`` when used, else 0)."""
        caps = {"lcs": dev.luts, "ffs": dev.ffs, "dsps": dev.dsps, "brams": dev.brams}
        return {name: (getattr(self, name) / cap if cap else
                       (math.inf if getattr(self, name) else 0.0))
                for name, cap in caps.items()}

    def to_json(self):
        return asdict(self)


def _uses_dsp(dev):
    return dev.dsps > 0 and "-dsp" in dev.synth.split()


def dsp_blocks(a, b, dev):
    """``SB_MAC16`` blocks an ``a × b``-bit multiplier takes on ``dev`` (0: built from
    LUTs)."""
    if not _uses_dsp(dev) or min(a, b) < DSP_MIN_WIDTH or a + b < DSP_MIN_PRODUCT:
        return 0
    return math.ceil(a / DSP_WIDTH) * math.ceil(b / DSP_WIDTH)


def bram_blocks(depth, width, rom=False):
    """``SB_RAM40_4K`` blocks of a ``depth × width``-bit memory (0 for an empty one); a
    ROM (``rom``) that costs Yosys less as logic than as blocks takes none."""
    if depth <= 0 or width <= 0:
        return 0
    blocks = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_SHAPES)
    if rom and depth * width * ROM_LOGIC_COST <= blocks * BRAM_COST:
        return 0
    return blocks


def multiplier_kind(design, target="ice40-up5k"):
    """What multiplies on the design's MAC path on ``target``: ``"lut"`` when any
    multiplier (a PE's or the post-processing scale's) is built from LUTs, else ``"dsp"``
    when any is in a DSP block, else ``"none"`` (shift and XNOR PEs only). It names the
    design's :data:`FMAX_CLASSES` band."""
    features, exact = block_features(design, target)
    if any(feats.get("lut_mul") for name, feats in features.items()
           if name.startswith("pe_") or name == "post"):
        return "lut"
    if any(res["dsps"] for res in exact.values()):
        return "dsp"
    return "none"


def _check_target(target):
    dev = device(target) if isinstance(target, str) else target
    if dev.family != "ice40":
        from .devices import DEVICES
        ice40 = ", ".join(name for name, d in DEVICES.items() if d.family == "ice40")
        raise ArgumentError(f"Analytic estimates are calibrated for iCE40 targets ({ice40}), "
                            f"not {dev.name!r}")
    return dev


def block_features(design, target="ice40-up5k"):
    """``{block: {feature: value}}`` of a :class:`~hwgen.compiler.CompiledDesign` (see the
    module docstring; PE blocks are per PE, with ``count`` the PEs of that kind), and
    ``{block: {"dsps": n, "brams": n}}`` as the second item."""
    dev = _check_target(target)
    cfg = design.config
    rows, cols, pes = cfg.rows, cfg.cols, cfg.rows * cfg.cols
    a = design.act_width
    features, exact = {}, {}
    depths = [design.buffer_depth, len(design.param_image), pes] + [
        len(engine.weight_image) for engine in design.engines]
    count = max(depths).bit_length() + 1
    for engine in design.engines:
        w, acc = engine.weight_width, engine.acc_width
        pe = {"const": 1, "acc": acc, "a": a, "w": w}
        dsps = 0
        if engine.kind == "codebook":
            # MAC PEs of the looked-up weights' width; the tables are ROMs in logic
            w = engine.value_width
            pe["w"] = w
        if engine.kind in ("fixed", "codebook"):
            dsps = dsp_blocks(a, w, dev)
            pe["lut_mul"] = 0 if dsps else a * w
        elif engine.kind == "shift":
            pe["shifter"] = a * (w - 2)
        else:
            pe = {"const": 1, "acc": acc, "p": cfg.xnor_width}
        features[f"pe_{engine.kind}"] = {**pe, "count": pes}
        features[f"engine_{engine.kind}"] = {"const": 1, "feed": rows * design.word_width}
        brams = bram_blocks(len(engine.weight_image), cols * engine.weight_width, rom=True)
        if engine.banks:
            # split layers' weight banks 1 … rows − 1: ROMs like the weight memory, and
            # their muxes and registers (SPLIT_COEFFICIENTS)
            brams += sum(bram_blocks(len(bank), cols * engine.weight_width, rom=True)
                         for bank in engine.banks)
            features[f"engine_{engine.kind}"].update(
                bank_mux=(rows - 1) * cols * engine.weight_width,
                bank_regs=len(engine.banks) * (count + cols * (cols + 1) // 2
                                               * engine.weight_width))
        if engine.tables:
            # one ROM per column, read from the index memory's output into the feed
            # register: Yosys makes it logic, or a block RAM when that costs it less
            depth = len(engine.tables) << engine.weight_width
            rom = bram_blocks(depth, engine.value_width, rom=True)
            brams += cols * rom
            if not rom:
                features[f"engine_{engine.kind}"]["lookup"] = \
                    cols * depth * engine.value_width
        exact[f"engine_{engine.kind}"] = {"dsps": pes * dsps, "brams": brams}
    addr = max(1, (design.buffer_depth - 1).bit_length())
    features["drain"] = {"const": 1, "mux": sum(pes * e.acc_width for e in design.engines),
                         "line": (rows + cols) * count}
    pool_win = max((layer.desc.win for layer in design.layers if layer.desc.drain_pool),
                   default=0)
    if rows > 1 and any(layer.desc.split or layer.desc.drain_pool for layer in design.layers):
        acc = max(e.acc_width for e in design.engines)
        level = regs = rows
        while level > 1:
            level = (level + 1) // 2
            regs += level
        col_bits = max(1, (max(2, cols) - 1).bit_length())
        meta = 4 + col_bits + (4 if "stochastic" in design.roundings else 2) * count
        features["drain"].update(
            mux=0, column_select=features["drain"]["mux"],
            sum_add=(rows - 1) * acc,
            sum_regs=acc * regs + meta * (1 + (rows - 1).bit_length()),
            split_select=acc + 2 * count)
        if pool_win:
            # the tree's first log2(win) levels also take maxima (a compare and a choice
            # per node), and the window of the slot's group is picked and carried
            features["drain"]["pool_max"] = 2 * acc * (rows - rows // pool_win) + (
                acc * (rows // pool_win) if rows > pool_win else 0)
    scale_dsps = dsp_blocks(design.acc_width, design.scale_width, dev) \
        if design.scale_width else 0
    features["post"] = {"const": 1, "acc": design.acc_width + design.scale_width,
                        "pool": cols * a,
                        "lut_mul": 0 if scale_dsps or not design.scale_width
                        else design.acc_width * design.scale_width}
    exact["post"] = {"dsps": scale_dsps, "brams": 0}
    convs = sum(layer.kind == "conv" for layer in design.layers)
    from ..rtl.sequencer import record_layout, record_table, records_in_block_ram
    k_max, table, _ = record_table([layer.desc for layer in design.layers], addr)
    layout = record_layout(addr, k_max)
    # Yosys drops the bits that are the same in every record
    words = [sum(record[name] << field.offset for name, field in layout)
             for record in table]
    varying = 0
    for word in words:
        varying |= word ^ words[0]
    table_bits = varying.bit_count()
    table_brams = bram_blocks(len(table), table_bits) \
        if records_in_block_ram(len(table), layout.size) else 0
    features["seq"] = {"const": 1, "records": rows * (addr + 3), "count": count,
                       "convs": convs, "linears": len(design.layers) - convs,
                       "table": 0 if table_brams else len(table) * table_bits}
    exact["seq"] = {"dsps": 0, "brams": table_brams}
    packed = int(any(layer.desc.pack_out for layer in design.layers))
    features["act"] = {"const": 1, "read": rows * design.word_width, "packed": packed}
    exact["act"] = {"dsps": 0,
                    "brams": rows * bram_blocks(design.buffer_depth, design.word_width)}
    from ..contract import param_word_fields
    bit_width = max(1, (cfg.xnor_width - 1).bit_length())
    param_bits = sum(width for _, width, _ in param_word_fields(
        design.acc_width, design.scale_width, addr, bit_width))
    param_brams = bram_blocks(len(design.param_image), param_bits, rom=True)
    features["top"] = {"const": 1,
                       "params": 0 if param_brams else len(design.param_image) * param_bits}
    exact["top"] = {"dsps": 0, "brams": param_brams}
    return features, exact


def _linear(coefficients, features):
    return sum(coefficients.get(name, 0.0) * value for name, value in features.items()
               if name != "count")


def _coefficients(block, resource):
    """``{feature: coefficient}`` of a block (``engine``, ``drain``, …) for ``resource``:
    :data:`COEFFICIENTS`' over :data:`SPLIT_COEFFICIENTS`'."""
    return {**SPLIT_COEFFICIENTS.get(block, {}).get(resource, {}),
            **COEFFICIENTS[block][resource]}


def analytic_estimate(design, target="ice40-up5k"):
    """The :class:`AnalyticEstimate` of a compiled design on an iCE40 ``target`` (a name
    or a :class:`~hwgen.estimate.devices.Device`); :class:`~hwgen.errors.ArgumentError`
    for another family."""
    dev = _check_target(target)
    features, exact = block_features(design, dev)
    blocks = {}
    for name, feats in features.items():
        if name.startswith("pe_"):
            continue
        if name.startswith("engine_"):
            kind = name[len("engine_"):]
            pe = features[f"pe_{kind}"]
            res = {r: pe["count"] * _linear(COEFFICIENTS[PE_BLOCKS.get(kind, f"pe_{kind}")][r],
                                            pe)
                   + _linear(_coefficients("engine", r), feats) for r in ("luts", "ffs")}
            res["luts"] += LOOKUP_LUTS_PER_BIT * feats.get("lookup", 0)
        else:
            res = {r: _linear(_coefficients(name, r), feats) for r in ("luts", "ffs")}
        res.update(exact.get(name, {"dsps": 0, "brams": 0}))
        blocks[name] = {k: round(v) for k, v in res.items()}
    total = {}
    for r in ("luts", "ffs"):
        engines = sum(v[r] for b, v in blocks.items() if b.startswith("engine_"))
        control = sum(blocks[b][r] for b in CONTROL_BLOCKS)
        total[r] = round(engines + FLAT[r] * control)
    for r in ("dsps", "brams"):
        total[r] = sum(v[r] for v in blocks.values())
    lcs = round(sum(LCS_PER[r] * total[r] for r in LCS_PER))
    fits = (lcs <= dev.luts and total["ffs"] <= dev.ffs and
            total["dsps"] <= dev.dsps and total["brams"] <= dev.brams)
    lut_multipliers = sum(
        feats["count"] for name, feats in features.items()
        if name.startswith("pe_") and feats.get("lut_mul")) + bool(features["post"]["lut_mul"])
    fmax_class = FMAX_CLASSES[(dev.name, multiplier_kind(design, dev))]
    return AnalyticEstimate(design.name, dev.name, total["luts"], total["ffs"],
                            total["dsps"], total["brams"], fits, blocks, lcs, lut_multipliers,
                            fmax_class)
