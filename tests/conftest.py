"""Shared fixtures: small integer networks built directly as IR (no torch, no training), and
the ``requires`` marker for tools pip cannot install."""

import os

import pytest

from hwgen import ir
from hwgen.numerics import QFormat


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.requires("iverilog")``: skip, saying what to install, when the tool is
    missing, except in CI (``CI`` set), where a missing tool is a failure, never a skip."""
    from hwgen._toolchain import OPTIONAL_TOOLS, has_optional_tool
    found = {}
    for item in items:
        for marker in item.iter_markers("requires"):
            for name in marker.args:
                if name not in found:
                    found[name] = has_optional_tool(name)
                if not found[name] and not os.environ.get("CI"):
                    what, install = OPTIONAL_TOOLS[name]
                    item.add_marker(pytest.mark.skip(
                        reason=f"needs {what}, which pip cannot install: {install} "
                               f"(CI installs it)"))


def random_graph(rng, shapes):
    """A chain of random integer layers: ``shapes`` lists (kind, cout, kernel, stride,
    padding, pool, relu) for convolutions or (kind, cout) for linear layers."""
    fmt_in = QFormat(8, 5)
    c, h, w = 2, 9, 7
    layers = []
    in_shape = (c, h, w)
    fmt = fmt_in
    for n, spec in enumerate(shapes):
        out_fmt = QFormat(int(rng.integers(3, 9)), int(rng.integers(2, 6)))
        wf = QFormat(int(rng.integers(2, 9)), int(rng.integers(3, 7)))
        rounding = ["nearest_even", "nearest_up", "floor"][n % 3]
        overflow = ["saturate", "wrap"][n % 2]
        if spec[0] == "conv":
            _, cout, k, stride, pad, pool, relu = spec
            weight = rng.integers(wf.min_int, wf.max_int + 1, size=(cout, in_shape[0], k, k))
            bias = rng.integers(-300, 300, size=cout)
            layer = ir.Conv2d(f"conv{n}", in_shape, weight, bias, fmt, [wf] * cout, out_fmt,
                              relu=relu, pool=pool, rounding=rounding, overflow=overflow,
                              stride=stride, padding=pad)
        else:
            if len(in_shape) == 3:
                flat = ir.Flatten(f"flatten{n}", in_shape, fmt)
                layers.append(flat)
                in_shape = flat.out_shape
            cout = spec[1]
            weight = rng.integers(wf.min_int, wf.max_int + 1, size=(cout, in_shape[0]))
            layer = ir.Linear(f"fc{n}", in_shape, weight, rng.integers(-99, 99, size=cout),
                              fmt, [wf] * cout, out_fmt, relu=False, rounding=rounding,
                              overflow=overflow)
        layers.append(layer)
        in_shape = layer.out_shape
        fmt = out_fmt
    return ir.Graph("random", (c, h, w), fmt_in, layers)


@pytest.fixture(name="random_graph")
def random_graph_fixture():
    """:func:`random_graph`, for tests in any folder."""
    return random_graph


def random_chain(rng, max_cycles=6000):
    """A random network and array shape: 1–3 layers of random convolutions (kernel, stride,
    padding, pool, channels) and linear layers, random formats, rounding and overflow
    modes, on a random array of up to 4×5. Returns ``(graph, config)``; retries until the
    design runs in at most ``max_cycles`` (so the Python simulator stays quick)."""
    from hwgen.compiler import AcceleratorConfig, compile_graph

    while True:
        c, h, w = (int(v) for v in rng.integers((1, 3, 3), (4, 10, 10)))
        fmt_in = QFormat(int(rng.integers(3, 9)), int(rng.integers(0, 6)))
        layers, shape, fmt = [], (c, h, w), fmt_in
        for n in range(int(rng.integers(1, 4))):
            out_fmt = QFormat(int(rng.integers(2, 9)), int(rng.integers(-1, 7)))
            wf = QFormat(int(rng.integers(2, 9)), int(rng.integers(0, 7)))
            common = {"relu": bool(rng.random() < 0.5),
                      "rounding": ["nearest_even", "nearest_up", "floor"][rng.integers(3)],
                      "overflow": ["saturate", "wrap"][rng.integers(2)]}
            cout = int(rng.integers(1, 10))
            if len(shape) == 3 and rng.random() < 0.75:
                k, stride, pad, pool = (int(v) for v in rng.integers((1, 1, 0, 1), (5, 4, 3, 4)))
                if k > min(shape[1:]) + 2 * pad:
                    continue
                weight = rng.integers(wf.min_int, wf.max_int + 1, size=(cout, shape[0], k, k))
                layer = ir.Conv2d(f"conv{n}", shape, weight,
                                  rng.integers(-500, 500, size=cout), fmt, [wf] * cout,
                                  out_fmt, pool=pool, stride=stride, padding=pad, **common)
                if min(layer.out_shape[1:]) < 1:
                    continue
            else:
                if len(shape) == 3:
                    layers.append(ir.Flatten(f"flatten{n}", shape, fmt))
                    shape = layers[-1].out_shape
                weight = rng.integers(wf.min_int, wf.max_int + 1, size=(cout, shape[0]))
                layer = ir.Linear(f"fc{n}", shape, weight, rng.integers(-500, 500, size=cout),
                                  fmt, [wf] * cout, out_fmt, **common)
            layers.append(layer)
            shape, fmt = layer.out_shape, out_fmt
        if not any(isinstance(layer, (ir.Conv2d, ir.Linear)) for layer in layers):
            continue
        graph = ir.Graph("chain", (c, h, w), fmt_in, layers)
        config = AcceleratorConfig(rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 6)))
        if compile_graph(graph, config).cycles <= max_cycles:
            return graph, config


@pytest.fixture(name="random_chain")
def random_chain_fixture():
    """:func:`random_chain`, for tests in any folder."""
    return random_chain
