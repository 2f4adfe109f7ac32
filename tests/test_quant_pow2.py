"""hwgen.quant.pow2: the power-of-two quantizer kind."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen import golden, quant
from hwgen.errors import FormatError
from hwgen.flow import load_quantized
from hwgen.numerics import Pow2Format, dequantize, quantize, sqnr_db
from hwgen.quant.pow2 import calibrate_e_max, pow2_format

# --- construction and error messages ----------------------------------------------------


@pytest.mark.parametrize("entry,message", [
    ({"kind": "pow2", "bits": 2}, r"layer 'fc': bits must be an integer from 3 to 7, not 2"),
    ({"kind": "pow2", "bits": 8}, r"layer 'fc': bits must be an integer from 3 to 7, not 8"),
    ({"kind": "pow2", "e_max": "high"},
     r"layer 'fc': e_max must be an integer or 'auto', not 'high'"),
    ({"kind": "pow2", "e_max": [0, 1.5]}, r"layer 'fc': e_max entry must be an integer, not 1\.5"),
    ({"kind": "pow2", "per_channel": 1}, r"layer 'fc': per_channel must be true or false, not 1"),
    ({"kind": "pow2", "binary_out": "yes"},
     r"layer 'fc': binary_out must be true or false, not 'yes'"),
    ({"kind": "pow2", "width": 8},
     (r"layer 'fc' has unknown key 'width'; keys are bits, e_max, per_channel, out_width, "
      r"frac, binary_out, rounding, overflow, bias_width, acc_width, acc_overflow")),
])
def test_bad_pow2_entries(tmp_path, entry, message):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": entry}}))
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}' {message}$"):
        quant.load_scheme(str(p))


def test_e_max_list_length_checked(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": {"kind": "pow2", "e_max": [0, 1]}}}))
    with pytest.raises(FormatError, match=r"^Layer 'fc' has 10 output channels, not the 2 "
                                          r"e_max entries of its spec$"):
        load_quantized("builtin:digits-cnn", str(p))


def test_stored_bits_is_the_code_width():
    for bits in range(3, 8):
        fmt = pow2_format(0, bits)
        assert fmt.stored_bits == bits and fmt.e_max - fmt.e_min + 1 == 1 << (bits - 2)
    assert pow2_format(1, 4) == Pow2Format(-2, 1)


# --- the quantizer ----------------------------------------------------------------------

floats = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=1, max_size=20), st.integers(-6, 4), st.integers(3, 6))
def test_every_output_is_in_the_value_set(xs, e_max, bits):
    fmt = pow2_format(e_max, bits)
    q = quantize(np.array(xs), fmt)
    allowed = {0} | {s * (1 << k) for s in (1, -1) for k in range(e_max - fmt.e_min + 1)}
    assert set(q.tolist()) <= allowed
    # Signs never flip.
    assert np.all(np.sign(q) * np.sign(xs) >= 0)


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-6, 1e3, allow_nan=False), st.booleans())
def test_log_domain_rounding_picks_the_nearest_exponent(mag, negative):
    fmt = Pow2Format(-30, 30)
    x = -mag if negative else mag
    v = float(dequantize(quantize(np.array([x]), fmt), fmt)[0])
    e = math.log2(abs(v))
    assert e == int(e) and math.copysign(1, v) == math.copysign(1, x)
    # No other exponent is nearer in the log domain.
    assert abs(math.log2(mag) - e) <= 0.5 + 1e-12


def test_zero_threshold_and_clamping():
    fmt = Pow2Format(-2, 1)     # magnitudes 1/4 .. 2
    x = np.array([0.0, 0.1249, 0.125, -0.125, 0.2, 0.3, 3.0, 100.0, -100.0])
    v = dequantize(quantize(x, fmt), fmt)
    # below half the smallest magnitude (1/8) -> 0; at 1/8 and up -> 1/4; above the range -> 2
    np.testing.assert_array_equal(v, [0, 0, 0.25, -0.25, 0.25, 0.25, 2, 2, -2])


def test_calibrate_e_max():
    # Two exponents: e_max = -1 holds both exactly, e_max = 0 (E0 + 1) rounds 0.25 up.
    assert calibrate_e_max(np.array([0.5, -0.25]), 3) == -1
    # All-zero weights: E0 = 0 and every candidate ties; the largest wins.
    assert calibrate_e_max(np.zeros(4), 4) == 1
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, 1000)
    e = calibrate_e_max(w, 4)
    fmt = pow2_format(e, 4)
    best = sqnr_db(w, dequantize(quantize(w, fmt), fmt))
    for other in range(e - 2, e + 2):
        f = pow2_format(other, 4)
        assert best >= sqnr_db(w, dequantize(quantize(w, f), f))


def test_fake_quant_straight_through_gradient():
    w = torch.tensor([[0.3, -3.0, 0.01, 1.9]], requires_grad=True)
    fmt = Pow2Format(-2, 1)
    y = quant.get_kind("pow2").fake_quant(w, (fmt,))
    np.testing.assert_array_equal(y.detach().numpy(), [[0.25, -2, 0, 2]])
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 0, 1, 1]])


# --- the scheme -------------------------------------------------------------------------

def test_pow2_4_scheme_graph_and_bytes():
    qm = load_quantized("builtin:digits-cnn", "pow2-4")
    conv1, conv2, _, fc = qm.graph.layers
    for layer in (conv1, conv2, fc):
        fmt = layer.w_fmts[0]
        assert isinstance(fmt, Pow2Format) and fmt.stored_bits == 4
        mags = np.unique(np.abs(layer.weight))
        assert set(mags.tolist()) <= {0, 1, 2, 4, 8}
        assert layer.in_fmt.width == 8 and layer.out_fmt.width == 8
    rows = qm.layer_table()
    assert [r.weight_bytes for r in rows] == [36, 1152, 0, 640]  # half of fixed8's


def test_pow2_json_spec_per_channel_is_bit_exact(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"default": {"width": 8},
                             "layers": {"conv2": {"kind": "pow2", "bits": 5,
                                                  "per_channel": True}}}))
    qm = load_quantized("builtin:digits-cnn", str(p))
    conv2 = qm.graph.layers[1]
    assert len({f.e_max for f in conv2.w_fmts}) > 1 and conv2.w_fmts[0].stored_bits == 5
    s = quant.load_scheme(str(p))
    assert quant.scheme_from_json(json.loads(json.dumps(s.to_json()))) == s
    x = qm.dataset.x_test
    with torch.no_grad():
        fq = qm.module(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(
        fq, dequantize(golden.run(qm.graph, qm.quantize_input(x)), qm.graph.output_fmt))
