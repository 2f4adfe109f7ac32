"""QONNX model files (hwgen/onnx_reader.py, hwgen/quant/imported.py): Quant and BipolarQuant
read by hwgen's own reader, formats taken from the file, the golden model equal to the QONNX
semantics computed here in numpy; quantizers hwgen cannot reproduce and hostile domains
refused with one line, importing nothing."""

import re

import numpy as np
import pytest

from hwgen.cli import main
from hwgen.errors import UnsupportedLayerError
from hwgen.flow import load_quantized
from hwgen.quant.imported import int_quant

onnx = pytest.importorskip("onnx", reason="QONNX files need onnx (pip install hwgen[onnx])")
from onnx import TensorProto, helper

QD = "qonnx.custom_op.general"


# --- QONNX semantics, from the QONNX spec (the oracle) ---------------------------------------

def quant(x, scale, bits, signed=True, narrow=False, floor=False):
    """QONNX ``Quant`` with zero point 0: ``clamp(round(x / scale)) * scale``, ``ROUND``
    being numpy's round half to even."""
    lo = -2 ** (bits - 1) + narrow if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - narrow
    r = np.floor(x / scale) if floor else np.round(x / scale)
    return np.clip(r, lo, hi) * scale


def bipolar(x, scale):
    """QONNX ``BipolarQuant``: ``sign(x) * scale`` with sign(0) = +1."""
    return np.where(x >= 0, 1.0, -1.0) * scale


# --- building files ---------------------------------------------------------------------------

class Builder:
    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, value):
        self.inits.append(helper.make_tensor(name, TensorProto.FLOAT, np.shape(value),
                                             np.asarray(value, np.float32).reshape(-1)))
        return name

    def quant(self, name, x, scale, bits=8, signed=1, narrow=0, zp=0.0, rounding="ROUND",
              domain=QD, op="Quant"):
        ins = [x, self.const(f"{name}_scale", scale)]
        attrs = {}
        if op == "Quant":
            ins += [self.const(f"{name}_zp", zp), self.const(f"{name}_bits", float(bits))]
            attrs = {"signed": signed, "narrow": narrow, "rounding_mode": rounding}
        self.nodes.append(helper.make_node(op, ins, [f"{name}_out"], name=name,
                                           domain=domain, **attrs))
        return f"{name}_out"

    def node(self, op, ins, name, **attrs):
        self.nodes.append(helper.make_node(op, ins, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def save(self, path, last, n_in, n_out, domains=(QD,)):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])
        self.nodes.append(helper.make_node("Identity", [last], ["y"], name="out"))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])
        graph = helper.make_graph(self.nodes, "g", [x], [y], self.inits)
        opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
        onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
        return path


def weights(seed):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (5, 6))
    b1 = rng.normal(0, 0.5, 5)
    w2 = rng.normal(0, 1, (5, 3))        # MatMul layout (in, out)
    b2 = rng.normal(0, 0.5, 3)
    return w1, b1, w2, b2


S_IN, S_W1, S_A, S_W2 = 2.0 ** -4, 2.0 ** -np.array([6, 5, 6, 7, 5]), 2.0 ** -2, 2.0 ** -3


def mlp(path, binary=True, a_signed=0, relu=True, seed=0, **in_quant):
    """x → Quant (8 bits) → Gemm (per-channel narrow 8-bit weights, Quant'd bias) → Relu →
    Quant (4 bits, unsigned) → MatMul (BipolarQuant or 6-bit weights) → Add → y (float)."""
    w1, b1, w2, b2 = weights(seed)
    b = Builder()
    h = b.quant("q_in", "x", in_quant.pop("scale", S_IN), **in_quant)
    wq = b.quant("q_w1", b.const("w1", w1), S_W1.reshape(5, 1), narrow=1)
    bq = b.quant("q_b1", b.const("b1", b1), S_IN * S_W1, bits=32)
    h = b.node("Gemm", [h, wq, bq], "fc1", transB=1)
    if relu:
        h = b.node("Relu", [h], "relu1")
    h = b.quant("q_a", h, S_A, bits=4, signed=a_signed)
    if binary:
        w2q = b.quant("q_w2", b.const("w2", w2), S_W2, op="BipolarQuant")
    else:
        w2q = b.quant("q_w2", b.const("w2", w2), S_W2, bits=6)
    h = b.node("MatMul", [h, w2q], "fc2")
    h = b.node("Add", [h, b.const("b2", np.round(b2 * 32) / 32)], "bias2")
    return b.save(path, h, 6, 3)


