"""Stochastic rounding in hardware: the digits CNN with every layer rounding
stochastically, on Verilator, bit-exact on every output word with the predicted cycles."""

import dataclasses
import json

import numpy as np

from hwgen import golden, timing
from hwgen.emit import read_vectors
from hwgen.flow import compile_model
from hwgen.numerics import stochastic_random
from hwgen.sim.check import simulate_design


def test_digits_cnn_stochastic_4bit_4x4(check, tmp_path, tmp_path_factory):
    spec = tmp_path / "st4.json"
    spec.write_text(json.dumps({"default": {"width": 4, "rounding": "stochastic"},
                                "seed": 11}))
    design, qmodel = compile_model("builtin:digits-cnn", str(spec), "4x4", tmp_path / "d",
                                   vectors=3)
    assert design.roundings == ("stochastic",)
    # the post-processing unit's extra stage is in the prediction
    assert design.post_latency == 5 == timing.post_process_latency(False, True)
    dense = [layer for layer in qmodel.graph.layers if hasattr(layer, "weight")]
    assert [p.desc.rand_mask for p in design.layers] == [
        int(stochastic_random(11, layer.layer_number, 0, 0)) for layer in dense]
    report = simulate_design(tmp_path / "d", samples=3,
                             build_dir=tmp_path_factory.mktemp("st_build"))
    check(report, design)
    # Not vacuous: with nearest rounding the same words differ (the hardware's random
    # values reach the outputs).
    inputs, expected, _ = read_vectors(tmp_path / "d")
    x = inputs.reshape((-1,) + qmodel.graph.input_shape)[:3]
    nearest = [dataclasses.replace(layer, rounding="nearest_even")
               if hasattr(layer, "weight") else layer for layer in qmodel.graph.layers]
    graph = dataclasses.replace(qmodel.graph, layers=tuple(nearest))
    assert not np.array_equal(golden.run(graph, x), expected[:3])
