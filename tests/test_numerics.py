"""hwgen.numerics: formats, quantize/requantize against an outside oracle and by property."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgen.errors import FormatError
from hwgen.numerics import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    BinaryFormat,
    Pow2Format,
    QFormat,
    accumulator_width,
    apply_overflow,
    dequantize,
    dot_range,
    dot_width,
    format_from_json,
    layer_random,
    product_width,
    quantize,
    requantize,
    sqnr_db,
    stochastic_positions,
    stochastic_random,
    sum_width,
)

DETERMINISTIC = [r for r in ROUNDING_MODES if r != "stochastic"]


def _random(seed, shape):
    """32-bit random values for stochastic rounding from an outside generator."""
    return np.random.default_rng(seed).integers(0, 2 ** 32, size=shape, dtype=np.int64)

# --- construction and error messages -----------------------------------------------------


def test_width_zero():
    with pytest.raises(FormatError, match=r"^Format width must be at least 1, not 0$"):
        QFormat(0, 0)


def test_width_not_integer():
    with pytest.raises(FormatError, match=r"^Format width must be an integer, not 1\.5$"):
        QFormat(1.5, 0)


def test_width_too_large():
    with pytest.raises(FormatError, match=r"^Format width must be at most 64, not 65$"):
        QFormat(65, 0)


def test_frac_not_integer():
    with pytest.raises(FormatError,
                       match=r"^Format fractional length must be an integer, not '3'$"):
        QFormat(8, "3")


def test_unknown_rounding():
    with pytest.raises(FormatError, match=r"^Rounding mode must be one of nearest_even, "
                                          r"nearest_up, floor, stochastic, not 'up'$"):
        quantize(np.zeros(3), QFormat(8, 4), rounding="up")


def test_unknown_rounding_requantize():
    with pytest.raises(FormatError, match=r"^Rounding mode must be one of .*, not 'round'$"):
        requantize(np.zeros(3, dtype=np.int64), 4, QFormat(8, 0), rounding="round")


def test_unknown_overflow():
    with pytest.raises(FormatError,
                       match=r"^Overflow mode must be one of saturate, wrap, not 'clip'$"):
        quantize(np.zeros(3), QFormat(8, 4), overflow="clip")


def test_format_ranges():
    f = QFormat(8, 3)
    assert (f.min_int, f.max_int, f.step) == (-128, 127, 0.125)
    assert (f.min_value, f.max_value) == (-16.0, 15.875)
    u = QFormat(4, -2, signed=False)
    assert (u.min_int, u.max_int, u.step) == (0, 15, 4.0)
    assert str(f) == "Q(8,3)" and str(u) == "UQ(4,-2)"


@pytest.mark.parametrize("fmt", [QFormat(8, 3), QFormat(5, -2, False), Pow2Format(-4, 2),
                                 BinaryFormat()])
def test_format_json_round_trip(fmt):
    assert format_from_json(fmt.to_json()) == fmt


def test_bit_growth():
    assert product_width(8, 8) == 16
    assert sum_width(16, 1) == 16 and sum_width(16, 2) == 17 and sum_width(16, 9) == 20
    assert accumulator_width(8, 8, 72) == 16 + 7  # 72 products plus a bias: 73 terms


def test_dot_width_by_hand():
    # three weights +1 on 8-bit activations: 3·[-128, 127] = [-384, 381], 10 bits
    assert dot_range([[1, 1, 1]], -128, 127) == ([-384], [381])
    assert dot_width([[1, 1, 1]], -128, 127) == 10
    # mixed signs: 3·127 + 3·128 = 765 either way, 11 bits (bit growth: 8 + 8 + 2 = 18)
    assert dot_range([[2, -3, 1]], -128, 127) == ([-765], [765])
    assert dot_width([[2, -3, 1]], -128, 127) == 11
    # the widest channel counts; a weight tensor is flattened per output channel
    assert dot_width(np.array([[[[1]], [[1]]], [[[2]], [[-3]]]]), -128, 127) == 11
    # 4·128 = 2**9 needs 11 bits, -2**9 only 10
    assert dot_width([[-4]], -128, 127) == 11 and dot_width([[4]], -128, 127) == 10
    # unsigned activations [0, 15]: 127·15 = 1905 and -128·15 = -1920, 12 bits
    assert dot_range([[127, -128]], 0, 15) == ([-1920], [1905])
    assert dot_width([[127, -128]], 0, 15) == 12
    # padding is 0, so the range holds 0 even when the activations do not
    assert dot_range([[1, -1]], 3, 5) == ([-5], [5])
    # all zero weights: 1 bit
    assert dot_width([[0, 0], [0, 0]], -128, 127) == 1
    # beyond int64: the bounds are Python integers (4·2**62 = 2**64 needs 66 bits)
    assert dot_width([[-(1 << 31)] * 4], -(1 << 31), (1 << 31) - 1) == 66


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-3, 3), min_size=3, max_size=3), min_size=1, max_size=2),
       st.integers(-3, 0), st.integers(0, 3))
def test_dot_range_by_enumeration(weight, a_min, a_max):
    """Every activation vector in the range: the least and greatest dot products per channel
    (a partial sum is a dot product with the other activations 0), and the fewest signed
    bits that hold them all."""
    values = np.arange(a_min, a_max + 1)
    a = np.stack(np.meshgrid(values, values, values)).reshape(3, -1)
    dots = np.array(weight) @ a
    assert dot_range(weight, a_min, a_max) == (dots.min(1).tolist(), dots.max(1).tolist())
    bits = dot_width(weight, a_min, a_max)
    assert -(1 << (bits - 1)) <= dots.min() and dots.max() < 1 << (bits - 1)
    if bits > 1:
        assert dots.min() < -(1 << (bits - 2)) or dots.max() >= 1 << (bits - 2)


def test_sqnr():
    x = np.array([1.0, -2.0, 3.0])
    assert sqnr_db(x, x) == math.inf
    assert sqnr_db(x, x + 0.1) == pytest.approx(10 * math.log10(14 / 0.03))


# --- quantize against torch's fake quantization (an outside oracle) ---------------------

@pytest.mark.parametrize("width,frac", [(8, 0), (8, 5), (4, 2), (16, 12), (8, -3), (6, 9)])
def test_quantize_matches_torch_fake_quantize(width, frac):
    rng = np.random.default_rng(width * 100 + frac)
    step = 2.0 ** -frac
    span = 2 ** (width - 1) * step
    x = rng.uniform(-1.5 * span, 1.5 * span, 5000)
    # Exact ties, where nearest-even and the other modes part ways.
    ties = (rng.integers(-2 ** (width - 1), 2 ** (width - 1), 500) + 0.5) * step
    x = np.concatenate([x, ties]).astype(np.float32)
    fmt = QFormat(width, frac)
    ours = quantize(x, fmt, "nearest_even", "saturate")
    theirs = torch.fake_quantize_per_tensor_affine(
        torch.from_numpy(x), step, 0, fmt.min_int, fmt.max_int).numpy()
    np.testing.assert_array_equal(ours, np.ldexp(theirs.astype(np.float64), frac)
                                  .astype(np.int64))


def test_quantize_torch_in_torch_out():
    x = torch.tensor([0.3, -1.7, 5.0])
    q = quantize(x, QFormat(4, 1))
    assert isinstance(q, torch.Tensor) and q.dtype == torch.int64
    np.testing.assert_array_equal(q.numpy(), [1, -3, 7])


def test_rounding_modes_on_ties():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    fmt = QFormat(8, 0)
    np.testing.assert_array_equal(quantize(x, fmt, "nearest_even"), [-2, -2, 0, 0, 2, 2])
    np.testing.assert_array_equal(quantize(x, fmt, "nearest_up"), [-2, -1, 0, 1, 2, 3])
    np.testing.assert_array_equal(quantize(x, fmt, "floor"), [-3, -2, -1, 0, 1, 2])


def test_overflow_modes():
    fmt = QFormat(4, 0)
    x = np.array([7, 8, 9, -8, -9, 23])
    np.testing.assert_array_equal(quantize(x, fmt, overflow="saturate"), [7, 7, 7, -8, -8, 7])
    np.testing.assert_array_equal(quantize(x, fmt, overflow="wrap"), [7, -8, -7, -8, 7, 7])
    u = QFormat(4, 0, signed=False)
    np.testing.assert_array_equal(apply_overflow([-1, 16, 17], u, "wrap"), [15, 0, 1])


def test_pow2_and_binary():
    p = Pow2Format(-2, 1)
    np.testing.assert_array_equal(quantize(np.array([0.1, 0.2, 0.3, 1.4, 1.5, 9.0, -0.6]), p),
                                  [0, 1, 1, 4, 8, 8, -2])
    np.testing.assert_array_equal(quantize(np.array([-0.1, 0.0, 3.0]), BinaryFormat()),
                                  [-1, 1, 1])


# --- properties of every rounding and overflow mode ---------------------------------------

widths = st.integers(1, 24)
fracs = st.integers(-8, 24)
signs = st.booleans()
reals = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(widths, fracs, signs, reals, st.sampled_from(ROUNDING_MODES),
       st.sampled_from(OVERFLOW_MODES), st.integers(0, 2 ** 32))
def test_quantize_in_range(width, frac, signed, xs, rounding, overflow, seed):
    fmt = QFormat(width, frac, signed)
    q = quantize(np.array(xs), fmt, rounding, overflow, random=_random(seed, len(xs)))
    assert q.dtype == np.int64
    assert np.all(q >= fmt.min_int) and np.all(q <= fmt.max_int)


@settings(max_examples=150, deadline=None)
@given(widths, fracs, signs, reals, st.sampled_from(DETERMINISTIC))
def test_quantize_monotonic_when_saturating(width, frac, signed, xs, rounding):
    fmt = QFormat(width, frac, signed)
    x = np.sort(np.array(xs))
    q = quantize(x, fmt, rounding, "saturate")
    assert np.all(np.diff(q) >= 0)


@settings(max_examples=150, deadline=None)
@given(widths, fracs, signs, st.data(), st.sampled_from(ROUNDING_MODES),
       st.sampled_from(OVERFLOW_MODES), st.integers(0, 2 ** 32))
def test_quantize_idempotent(width, frac, signed, data, rounding, overflow, seed):
    fmt = QFormat(width, frac, signed)
    q = np.array(data.draw(st.lists(st.integers(fmt.min_int, fmt.max_int), min_size=1,
                                    max_size=20)), dtype=np.int64)
    np.testing.assert_array_equal(
        quantize(dequantize(q, fmt), fmt, rounding, overflow, random=_random(seed, q.shape)), q)


@settings(max_examples=150, deadline=None)
@given(widths, fracs, signs, st.lists(st.floats(0, 1), min_size=1, max_size=20),
       st.sampled_from(ROUNDING_MODES), st.sampled_from(OVERFLOW_MODES),
       st.integers(0, 2 ** 32))
def test_round_trip_error_below_one_step(width, frac, signed, unit, rounding, overflow, seed):
    fmt = QFormat(width, frac, signed)
    # Values inside the representable range, where overflow plays no part.
    x = fmt.min_value + np.array(unit) * (fmt.max_value - fmt.min_value)
    err = np.abs(dequantize(quantize(x, fmt, rounding, overflow,
                                     random=_random(seed, x.shape)), fmt) - x)
    limit = fmt.step / 2 if rounding.startswith("nearest") else fmt.step
    assert np.all(err <= limit)
    if rounding == "floor":
        assert np.all(dequantize(quantize(x, fmt, rounding, overflow), fmt) <= x)


@settings(max_examples=25, deadline=None)
@given(st.floats(-3, 3), st.integers(0, 2 ** 32))
def test_stochastic_rounding_unbiased(x, seed):
    fmt = QFormat(8, 4)
    n = 20000
    q = dequantize(quantize(np.full(n, x), fmt, "stochastic",
                            random=layer_random(seed, 0, (n,))), fmt)
    p = (x * 16) % 1.0
    sigma = fmt.step * math.sqrt(p * (1 - p) / n)
    # Five standard deviations (plus float slack): a false failure is a 1-in-a-million event.
    assert abs(q.mean() - x) <= 5 * sigma + 1e-12


def test_stochastic_rounding_seeded():
    x = np.linspace(-1, 1, 100)
    fmt = QFormat(8, 3)
    a = quantize(x, fmt, "stochastic", random=layer_random(7, 0, (100,)))
    np.testing.assert_array_equal(a, quantize(x, fmt, "stochastic",
                                              random=layer_random(7, 0, (100,))))
    assert not np.array_equal(a, quantize(x, fmt, "stochastic",
                                          random=layer_random(8, 0, (100,))))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2 ** 20, 2 ** 20), min_size=1, max_size=20), st.integers(-6, 16),
       widths, fracs, signs, st.sampled_from(DETERMINISTIC), st.sampled_from(OVERFLOW_MODES))
def test_requantize_is_quantize_of_dequantized(acc, from_frac, width, frac, signed, rounding,
                                               overflow):
    a = np.array(acc, dtype=np.int64)
    fmt = QFormat(width, frac, signed)
    ours = requantize(a, from_frac, fmt, rounding, overflow)
    real = dequantize(a, QFormat(32, from_frac))
    np.testing.assert_array_equal(ours, quantize(real, fmt, rounding, overflow))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2 ** 20, 2 ** 20), min_size=1, max_size=20), st.integers(32, 60),
       st.integers(1, 24), signs, st.sampled_from(OVERFLOW_MODES), st.integers(0, 2 ** 32))
def test_stochastic_requantize_by_32_bits_or_more_is_quantize(acc, shift, width, signed,
                                                              overflow, seed):
    # From a shift of 32 bits on, all 32 random bits are the fraction, as for real values.
    a = np.array(acc, dtype=np.int64)
    fmt = QFormat(width, 2, signed)
    r = _random(seed, a.shape)
    ours = requantize(a, shift + 2, fmt, "stochastic", overflow, random=r)
    real = dequantize(a, QFormat(32, shift + 2))
    np.testing.assert_array_equal(ours, quantize(real, fmt, "stochastic", overflow, random=r))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-2 ** 30, 2 ** 30), min_size=1, max_size=20),
       st.lists(st.integers(-4, 12), min_size=1, max_size=1), widths,
       st.sampled_from(DETERMINISTIC), st.sampled_from(OVERFLOW_MODES))
def test_requantize_per_channel_from_frac(acc, fracs_, width, rounding, overflow):
    a = np.array(acc, dtype=np.int64).reshape(-1, 1)
    fmt = QFormat(width, 0)
    ch = requantize(np.repeat(a, 3, axis=1), np.array([fracs_[0], 0, fracs_[0] + 1]), fmt,
                    rounding, overflow)
    for c, f in enumerate([fracs_[0], 0, fracs_[0] + 1]):
        np.testing.assert_array_equal(ch[:, c], requantize(a[:, 0], f, fmt, rounding, overflow))


def test_requantize_extremes_do_not_leave_int64():
    a = np.array([2 ** 62, -2 ** 62, 1, -1], dtype=np.int64)
    np.testing.assert_array_equal(requantize(a, -40, QFormat(16, 0)),
                                  [32767, -32768, 32767, -32768])


def _exact_requantize(a, shift, fmt, rounding, overflow):
    """requantize by rational arithmetic: the oracle for any shift and any int64."""
    from fractions import Fraction
    x = Fraction(a, 2 ** shift) if shift >= 0 else Fraction(a * 2 ** -shift)
    q = math.floor(x)
    if rounding == "nearest_up":
        q = math.floor(x + Fraction(1, 2))
    elif rounding == "nearest_even" and (x - q > Fraction(1, 2)
                                         or (x - q == Fraction(1, 2) and q % 2 == 1)):
        q += 1
    if overflow == "saturate":
        return max(fmt.min_int, min(fmt.max_int, q))
    return (q - fmt.min_int) % 2 ** fmt.width + fmt.min_int


@settings(max_examples=400, deadline=None)
@given(st.integers(-2 ** 63, 2 ** 63 - 1) | st.integers(-999, 999), st.integers(-70, 80),
       st.integers(1, 62), st.booleans(), st.sampled_from(DETERMINISTIC),
       st.sampled_from(OVERFLOW_MODES))
def test_requantize_exact_for_every_int64_and_shift(a, shift, width, signed, rounding,
                                                    overflow):
    fmt = QFormat(width, 0, signed)
    got = requantize(np.array([a]), shift, fmt, rounding, overflow)
    assert int(got[0]) == _exact_requantize(a, shift, fmt, rounding, overflow)


# --- stochastic rounding: the random values and their use --------------------------------

def _ref_rand(seed, layer, index, slot):
    """rand(seed, layer, index, slot) re-implemented from stochastic_random's docstring."""
    w = (seed ^ ((layer + 1) * 0x9E3779B9) ^ index ^ (slot << 24)) % 2 ** 32
    for _ in range(3):
        w ^= (w << 13) % 2 ** 32
        w ^= w >> 17
        w ^= (w << 5) % 2 ** 32
    return int(format(w, "032b")[::-1], 2)


