"""Quantization schemes: the input format and one layer spec per Conv2d/Linear layer.

``fixed16``, ``fixed8``, ``fixed4``
    Weights and activations of that width, all signed; fractional lengths per layer (per
    tensor) by calibration; biases at the accumulator's fractional length
    ``F_a + F_w[c]`` in a 32-bit range; rounding ``nearest_even``, overflow ``saturate``.
A path to a JSON file
    A per-layer spec::

        {
          "name": "mixed",
          "input": {"width": 8, "frac": "auto"},
          "default": {"width": 8},
          "layers": {
            "conv1": {"width": 8, "weight_width": 4, "per_channel": true},
            "fc":    {"kind": "fixed", "width": 16, "frac": 10, "rounding": "nearest_up"}
          }
        }

    ``name`` is optional (default: the file's stem); ``default`` applies to every layer and
    ``layers`` overrides it per layer, by IR layer name (the torch.fx node names that
    ``hwgen quantize`` prints); both are optional. ``first`` and ``last`` (optional) are the
    entries of the first and the last Conv2d/Linear layer, whatever their names, under
    ``layers`` (binary networks keep those two in fixed point).

    A layer entry's ``kind`` (default ``fixed``) names its quantizer kind
    (:mod:`hwgen.quant.kinds`); its other keys are the kind's (for ``fixed``, see
    :mod:`hwgen.quant.fixed`). An entry of the default's kind overrides the default key by
    key; an entry of another kind starts from that kind's defaults. ``input`` takes
    ``width`` (default: the default layer's ``out_width``, else 8) and ``frac`` (an integer
    or ``"auto"``). Average pools use the ``rounding``/``overflow`` of their entry and keep
    their input's format; max-pools and flattens pass formats through. ``seed`` (a
    non-negative integer; 0) seeds the layers' ``"rounding": "stochastic"``: a layer's
    random values are :func:`hwgen.numerics.layer_random` of the seed and its place in the
    network, the same in the torch model, the golden model and the hardware.

``pow2-4``
    4-bit power-of-two weights (:mod:`hwgen.quant.pow2`: zero flag, sign, 2-bit exponent;
    the exponent range calibrated per layer), fixed8 activations.
``bwn``
    Binary weights with a per-channel scale α = mean|W| (:mod:`hwgen.quant.binary`), fixed8
    activations.
``ternary``
    Ternary weights {−α, 0, +α} with a per-channel α (:mod:`hwgen.quant.ternary`, TWN), fixed8
    activations; they run on shift PEs with 2-bit weight fields.
``codebook-4``, ``codebook-6``
    Code-book weights (:mod:`hwgen.quant.codebook`): per layer a table of 16 (64) centroids
    found by k-means from a linear initialisation, stored ``Q(8, F)``; each weight is a
    4-bit (6-bit) index. fixed8 activations.
``binary``
    The first and the last Conv2d/Linear layer with fixed8 weights, the middle layers with
    binary weights; every layer but the last has binary outputs (so every layer but the
    first has binary inputs). For the digits CNN: conv1 fixed8 → ±1, conv2 binary ±1 → ±1,
    fc fixed8 on ±1 inputs; for the MLP: fc1 fixed8 → ±1, fc2 fixed8 on ±1 inputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import FormatError
from .fixed import FixedSpec, check_frac, check_width
from .kinds import DEFAULT_KIND, KINDS, get_kind

__all__ = ["SCHEMES", "Scheme", "layer_spec_from_json", "load_scheme", "scheme_from_json"]


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: the input format and a layer spec per layer.

    ``default`` is a layer spec of some registered kind (a :class:`~hwgen.quant.fixed.
    FixedSpec` for fixed point); ``layers`` is a tuple of ``(layer name, spec)`` overriding
    it.
    """

    name: str
    input_width: int = 8
    input_frac: object = "auto"
    default: object = field(default_factory=FixedSpec)
    layers: tuple = ()
    first: object = None
    last: object = None
    seed: int = 0

    def layer(self, name, dense_names=None):
        """The spec of layer ``name``; ``dense_names`` (the model's Conv2d/Linear layers in
        order) lets :attr:`first` and :attr:`last` apply."""
        named = dict(self.layers)
        if name in named:
            return named[name]
        if dense_names:
            dense_names = list(dense_names)
            if self.first is not None and name == dense_names[0]:
                return self.first
            if self.last is not None and name == dense_names[-1]:
                return self.last
        return self.default

    def check_layers(self, names):
        """Raise :class:`FormatError` if the scheme names a layer not in ``names``."""
        names = list(names)
        for layer_name, _ in self.layers:
            if layer_name not in names:
                raise FormatError(f"Scheme {self.name!r} names layer {layer_name!r}, which "
                                  f"the model does not have; its layers are "
                                  f"{', '.join(names)}")

    def to_json(self):
        obj = {"name": self.name,
               "input": {"width": self.input_width, "frac": self.input_frac},
               "default": spec_to_json(self.default)}
        base = self.default.kind
        for key in ("first", "last"):
            if getattr(self, key) is not None:
                obj[key] = spec_to_json(getattr(self, key), base)
        obj["layers"] = {n: spec_to_json(s, base) for n, s in self.layers}
        if self.seed:
            obj["seed"] = self.seed
        return obj


