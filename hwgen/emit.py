"""Write a compiled design to disk: Verilog, manifest, memory images, test vectors and the
filled ``rtl_templates``.

A design folder holds::

    hwgen_top.v        the accelerator (memories initialised with the model)
    manifest.json      the contract between software and hardware (CompiledDesign.to_json)
    weights.hex        weight memory image, one word per line (also inside the Verilog)
    params.hex         bias/shift memory image
    testvectors.npz    quantized test inputs, golden outputs and labels (no pickles)
    hwgen_axis.v       AXI4-Stream wrapper around hwgen_top
    hwgen_inst.v       instantiation template

Folders are written to a temporary sibling first and renamed into place, so a failure
never leaves a half-written design.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .compiler import CompiledDesign
from .errors import HwgenError

__all__ = ["TOPLEVEL", "read_design", "read_vectors", "verilog", "write_design"]

TOPLEVEL = "hwgen_top"


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


def write_design(design, out_dir, vectors=None):
    """Write ``design`` into ``out_dir`` (replacing an earlier hwgen design there).

    ``vectors`` is ``(inputs, expected, labels)``: integer inputs ``(N, n_in)``, golden
    outputs ``(N, n_out)`` and labels ``(N,)``.
    """
    from . import templates

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "manifest.json").exists())):
        raise HwgenError(f"Output folder {str(out)!r} exists and is not an hwgen design; "
                         f"choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = verilog(design)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / f"{TOPLEVEL}.v").write_text(text)
        (tmp / "manifest.json").write_text(design.dumps())
        (tmp / "weights.hex").write_text(
            _hex_lines(design.weight_image, design.config.cols * design.weight_width))
        (tmp / "params.hex").write_text(
            "".join(f"{b} {s}\n" for b, s in design.param_image))
        for filename, content in templates.render(design).items():
            (tmp / filename).write_text(content)
        if vectors is not None:
            inputs, expected, labels = vectors
            np.savez(tmp / "testvectors.npz", inputs=np.asarray(inputs, dtype=np.int64),
                     expected=np.asarray(expected, dtype=np.int64),
                     labels=np.asarray(labels, dtype=np.int64))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_design(design_dir):
    """The :class:`CompiledDesign` of a design folder."""
    path = Path(design_dir) / "manifest.json"
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise HwgenError(f"Design folder {str(design_dir)!r} has no manifest.json; "
                         f"run `hwgen compile` first") from None
    except (OSError, json.JSONDecodeError) as e:
        raise HwgenError(f"Manifest {str(path)!r} cannot be read: {e}") from None
    try:
        return CompiledDesign.from_json(obj)
    except (KeyError, TypeError, ValueError) as e:
        raise HwgenError(f"Manifest {str(path)!r} is incomplete: {e!r}") from None


def read_vectors(design_dir):
    """``(inputs, expected, labels)`` of a design folder."""
    path = Path(design_dir) / "testvectors.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["inputs"], f["expected"], f["labels"]
    except FileNotFoundError:
        raise HwgenError(f"Design folder {str(design_dir)!r} has no testvectors.npz") from None
    except (OSError, ValueError, KeyError) as e:
        raise HwgenError(f"Test vectors {str(path)!r} cannot be read: {e}") from None