def _ref_stochastic(a, shift, r, fmt, overflow):
    """requantize with stochastic rounding in Python integers, from its docstring."""
    if shift < 0:
        q = a * 2 ** -shift
    else:
        v = r % 2 ** shift if shift <= 32 else r * 2 ** (shift - 32)
        q = (a + v) // 2 ** shift
    if overflow == "saturate":
        return max(fmt.min_int, min(fmt.max_int, q))
    return (q - fmt.min_int) % 2 ** fmt.width + fmt.min_int


def test_stochastic_needs_random_values():
    with pytest.raises(FormatError, match=r"^Stochastic rounding needs its random values: "
                                          r"pass random= \(see hwgen\.numerics\."
                                          r"stochastic_random\)$"):
        requantize(np.arange(4), 3, QFormat(8, 0), "stochastic")


def test_stochastic_random_values_must_fit():
    with pytest.raises(FormatError, match=r"^Stochastic rounding random values of shape "
                                          r"\(3,\) do not broadcast to the values' shape "
                                          r"\(4,\)$"):
        requantize(np.arange(4), 3, QFormat(8, 0), "stochastic", random=np.zeros(3))
    with pytest.raises(FormatError, match=r"^Stochastic rounding random values must be "
                                          r"32-bit unsigned integers, not 4294967296$"):
        quantize(np.zeros(2), QFormat(8, 0), "stochastic", random=np.array([0, 2 ** 32]))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2 ** 40), st.integers(0, 300), st.integers(0, 2 ** 30),
       st.integers(0, 255))
