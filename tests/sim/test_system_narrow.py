"""Narrow accumulators on Verilator: the MLP with a saturating and a wrapping accumulator in
one engine (selected per layer by the descriptor's acc_mode), accumulations that overflow,
every output word bit-exact and every layer's cycles as predicted."""

import json

from hwgen import golden
from hwgen.emit import read_vectors
from hwgen.flow import compile_model
from hwgen.sim.check import simulate_design


def test_mlp_narrow_accumulators(check, tmp_path, tmp_path_factory):
    spec = tmp_path / "narrow.json"
    spec.write_text(json.dumps({
        "default": {"width": 8, "acc_width": 14, "acc_overflow": "saturate"},
        "layers": {"fc2": {"acc_width": 13, "acc_overflow": "wrap"}}}))
    samples = 5
    design, qmodel = compile_model("builtin:mlp", str(spec), "3x2", tmp_path / "d",
                                   vectors=samples)
    (engine,) = design.engines
    assert engine.acc_modes == ((14, "saturate"), (13, "wrap"))
    assert [layer.desc.acc_mode for layer in design.layers] == [0, 1]
    assert engine.acc_width < 23    # bit growth would need 23 bits
    inputs = read_vectors(tmp_path / "d")[0].reshape((-1,) + qmodel.graph.input_shape)
    counts = golden.accumulator_overflows(qmodel.graph, inputs[:samples])
    assert counts["fc1"] > 0 and counts["fc2"] > 0
    report = simulate_design(tmp_path / "d", samples=samples,
                             build_dir=tmp_path_factory.mktemp("sim_build"))
    check(report, design)
