"""hwgen.quant.ternary: TWN weights {−α, 0, +α}, the ternary scheme end to end."""

import json

import numpy as np
import pytest
import torch

from hwgen import golden, quant
from hwgen.compiler import AcceleratorConfig, compile_graph
from hwgen.errors import FormatError
from hwgen.flow import load_quantized
from hwgen.numerics import Pow2Format, dequantize
from hwgen.quant.ternary import ternarize, ternary_parts


def test_ternary_by_hand():
    # channel 0: mean|w| = 0.375, Δ = 0.2625: -0.9 and 0.5 survive, α = (0.9 + 0.5) / 2
    # channel 1: all equal magnitudes: every weight survives, α = 0.25
    w = torch.tensor([[0.1, -0.9, 0.5, 0.0], [0.25, -0.25, 0.25, 0.25]])
    t, m = ternary_parts(w, 14)
    np.testing.assert_array_equal(t, [[0, -1, 1, 0], [1, -1, 1, 1]])
    np.testing.assert_array_equal(m, [11469, 4096])      # rint(0.7·2**14), 0.25·2**14
    assert ternary_parts(torch.zeros(1, 3))[0].tolist() == [[0, 0, 0]]
    assert ternary_parts(torch.zeros(1, 3), 14)[1].tolist() == [0]


def test_ternarize_values_and_straight_through_gradient():
    w = torch.tensor([[0.1, -0.9, 0.5, 1.5]], requires_grad=True)
    y = ternarize(w, 4)
    # mean|w| = 0.75, Δ = 0.525: -0.9, 1.5 survive; α = 1.2 → rint(19.2) / 16
    np.testing.assert_array_equal(y.detach().numpy(), [[0, -19 / 16, 0, 19 / 16]])
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1, 1, 0]])


def test_bad_ternary_entry(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": {"kind": "ternary", "stochastic": True}}}))
    with pytest.raises(FormatError, match=r"layer 'fc' has unknown key 'stochastic'; keys are "
                                          r"scale, scale_frac, out_width"):
        quant.load_scheme(str(p))


def test_ternary_scheme_on_the_shift_pe():
    qm = load_quantized("builtin:digits-cnn", "ternary")
    fixed8 = load_quantized("builtin:digits-cnn", "fixed8").quantized_accuracy()
    assert qm.quantized_accuracy() >= fixed8 - 0.02
    dense = [qm.graph.layers[i] for i in (0, 1, 3)]
    for layer in dense:
        assert set(layer.w_fmts) == {Pow2Format(0, 0)}
        assert set(np.unique(layer.weight).tolist()) == {-1, 0, 1}
        assert layer.scale is not None
    # 2 bits a weight: 72, 2304 and 1280 weights
    assert [r.weight_bytes - r_scale for r, r_scale in
            zip([qm.layer_table()[i] for i in (0, 1, 3)], (16, 64, 20))] == [18, 576, 320]
    x = qm.dataset.x_test
    with torch.no_grad():
        fq = qm.module(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(fq, dequantize(golden.run(qm.graph, qm.quantize_input(x)),
                                                 qm.graph.output_fmt))
    design = compile_graph(qm.graph, AcceleratorConfig())
    assert [(e.kind, e.weight_width) for e in design.engines] == [("shift", 2)]