def test_stochastic_random_is_its_definition(seed, layer, index, slot):
    assert int(stochastic_random(seed, layer, index, slot)) == \
        _ref_rand(seed, layer, index, slot)


def test_stochastic_random_vectorised():
    index = np.arange(40).reshape(5, 8)
    got = stochastic_random(3, 2, index, 1)
    assert got.shape == (5, 8) and got.dtype == np.int64
    assert [int(v) for v in got.ravel()] == [_ref_rand(3, 2, i, 1) for i in range(40)]


def test_stochastic_positions_by_hand():
    # (1, 3, 5) with 2x2 pooling: 1 x 2 windows (the last row and column are pooled away)
    index, slot = stochastic_positions((1, 3, 5), 2)
    np.testing.assert_array_equal(index[0], [[0, 0, 1, 1, 2],
                                             [0, 0, 1, 1, 2],
                                             [2, 2, 3, 3, 4]])
    np.testing.assert_array_equal(slot[0], [[0, 1, 0, 1, 0],
                                            [2, 3, 2, 3, 2],
                                            [0, 1, 0, 1, 0]])
    index, slot = stochastic_positions((2, 2, 3))
    np.testing.assert_array_equal(index.ravel(), np.arange(12))
    assert not slot.any()
    index, slot = stochastic_positions((5,))
    np.testing.assert_array_equal(index, np.arange(5))
    np.testing.assert_array_equal(layer_random(4, 1, (2, 4, 4), 2)[1, 3, 2],
                                  _ref_rand(4, 1, 4 + 1 * 2 + 1, 1 * 2 + 0))


