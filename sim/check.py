"""Simulate a design folder and hold the hardware against the golden model and the cycle
model: every output word and every layer's cycle count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..emit import OUTPUTS_FILE, REPORT_FILE, TOPLEVEL, read_design, read_overflow, read_vectors
from ..errors import HwgenError, check_int
from ..files import atomic_write
from ..report import SimReport
from .cache import default_build_dir
from .runner import check_simulator, check_waves, run

__all__ = ["compare", "default_build_dir", "simulate_design"]


def compare(expected, got):
    """``(mismatched words, indices of mismatched samples)`` of two ``(N, n_out)`` arrays."""
    expected = np.asarray(expected, dtype=np.int64)
    got = np.asarray(got, dtype=np.int64)
    if expected.shape != got.shape:
        raise HwgenError(f"The hardware gave outputs of shape {got.shape!r}, the golden model "
                         f"{expected.shape!r}")
    bad = expected != got
    return int(bad.sum()), tuple(int(i) for i in np.flatnonzero(bad.any(axis=1)))


def simulate_design(design_dir, samples=20, simulator="verilator", waves=None,
                    build_dir=None, expected=None, progress=None):
    """Run ``samples`` test vectors of ``design_dir`` through its Verilog; write and return
    the :class:`SimReport` (``design_dir/sim_report.json``) and keep the hardware's output
    words in ``design_dir/sim_outputs.npz`` (arrays ``outputs`` ``(N, image_out)``, and per
    start of ``design.batch`` images ``cycles`` ``(starts,)`` and ``layer_cycles``
    ``(starts, layer program entries)``, ``layer_names``, all ``int64`` but the names).

    ``waves`` is ``None``, ``"vcd"`` or ``"fst"``. ``expected`` overrides the stored golden
    outputs (tests use it to show that a changed expected word is caught).
    ``progress(message)`` hears when the simulation starts, once the folder, the arguments
    and the simulator have been checked.
    """
    design_dir = Path(design_dir)
    samples = check_int(samples, "Samples", minimum=1)
    design = read_design(design_dir)
    inputs, golden, labels = read_vectors(design_dir)
    verilog = design_dir / f"{TOPLEVEL}.v"
    if not verilog.is_file():
        raise HwgenError(f"Design folder {str(design_dir)!r} has no {verilog.name}; run "
                         f"`hwgen compile` again")
    check_simulator(simulator)
    waves = check_waves(waves, simulator)
    if samples > len(inputs):
        raise HwgenError(f"Design folder {str(design_dir)!r} holds {len(inputs)} test vectors, "
                         f"not {samples!r}")
    inputs, golden, labels = inputs[:samples], golden[:samples], labels[:samples]
    if expected is not None:
        golden = np.asarray(expected)[:samples]
    if build_dir is None:
        build_dir = default_build_dir()
    n_layers = len(design.layers)
    predicted_total = design.cycles
    max_cycles = 4 * (predicted_total + design.n_in + 4 * design.n_out) + 1000
    if progress is not None:
        batches = "" if design.batch == 1 else f" in batches of {design.batch}"
        progress(f"simulating {samples} images{batches} on {simulator} (the first build of a "
                 f"design takes a while)")
    result = run(verilog, design.to_batches(inputs), design.n_out, n_layers,
                 build_dir=build_dir, simulator=simulator, waves=waves, max_cycles=max_cycles)
    outputs = design.from_batches(result.outputs, samples)

    mismatches, bad_samples = compare(golden, outputs)
    names = [layer.name for layer in design.layers]
    predicted = np.array([layer.cycles.total for layer in design.layers], dtype=np.int64)
    cycles_match = bool((result.layer_cycles == predicted).all()
                        and (result.cycles == predicted_total).all())
    # Cycles do not depend on the data; report the sample that differs most if any does.
    worst = int(np.argmax(np.abs(result.layer_cycles - predicted).sum(axis=1)))
    measured_layers = result.layer_cycles[worst]
    ideal = {layer.name: design.layer_ideal(layer) for layer in design.layers}
    overflow = {name: dict(zip(("saturated", "wrapped"), map(int, counts[:samples].sum(axis=0))))
                for name, counts in read_overflow(design_dir).items()}
    measured_total = int(result.cycles[worst])
    n_classes = design.image_out
    scores_hw = outputs.reshape(samples, n_classes)
    accuracy = float(np.mean(np.argmax(scores_hw, axis=1) == labels))
    golden_accuracy = float(np.mean(np.argmax(golden.reshape(samples, n_classes), axis=1)
                                    == labels))
    report = SimReport(
        design=design.name,
        array=f"{design.config.rows}x{design.config.cols}",
        simulator=simulator, samples=samples,
        bit_exact=mismatches == 0, mismatches=mismatches, mismatched_samples=bad_samples[:20],
        cycles_measured={"per_layer": dict(zip(names, map(int, measured_layers))),
                         "total": measured_total},
        cycles_predicted={"per_layer": dict(zip(names, map(int, predicted))),
                          "total": int(predicted_total)},
        cycles_match=cycles_match,
        ideal_cycles={"per_layer": ideal, "total": design.ideal_cycles},
        utilization={"per_layer": {n: ideal[n] / max(1, int(c))
                                   for n, c in zip(names, measured_layers)},
                     "total": design.ideal_cycles / max(1, measured_total)},
        accuracy=accuracy, golden_accuracy=golden_accuracy,
        sim_cycles_per_second=result.cycles_per_second, sim_seconds=result.sim_seconds,
        build_seconds=result.build_seconds, verilog=str(verilog),
        waves=None if result.waves is None else str(result.waves),
        overflow=overflow, batch=design.batch,
    )
    atomic_write(design_dir / OUTPUTS_FILE, lambda f: np.savez(
        f, outputs=outputs, cycles=result.cycles, layer_cycles=result.layer_cycles,
        layer_names=np.array(names)))
    atomic_write(design_dir / REPORT_FILE, lambda f: f.write(report.dumps().encode()))
    return report