def mlp_oracle(x, binary=True, seed=0):
    w1, b1, w2, b2 = weights(seed)
    h = quant(x, S_IN, 8)
    h = h @ quant(w1, S_W1.reshape(5, 1), 8, narrow=True).T + quant(b1, S_IN * S_W1, 32)
    h = quant(np.maximum(h, 0), S_A, 4, signed=False)
    w2q = bipolar(w2, S_W2) if binary else quant(w2, S_W2, 6)
    return h @ w2q + np.round(b2 * 32) / 32


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "d.npz"
    # On a grid of 2**-5: half of the inputs are ties of the 2**-4 input format (rounded half
    # to even), and the largest saturate it.
    x = (rng.integers(-300, 300, (200, 6)) / 32).astype(np.float32)
    np.savez(path, x_calib=x[:20], x_test=x, y_test=rng.integers(0, 3, 200))
    return path, x


def one_error(capsys, argv, message):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("hwgen: error: "), err
    assert re.fullmatch(message, err[len("hwgen: error: "):-1]), err


# --- accepted files ---------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [True, False], ids=["bipolar", "fixed"])
def test_qonnx_mlp_equals_the_qonnx_semantics(tmp_path, data, binary):
    path = mlp(tmp_path / "m.onnx", binary=binary)
    d, x = data
    q = load_quantized(path, data=d)
    assert q.scheme.name == "qonnx"
    np.testing.assert_array_equal(q.predict(x), mlp_oracle(x.astype(np.float64), binary))
    fc1, fc2 = [layer for layer in q.graph.layers]
    assert str(fc1.in_fmt) == "Q(8,4)" and [f.frac for f in fc1.w_fmts] == [6, 5, 6, 7, 5]
    assert str(fc1.out_fmt) == "Q(5,2)"        # 4 bits unsigned after a ReLU: 5 bits signed
    assert (str(fc2.w_fmts[0]) == "Binary") == binary


def test_cli_quantizes_a_qonnx_file(tmp_path, data, capsys):
    path = mlp(tmp_path / "m.onnx", binary=False)
    assert main(["quantize", str(path), "--data", str(data[0])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model m, scheme qonnx, input Q(8,4)\n")
    assert re.search(r"\n\S+\s+Linear\+ReLU\s+Q\(8,4\)\s+Q\(8,5\.\.7\)/ch\s+Q\(5,2\)", out), out


# --- refused quantizers -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0.1}, (r"Quantizer 'q_in' has scale 0\.1\d*, not a power of two; hwgen's fixed "
                     r"point needs power-of-two scales \(Brevitas: the \*FixedPoint "
                     r"quantizers\)")),
    ({"zp": 3.0}, (r"Quantizer 'q_in' has zero point 3\.0; hwgen needs 0 \(symmetric "
                  r"quantization\)")),
    ({"rounding": "CEIL"}, r"Quantizer 'q_in' rounds with 'CEIL'; hwgen takes ROUND, FLOOR"),
    ({"bits": 40}, (r"Quantizer 'q_in' has bit width 40\.0; hwgen takes one integer bit width "
                   r"from 1 to 32")),
    ({"signed": 0}, (r"Input quantizer 'q_in' \(8-bit unsigned scale 2\*\*-4, rounding "
                    r"nearest_even\) is not what hwgen's input takes: a signed, full-range, "
                    r"per-tensor quantizer that rounds half to even")),
])
def test_unsupported_input_quantizers_are_refused(tmp_path, capsys, kwargs, message):
    path = mlp(tmp_path / "m.onnx", **kwargs)
    one_error(capsys, ["quantize", str(path)], message)


def test_unsigned_activation_without_relu_is_refused(tmp_path, capsys):
    path = mlp(tmp_path / "m.onnx", relu=False)
    one_error(capsys, ["compile", str(path), "--out", str(tmp_path / "d")],
              r"Quantizer 'q_a' \(4-bit unsigned scale 2\*\*-2\) clamps below at 0, which "
              r"hwgen's two's complement formats reproduce only after a ReLU, and layer "
              r"'fc1' has none")
    assert not (tmp_path / "d").exists()


