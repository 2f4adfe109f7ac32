"""Write a compiled design to disk: Verilog, manifest, memory images, test vectors and the
filled ``rtl_templates``.

A design folder holds::

    hwgen_top.v        the accelerator (memories initialised with the model)
    manifest.json      the contract between software and hardware (CompiledDesign.to_json)
    weights.hex        weight memory images, one per engine, one word per line (also
                       inside the Verilog); after an engine's, its weight banks 1 … rows − 1
                       when it runs split layers (``// engine n bank r: …``)
    params.hex         bias/shift memory image
    testvectors.npz    quantized test inputs, golden outputs and labels (no pickles)
    hwgen_axis.v       AXI4-Stream wrapper around hwgen_top
    hwgen_inst.v       instantiation template
    fit.json           when compiled with ``--fit TARGET``: the array shapes tried and the
                       one chosen (:class:`hwgen.estimate.fit.FitChoice`)

and, once ``hwgen simulate`` ran, ``sim_report.json`` and ``sim_outputs.npz``; once
``hwgen build --board B`` ran, the folder ``board_B/`` (:mod:`hwgen.boards.build`).

These are the only files hwgen writes or replaces in a design folder (:data:`DESIGN_FILES`
and the ``board_B/`` folders, which a new design removes);
anything else a user keeps there is left alone. All files of a design are generated into a
staging folder first and moved into place only when every one of them was written, so a
failure (or Ctrl-C) leaves the earlier design or nothing; new folders get the user's umask.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .compiler import CompiledDesign
from .errors import HwgenError
from .estimate.devices import DEVICES
from .files import check_output_dir, make_dirs, private_dir, remove_dirs

__all__ = ["DESIGN_FILES", "OUTPUTS_FILE", "REPORT_FILE", "TOPLEVEL", "check_design_dir",
           "read_design", "read_overflow", "read_vectors", "verilog", "write_design"]

TOPLEVEL = "hwgen_top"
MANIFEST_FILE = "manifest.json"
FIT_FILE = "fit.json"
VECTORS_FILE = "testvectors.npz"
#: What ``hwgen simulate`` writes into a design folder.
REPORT_FILE = "sim_report.json"
OUTPUTS_FILE = "sim_outputs.npz"
#: Every file hwgen may write in a design folder; nothing else there is touched.
DESIGN_FILES = (f"{TOPLEVEL}.v", MANIFEST_FILE, "weights.hex", "params.hex", VECTORS_FILE,
                "hwgen_axis.v", "hwgen_inst.v", FIT_FILE, REPORT_FILE, OUTPUTS_FILE,
                *(f"estimate_{target}.json" for target in DEVICES))

def verilog(design, name=TOPLEVEL):
    """Verilog text of the accelerator for ``design``."""
    from amaranth.back import verilog as amaranth_verilog

    from .rtl.top import Accelerator
    top = Accelerator(design)
    return amaranth_verilog.convert(top, name=name, emit_src=False)


def _hex_lines(values, width):
    digits = max(1, (width + 3) // 4)
    mask = (1 << width) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def _is_design(folder):
    return (Path(folder) / MANIFEST_FILE).is_file()


def check_design_dir(out_dir, force=False):
    """Check, before any long work, that a design may be written to ``out_dir``: a new
    folder that can be created, an empty one, an earlier design (whose hwgen files will be
    replaced), or with ``force`` any folder. Raises :class:`~hwgen.errors.ArgumentError`."""
    return check_output_dir(out_dir, _is_design, force=force)


def _design_files(design, vectors):
    """``{file name: bytes}`` of every file of the design folder."""
    from . import templates

    files = {
        f"{TOPLEVEL}.v": verilog(design),
        MANIFEST_FILE: design.dumps(),
        "weights.hex": "".join(
            f"// engine {n}{f' bank {r}' if r else ''}: PE kind {e.kind}, {len(image)} words of "
            f"{design.config.cols} x {e.weight_width} bits\n"
            + _hex_lines(image, design.config.cols * e.weight_width)
            for n, e in enumerate(design.engines)
            for r, image in enumerate((e.weight_image, *e.banks))),
        "params.hex": "".join(" ".join(str(v) for v in p) + "\n" for p in design.param_image),
        **templates.render(design),
    }
    return {name: text.encode() for name, text in files.items()}


def write_design(design, out_dir, vectors=None, force=False, fit=None):
    """Write ``design`` into ``out_dir``; returns the folder as a ``Path``.

    An earlier design there is replaced: its hwgen files (:data:`DESIGN_FILES`) are
    replaced or, for the simulation results that no longer apply, removed; any other file
    in the folder is kept. A folder that holds other files but no design is refused unless
    ``force``.

    ``vectors`` is ``(inputs, expected, labels[, overflow])``: integer inputs ``(N,
    n_in)``, golden outputs ``(N, n_out)``, labels ``(N,)`` and, optionally, per
    requantizing layer the values it saturated and wrapped per input (``{layer: (N, 2)}``).
    ``fit`` is the :class:`~hwgen.estimate.fit.FitChoice` that chose the array, if one did.
    """
    out = check_design_dir(out_dir, force)
    files = _design_files(design, vectors)      # the long part, before touching the disk
    if fit is not None:
        files[FIT_FILE] = (json.dumps(fit.to_json(), indent=1) + "\n").encode()
    created = [] if out.exists() else make_dirs(out.parent)
    new_folder = not out.exists()
    stage = private_dir(out.parent if new_folder else out, f".{out.name or 'design'}.tmp-")
    try:
        for name, data in files.items():
            (stage / name).write_bytes(data)
        if vectors is not None:
            inputs, expected, labels, *overflow = vectors
            overflow = overflow[0] if overflow else {}
            np.savez(stage / VECTORS_FILE, inputs=np.asarray(inputs, dtype=np.int64),
                     expected=np.asarray(expected, dtype=np.int64),
                     labels=np.asarray(labels, dtype=np.int64),
                     overflow_layers=np.array(list(overflow), dtype=str),
                     overflow=np.array([overflow[name] for name in overflow],
                                       dtype=np.int64).reshape(len(overflow), len(inputs), 2))
        if new_folder:
            os.rename(stage, out)
            return out
        # Replace an earlier design file by file: the manifest goes first and comes back
        # last, so an interruption leaves a folder that is not taken for a whole design.
        (out / MANIFEST_FILE).unlink(missing_ok=True)
        written = set(os.listdir(stage))
        for name in DESIGN_FILES:
            if name != MANIFEST_FILE and name not in written:
                (out / name).unlink(missing_ok=True)
        # board builds of the earlier design would load the wrong design onto a board
        from .boards import BOARDS, SUMMARY_FILE
        for name in BOARDS:
            if (out / f"board_{name}" / SUMMARY_FILE).is_file():
                shutil.rmtree(out / f"board_{name}", ignore_errors=True)
        for name in sorted(written, key=lambda n: n == MANIFEST_FILE):
            os.replace(stage / name, out / name)
        stage.rmdir()
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        remove_dirs(created)
        raise HwgenError(f"Cannot write design folder {str(out)!r}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_dirs(created)
        raise
    return out


def read_design(design_dir):
    """The :class:`CompiledDesign` of a design folder."""
    folder = Path(design_dir)
    if not folder.is_dir():
        raise HwgenError(f"Design folder {str(design_dir)!r} does not exist; write one with "
                         f"`hwgen compile MODEL --out {design_dir}`")
    path = folder / MANIFEST_FILE
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise HwgenError(f"Folder {str(design_dir)!r} is not an hwgen design (it has no "
                         f"{MANIFEST_FILE}); write one with `hwgen compile`") from None
    except (OSError, json.JSONDecodeError) as e:
        raise HwgenError(f"Manifest {str(path)!r} cannot be read: {e}") from None
    try:
        return CompiledDesign.from_json(obj)
    except (KeyError, TypeError, ValueError) as e:
        raise HwgenError(f"Manifest {str(path)!r} is incomplete: {e!r}") from None


def read_overflow(design_dir):
    """``{layer: (N, 2) array}``: per test vector, the values each requantizing layer
    saturated and wrapped in the golden model (empty when the vectors do not say)."""
    path = Path(design_dir) / VECTORS_FILE
    try:
        with np.load(path, allow_pickle=False) as f:
            if "overflow" not in f:
                return {}
            return dict(zip(f["overflow_layers"].tolist(), f["overflow"]))
    except FileNotFoundError:
        raise HwgenError(f"Design folder {str(design_dir)!r} has no testvectors.npz") from None
    except (OSError, ValueError, KeyError) as e:
        raise HwgenError(f"Test vectors {str(path)!r} cannot be read: {e}") from None


def read_vectors(design_dir):
    """``(inputs, expected, labels)`` of a design folder."""
    path = Path(design_dir) / VECTORS_FILE
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["inputs"], f["expected"], f["labels"]
    except FileNotFoundError:
        raise HwgenError(f"Design folder {str(design_dir)!r} has no testvectors.npz") from None
    except (OSError, ValueError, KeyError) as e:
        raise HwgenError(f"Test vectors {str(path)!r} cannot be read: {e}") from None