@settings(max_examples=400, deadline=None)
@given(st.integers(-2 ** 63, 2 ** 63 - 1) | st.integers(-999, 999), st.integers(-70, 80),
       st.integers(0, 2 ** 32 - 1), st.integers(1, 62), st.booleans(),
       st.sampled_from(OVERFLOW_MODES))
def test_stochastic_requantize_is_its_definition(a, shift, r, width, signed, overflow):
    fmt = QFormat(width, 0, signed)
    got = requantize(np.array([a]), shift, fmt, "stochastic", overflow, random=np.array([r]))
    assert int(got[0]) == _ref_stochastic(a, shift, r, fmt, overflow)


@settings(max_examples=20, deadline=None)
@given(st.integers(-2 ** 20, 2 ** 20), st.integers(1, 12), st.integers(0, 2 ** 32),
       st.integers(0, 50))
def test_stochastic_requantize_unbiased(a, shift, seed, layer):
    # The mean over a tensor's positions is a / 2**shift within five standard deviations.
    n = 4096
    q = requantize(np.full(n, a), shift, QFormat(32, 0), "stochastic",
                   random=layer_random(seed, layer, (4, 32, 32), 2).ravel()[:n])
    p = (a % 2 ** shift) / 2 ** shift
    assert abs(q.mean() - a / 2 ** shift) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_stochastic_rounding_over_seeds_unbiased():
    # One value at one place, rounded with many seeds: the seed alone makes it random.
    seeds = np.arange(20000)
    r = np.array([stochastic_random(int(s), 1, 37, 2) for s in seeds])
    q = requantize(np.full(len(seeds), 11), 3, QFormat(16, 0), "stochastic", random=r)
    p = 3 / 8
    assert abs(q.mean() - 11 / 8) <= 5 * math.sqrt(p * (1 - p) / len(seeds))
    assert set(np.unique(q)) == {1, 2}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20),
       st.integers(-8, 24), st.integers(0, 2 ** 32))
def test_stochastic_quantize_is_floor_of_value_plus_fraction(xs, frac, seed):
    from fractions import Fraction
    x = np.array(xs)
    r = _random(seed, x.shape)
    got = quantize(x, QFormat(64, frac), "stochastic", random=r)
    for v, rv, q in zip(xs, r, got):
        assert int(q) == math.floor(Fraction(v) * Fraction(2) ** frac + Fraction(int(rv), 2 ** 32))
