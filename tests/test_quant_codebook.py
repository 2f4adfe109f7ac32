"""hwgen.quant.codebook: the code-book quantizer kind (k-means tables, b-bit indices)."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hwgen import golden, quant
from hwgen.errors import FormatError
from hwgen.flow import load_quantized
from hwgen.numerics import CodebookFormat, QFormat, dequantize, format_from_json
from hwgen.quant.codebook import codebook_parts, initial_centroids, kmeans
from hwgen.quant.modules import QuantLinear

# --- construction and error messages ----------------------------------------------------


@pytest.mark.parametrize("entry,message", [
    ({"kind": "codebook", "bits": 0}, r"layer 'fc': bits must be an integer from 1 to 8, not 0"),
    ({"kind": "codebook", "bits": 9}, r"layer 'fc': bits must be an integer from 1 to 8, not 9"),
    ({"kind": "codebook", "weight_width": 17},
     r"layer 'fc': weight_width must be an integer from 2 to 16, not 17"),
    ({"kind": "codebook", "init": "random"},
     r"layer 'fc': init must be one of linear, gaussian, not 'random'"),
    ({"kind": "codebook", "weight_frac": [1, "a"]},
     r"layer 'fc': weight_frac entry must be an integer, not 'a'"),
    ({"kind": "codebook", "per_channel": "no"},
     r"layer 'fc': per_channel must be true or false, not 'no'"),
    ({"kind": "codebook", "width": 8},
     (r"layer 'fc' has unknown key 'width'; keys are bits, weight_width, weight_frac, "
      r"per_channel, init, out_width, frac, binary_out, rounding, overflow, bias_width, "
      r"acc_width, acc_overflow")),
])
def test_bad_codebook_entries(tmp_path, entry, message):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": entry}}))
    with pytest.raises(FormatError, match=rf"^Scheme file '{p}' {message}$"):
        quant.load_scheme(str(p))


def test_one_table_needs_one_frac(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"layers": {"fc": {"kind": "codebook",
                                               "weight_frac": [7] * 9 + [6]}}}))
    with pytest.raises(FormatError, match=r"^Layer 'fc' has one code-book table, so its "
                                          r"weight_frac entries must be equal, not \[7, 7, 7, "
                                          r"7, 7, 7, 7, 7, 7, 6\]$"):
        load_quantized("builtin:digits-cnn", str(p))


@pytest.mark.parametrize("args, message", [
    ((0, 8, 3), r"^Code-book index bits must be at least 1, not 0$"),
    ((9, 8, 3), r"^Code-book index bits must be at most 8, not 9$"),
    ((4, 1, 3), r"^Code-book centroid width must be at least 2, not 1$"),
])
def test_format_errors(args, message):
    with pytest.raises(FormatError, match=message):
        CodebookFormat(*args)


def test_format_round_trip_and_storage():
    fmt = CodebookFormat(4, 8, 6, per_channel=True)
    assert format_from_json(fmt.to_json()) == fmt
    assert (fmt.stored_bits, fmt.entries, fmt.min_int, fmt.max_int) == (4, 16, -128, 127)
    assert fmt.value_format == QFormat(8, 6) and str(fmt) == "CB4/ch[Q(8,6)]"


# --- k-means ----------------------------------------------------------------------------

def lloyd_reference(x, c):
    """Lloyd's algorithm in plain Python lists: nearest centroid (first on ties), means,
    until no assignment changes."""
    x, c = [float(v) for v in x], [float(v) for v in c]
    assign = None
    while True:
        new = []
        for v in x:
            d = [abs(v - cj) for cj in c]
            new.append(d.index(min(d)))
        if new == assign:
            return c, assign
        assign = new
        for j in range(len(c)):
            members = [v for v, a in zip(x, assign) if a == j]
            if members:
                c[j] = sum(members) / len(members)


def test_kmeans_by_hand():
    # linear init: 0 and 12; the first three go to 0, the rest to 12; means 1 and 11
    c, a = kmeans([0, 1, 2, 10, 11, 12], 2)
    np.testing.assert_array_equal(c, [1, 11])
    np.testing.assert_array_equal(a, [0, 0, 0, 1, 1, 1])
    # an empty cluster keeps its initial centroid: linear 0, 5, 10 on {0, 0.1, 9.9, 10}
    c, a = kmeans([0, 0.1, 9.9, 10, 0.2], 3)
    np.testing.assert_allclose(c, [0.1, 5, 9.95])
    np.testing.assert_array_equal(a, [0, 0, 2, 2, 0])


def test_gaussian_init_at_the_normal_quantiles():
    x = np.array([-1.0, 1.0])           # mean 0, (population) standard deviation 1
    np.testing.assert_allclose(initial_centroids(x, 2, "gaussian"),
                               [-0.6744897501960817, 0.6744897501960817])
    x = np.array([2.0, 2.0, 6.0, 6.0])  # mean 4, sd 2
    np.testing.assert_allclose(initial_centroids(x, 4, "gaussian"),
                               4 + 2 * np.array([-1.1503493803760079, -0.3186393639643752,
                                                 0.3186393639643752, 1.1503493803760079]))
    np.testing.assert_allclose(initial_centroids(x, 3, "linear"), [2, 4, 6])


@pytest.mark.parametrize("init", ["linear", "gaussian"])
@pytest.mark.parametrize("seed", range(4))
def test_kmeans_against_a_plain_python_lloyd(init, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=300) * 0.1
    k = 8
    if init == "linear":
        start = [x.min() + (x.max() - x.min()) * j / (k - 1) for j in range(k)]
    else:
        start = norm.ppf((np.arange(k) + 0.5) / k, loc=x.mean(), scale=x.std())
    want_c, want_a = lloyd_reference(x, start)
    c, a = kmeans(x, k, init)
    np.testing.assert_allclose(c, want_c, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(a, want_a)


def test_few_distinct_values_are_their_own_centroids():
    x = np.array([[0.5, -0.25], [0.5, 0.125]])
    c, a = kmeans(x, 4)
    np.testing.assert_array_equal(c, [-0.25, 0.125, 0.5, 0.5])
    np.testing.assert_array_equal(a, [[2, 0], [2, 1]])


def test_per_channel_tables_cluster_each_channel():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 2, 5)) * np.array([1, 10, 100])[:, None, None]
    c, a = codebook_parts(w, 2, "linear", per_channel=True)
    assert c.shape == (3, 4) and a.shape == w.shape
    for ch in range(3):
        want_c, want_a = lloyd_reference(w[ch].ravel(), np.linspace(w[ch].min(), w[ch].max(), 4))
        np.testing.assert_allclose(c[ch], want_c, atol=1e-9)
        np.testing.assert_array_equal(a[ch].ravel(), want_a)
    c1, a1 = codebook_parts(w, 2, "linear")
    assert c1.shape == (1, 4)
    assert len(np.unique(a1[0])) < 4       # channel 0 is small beside channel 2: one cluster


# --- the quantized layer ----------------------------------------------------------------

def test_layer_integers_are_rounded_centroids():
    w = np.array([[0.30, 0.31, -0.5], [0.02, 0.0, -0.52]])
    fmts = (CodebookFormat(2, 4, 3),) * 2       # Q(4,3): step 1/8, range [-1, 7/8]
    layer = QuantLinear("fc", (3,), w, None, QFormat(8, 4), fmts, QFormat(8, 4),
                        kind="codebook", spec=quant.CodebookSpec(bits=2))
    # linear init -0.52, -0.243, 0.033, 0.31; Lloyd: {-0.5, -0.52}, {0.02, 0.0}, {0.30, 0.31}
    # means -0.51, 0.01, 0.305 → ×8 → -4.08, 0.08, 2.44 → -4, 0, 2
    np.testing.assert_array_equal(layer.int_weight(), [[2, 2, -4], [0, 0, -4]])
    np.testing.assert_array_equal(layer.kind.layer_weights(layer).detach().numpy(),
                                  [[0.25, 0.25, -0.5], [0, 0, -0.5]])
    assert layer.weight_bytes == math.ceil((6 * 2 + 4 * 4) / 8)


def test_centroid_gradient_is_the_sum_of_its_members():
    """Deep Compression's fine-tuning: each member of a cluster gets the cluster's summed
    gradient; after the step the members are set to their mean, so they move together."""
    w = np.array([[0.30, 0.31, -0.5], [0.02, 0.0, -0.52]])
    fmts = (CodebookFormat(2, 8, 6),) * 2
    layer = QuantLinear("fc", (3,), w, None, QFormat(8, 4), fmts, QFormat(8, 4),
                        kind="codebook", spec=quant.CodebookSpec(bits=2)).train()
    g = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    (layer.kind.layer_weights(layer) * g).sum().backward()
    clusters = {(0, 0): 3.0, (0, 1): 3.0, (1, 0): 9.0, (1, 1): 9.0, (0, 2): 9.0, (1, 2): 9.0}
    want = np.zeros((2, 3))
    for (i, j), total in clusters.items():
        want[i, j] = total
    np.testing.assert_array_equal(layer.weight.grad.numpy(), want)
    with torch.no_grad():
        layer.weight -= 0.01 * layer.weight.grad
        layer.weight[0, 0] += 0.004       # a member drifting on its own is pulled back
    layer.kind.clip_(layer)
    np.testing.assert_allclose(layer.weight.detach().numpy(),
                               [[0.305 - 0.03 + 0.002, 0.305 - 0.03 + 0.002, -0.51 - 0.09],
                                [0.01 - 0.09, 0.01 - 0.09, -0.51 - 0.09]], atol=1e-12)
    # the clusters stay those of the first forward; eval re-clusters the (snapped) weights
    # into the same values
    train_values = layer.kind.layer_weights(layer).detach().numpy()
    layer.eval()
    np.testing.assert_array_equal(layer.kind.layer_weights(layer).detach().numpy(),
                                  train_values)


@pytest.mark.parametrize("spec", ["codebook-4", {"default": {"kind": "codebook", "bits": 3,
                                                             "per_channel": True,
                                                             "init": "gaussian"}}])
def test_fake_quant_equals_golden_on_the_digits_cnn(tmp_path, spec):
    if isinstance(spec, dict):
        p = tmp_path / "cb.json"
        p.write_text(json.dumps(spec))
        spec = str(p)
    q = load_quantized("builtin:digits-cnn", spec)
    x = q.dataset.x_test[:64]
    want = dequantize(golden.run(q.graph, q.quantize_input(x)), q.graph.output_fmt)
    with torch.no_grad():
        got = q.module(torch.tensor(np.array(x))).numpy()
    np.testing.assert_array_equal(got, want)
    for layer in q.graph.layers:
        if not hasattr(layer, "w_fmts"):
            continue
        fmt = layer.w_fmts[0]
        assert fmt.kind == "codebook"
        groups = layer.weight if fmt.per_channel else [layer.weight]
        assert max(len(np.unique(g)) for g in groups) <= fmt.entries
        assert len(np.unique(layer.weight)) > fmt.entries or not fmt.per_channel
    assert q.quantized_accuracy() >= 0.95


def test_mixed_json_scheme_round_trips(tmp_path):
    obj = {"name": "mix", "default": {"width": 8},
           "layers": {"conv2": {"kind": "codebook", "bits": 4, "per_channel": True,
                                "init": "gaussian"}}}
    p = tmp_path / "mix.json"
    p.write_text(json.dumps(obj))
    q = load_quantized("builtin:digits-cnn", str(p))
    kinds = [layer.w_fmts[0].kind for layer in q.graph.layers if hasattr(layer, "w_fmts")]
    assert kinds == ["fixed", "codebook", "fixed"]
    again = quant.scheme_from_json(q.scheme.to_json())
    assert dict(again.layers)["conv2"] == dict(q.scheme.layers)["conv2"]
    assert dict(q.scheme.layers)["conv2"].init == "gaussian"
    from hwgen.compiler import AcceleratorConfig, compile_graph
    design = compile_graph(q.graph, AcceleratorConfig(rows=2, cols=2))
    assert design.engine_kinds == ("fixed", "codebook")
    assert [layer.pe_kind for layer in design.layers] == ["fixed", "codebook", "fixed"]
    # conv2: 32 channels on 2 columns, a table row per channel tile
    assert len(design.engines[1].tables) == 16


def test_qat_through_train_keeps_a_codebook_per_layer():
    """``train_qat`` (what ``hwgen train --qat codebook-4`` runs): the fine-tuned shadow
    weights hold at most 16 values per layer, the checkpoint's state quantizes to exactly
    those values (rounded), and torch still equals the golden model."""
    from hwgen.train import train_qat
    base = load_quantized("builtin:digits-cnn", "codebook-4")
    net = train_qat(base.float_module, "digits-cnn", base.dataset, "codebook-4", epochs=1)
    state = net.state_dict()
    qm = quant.quantize_model(base.float_module, "digits-cnn", net.resolved_scheme(),
                              base.dataset, qat_state=state)
    names = [getattr(m, "name", None) for m in net.layers]
    for layer in qm.graph.layers:
        if not hasattr(layer, "w_fmts"):
            continue
        shadow = state[f"layers.{names.index(layer.name)}.weight"].double()
        assert len(np.unique(shadow.numpy())) <= 16
        # the shadow weights moved off the float model's, and each stored weight is its
        # shadow value rounded to the layer's Q(8, F)
        fmt = layer.w_fmts[0].value_format
        want = np.rint(np.ldexp(shadow.numpy(), fmt.frac)).clip(fmt.min_int, fmt.max_int)
        np.testing.assert_array_equal(layer.weight, want)
    x = base.dataset.x_test[:32]
    want = dequantize(golden.run(qm.graph, qm.quantize_input(x)), qm.graph.output_fmt)
    with torch.no_grad():
        np.testing.assert_array_equal(qm.module(torch.tensor(np.array(x))).numpy(), want)
