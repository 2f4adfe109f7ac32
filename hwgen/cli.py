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

from . import __version__
from .errors import HwgenError

__all__ = ["COMMANDS", "build_parser", "main", "add_train", "cmd_train", "add_quantize",
           "cmd_quantize"]


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
                   help="fine-tune for SCHEME (fixed16, fixed8, fixed4 or a JSON spec)")
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


def add_quantize(sub):
    p = sub.add_parser("quantize", help="quantize a model and report formats and accuracy",
                       description="Quantize MODEL with SCHEME and print, per layer, the "
                                   "formats, the SQNR against the float model and the "
                                   "parameter bytes, then float and quantized test accuracy "
                                   "(the quantized figure is the golden model's, i.e. the "
                                   "hardware's).")
    p.add_argument("model", metavar="MODEL", help="checkpoint path or builtin:NAME")
    p.add_argument("--scheme", "-s", default="fixed8",
                   help="fixed16, fixed8 (default), fixed4 or a JSON spec path")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="say what is happening")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args):
    from .quant import load_quantized
    report = load_quantized(args.model, args.scheme, progress=args.verbose).report()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.format_table())
    return 0


#: The ``add_<name>`` functions of the subcommands, in help order.
COMMANDS = [add_train, add_quantize]


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


def main(argv=None):
    """Run the ``hwgen`` command line; returns the exit status.

    ``HwgenError`` gives one line on stderr and status 1; argparse usage errors raise
    ``SystemExit(2)`` as usual.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HwgenError as e:
        message = " ".join(str(e).split())
        print(f"hwgen: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hwgen: error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
