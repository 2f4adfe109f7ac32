"""Shared fixtures: small integer networks built directly as IR (no torch, no training)."""

import numpy as np
import pytest

from hwgen import ir
from hwgen.numerics import QFormat


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