def spec_to_json(spec, base_kind=DEFAULT_KIND):
    """A layer spec as JSON; the ``kind`` key is written only when it is not ``base_kind``
    (the kind an entry without one gets: the default entry's, or :data:`DEFAULT_KIND` for
    the default entry itself), so fixed-point schemes read the same as before kinds
    existed."""
    obj = get_kind(spec.kind).spec_to_json(spec)
    return obj if spec.kind == base_kind else {"kind": spec.kind, **obj}


def layer_spec_from_json(obj, where, base=None):
    """Parse one layer entry: its ``kind`` picks the parser; ``base`` (a spec) is
    overridden key by key when it is of the same kind."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, not {obj!r}")
    kind_name = obj.get("kind", base.kind if base is not None else DEFAULT_KIND)
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        raise FormatError(f"{where}: kind must be one of {', '.join(KINDS)}, not "
                          f"{kind_name!r}")
    kind = get_kind(kind_name)
    if base is not None and base.kind != kind.name:
        base = None
    return kind.parse_spec({k: v for k, v in obj.items() if k != "kind"}, where, base)


def _fixed(width):
    return Scheme(f"fixed{width}", width, "auto", FixedSpec(width, width))


def _builtin():
    from .binary import BinarySpec
    from .codebook import CodebookSpec
    from .pow2 import Pow2Spec
    from .ternary import TernarySpec
    return (_fixed(16), _fixed(8), _fixed(4),
            Scheme("pow2-4", 8, "auto", Pow2Spec(bits=4)),
            Scheme("bwn", 8, "auto", BinarySpec()),
            Scheme("ternary", 8, "auto", TernarySpec()),
            Scheme("binary", 8, "auto", BinarySpec(binary_out=True),
                   first=FixedSpec(binary_out=True), last=FixedSpec()),
            Scheme("codebook-4", 8, "auto", CodebookSpec(bits=4)),
            Scheme("codebook-6", 8, "auto", CodebookSpec(bits=6)))


#: The built-in schemes by name.
SCHEMES = {s.name: s for s in _builtin()}


def scheme_from_json(obj, where="Scheme"):
    """Parse a JSON spec (already decoded) into a :class:`Scheme`."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object, not {type(obj).__name__!r}")
    for key in obj:
        if key not in ("name", "input", "default", "first", "last", "layers", "seed"):
            raise FormatError(f"{where} has unknown key {key!r}; keys are name, input, "
                              f"default, first, last, layers, seed")
    seed = obj.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise FormatError(f"{where}: seed must be a non-negative integer, not {seed!r}")
    name = obj.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise FormatError(f"{where}: name must be a non-empty string, not {name!r}")
    default = layer_spec_from_json(obj.get("default", {}), f"{where} default")
    inp = obj.get("input", {})
    if not isinstance(inp, dict):
        raise FormatError(f"{where} input must be a JSON object, not {inp!r}")
    for key in inp:
        if key not in ("width", "frac"):
            raise FormatError(f"{where} input has unknown key {key!r}; keys are width, frac")
    in_width = check_width(inp.get("width", getattr(default, "out_width", 8)),
                           f"{where} input: width")
    in_frac = check_frac(inp.get("frac", "auto"), f"{where} input: frac")
    layers = obj.get("layers", {})
    if not isinstance(layers, dict):
        raise FormatError(f"{where} layers must be a JSON object, not {layers!r}")
    specs = tuple((n, layer_spec_from_json(v, f"{where} layer {n!r}", default))
                  for n, v in layers.items())
    ends = {key: layer_spec_from_json(obj[key], f"{where} {key}", default)
            for key in ("first", "last") if key in obj}
    return Scheme(name, in_width, in_frac, default, specs, **ends, seed=seed)


def load_scheme(scheme):
    """A :class:`Scheme` from a built-in name (``fixed8`` …), a JSON file path, or a
    :class:`Scheme` (returned as is)."""
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, (str, os.PathLike)):
        raise FormatError(f"Scheme must be one of {', '.join(SCHEMES)} or a JSON file, not "
                          f"{scheme!r}")
    scheme = os.fspath(scheme)
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if not (scheme.endswith(".json") or os.sep in scheme or os.path.exists(scheme)):
        raise FormatError(f"Scheme must be one of {', '.join(SCHEMES)} or a JSON file, not "
                          f"{scheme!r}")
    try:
        with open(scheme, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise FormatError(f"Scheme file {scheme!r} does not exist") from None
    except IsADirectoryError:
        raise FormatError(f"Scheme file {scheme!r} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"Scheme file {scheme!r} cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"Scheme file {scheme!r} is not valid JSON ({e.msg} at line "
                          f"{e.lineno})") from None
    if isinstance(obj, dict) and "name" not in obj:
        obj = {**obj, "name": os.path.splitext(os.path.basename(scheme))[0]}
    return scheme_from_json(obj, f"Scheme file {scheme!r}")