def test_a_scheme_cannot_override_a_qonnx_file(tmp_path, capsys):
    path = mlp(tmp_path / "m.onnx")
    one_error(capsys, ["quantize", str(path), "--scheme", "fixed4"],
              rf"Model '{path}' is a QONNX file whose quantizers fix every format; leave out "
              r"the scheme 'fixed4'")


def test_trunc_and_batchnorm_are_refused(tmp_path, capsys):
    b = Builder()
    h = b.quant("q_in", "x", S_IN)
    h = b.node("Trunc", [h, b.const("s", 1.0), b.const("z", 0.0), b.const("i", 8.0),
                         b.const("o", 4.0)], "t", domain=QD)
    path = b.save(tmp_path / "trunc.onnx", h, 6, 6)
    one_error(capsys, ["quantize", str(path)],
              r"ONNX node 't' \(Trunc\) of domain 'qonnx\.custom_op\.general' is not "
              r"supported; hwgen reads QONNX's Quant, BipolarQuant")
    b = Builder()
    h = b.quant("q_in", "x", S_IN)
    h = b.node("BatchNormalization", [h] + [b.const(n, np.ones(6)) for n in "sbmv"], "bn")
    path = b.save(tmp_path / "bn.onnx", h, 6, 6)
    with pytest.raises(UnsupportedLayerError, match=r"^ONNX node 'bn' \(BatchNormalization\) "
                                                    r"is in a QONNX model; folding it"):
        load_quantized(path)


def test_int_quant_maps_a_1_bit_signed_quantizer_to_bipolar():
    q = int_quant("w", [0.25, 0.5], 0.0, 1.0, True, False, "ROUND")
    assert type(q).__name__ == "Bipolar" and q.fracs == (2, 1)
    q = int_quant("a", 1.0, 0.0, 1.0, False, False, "FLOOR")   # {0, 1}: Q(2, 0) after a ReLU
    assert (q.width, q.fracs, q.rounding) == (2, (0,), "floor")


# --- hostile files: a domain is data, never imported -------------------------------------------

TRAP = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
"""


def trap(tmp_path, monkeypatch, module):
    """A module ``module`` (dotted) on sys.path that writes a marker file when imported."""
    marker = tmp_path / "pwned"
    folder = tmp_path / "site"
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        pkg = folder.joinpath(*parts[:i])
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(TRAP.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    return marker


def test_a_trapped_qonnx_domain_is_read_not_imported(tmp_path, monkeypatch, data):
    # The qonnx package would import_module(node.domain) to find the op's code.
    marker = trap(tmp_path, monkeypatch, QD)
    path = mlp(tmp_path / "m.onnx", binary=False)
    q = load_quantized(path, data=data[0])
    np.testing.assert_array_equal(q.predict(data[1][:20]),
                                  mlp_oracle(data[1][:20].astype(np.float64), False))
    assert not marker.exists()


def test_an_unknown_domain_is_refused_not_imported(tmp_path, monkeypatch, capsys):
    marker = trap(tmp_path, monkeypatch, "hwgen_trap.custom_op")
    b = Builder()
    h = b.quant("evil", "x", S_IN, domain="hwgen_trap.custom_op")
    path = b.save(tmp_path / "evil.onnx", h, 6, 6, domains=("hwgen_trap.custom_op",))
    one_error(capsys, ["quantize", str(path)],
              rf"ONNX model '{path}' imports op domain 'hwgen_trap\.custom_op'; hwgen reads "
              r"only the default domain and QONNX's \(qonnx\.custom_op\.general, "
              r"onnx\.brevitas\)")
    b = Builder()   # the node's domain alone, not declared among the opsets
    h = b.quant("evil", "x", S_IN, domain="hwgen_trap.custom_op")
    path = b.save(tmp_path / "evil2.onnx", h, 6, 6, domains=())
    one_error(capsys, ["quantize", str(path)],
              r"ONNX node 'evil' \(Quant\) is of domain 'hwgen_trap\.custom_op'; hwgen reads "
              r"only the default domain and QONNX's \(qonnx\.custom_op\.general, "
              r"onnx\.brevitas\)")
    assert not marker.exists()
