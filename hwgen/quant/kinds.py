"""The quantizer-kind registry: how weights of one kind are specified, calibrated,
fake-quantized and stored.

A quantizer kind (fixed point today; power-of-two, binary and code-book later) is a
subclass of :class:`QuantKind` registered under its name with :func:`register_kind`, the
way the front end registers its handlers with :func:`hwgen.frontend.handles`::

    @register_kind("pow2")
    class Pow2Kind(QuantKind):
        spec_type = Pow2Spec
        ...

Everything outside the kind's own module asks the kind (:func:`get_kind`) instead of
assuming a format class, so adding a kind is one new module plus its registration (and an
import in :mod:`hwgen.quant`'s ``__init__`` so that it registers itself).

A layer entry of a JSON scheme picks its kind with ``"kind": NAME`` (default
:data:`DEFAULT_KIND`); every other key of the entry belongs to that kind.
"""

from __future__ import annotations

from ..errors import ArgumentError, FormatError

__all__ = ["DEFAULT_KIND", "KINDS", "QuantKind", "get_kind", "register_kind"]

#: The kind of a layer entry that names none.
DEFAULT_KIND = "fixed"

#: name -> the registered :class:`QuantKind` instance.
KINDS = {}


class QuantKind:
    """One quantizer kind. Subclasses set :attr:`spec_type` and implement every method
    without a default.

    The layer spec (an instance of :attr:`spec_type`) is a frozen dataclass with the
    kind's keys as fields and a ``kind`` field holding the kind's name.
    """

    #: Set by :func:`register_kind`.
    name = None
    #: The frozen dataclass of this kind's layer spec.
    spec_type = None

    # --- the spec -------------------------------------------------------------------------

    def parse_spec(self, obj, where, base=None):
        """The layer spec for the JSON object ``obj`` (already decoded) on top of ``base``
        (a spec of this kind, or None for the kind's defaults); messages start with
        ``where``. By default: the spec type's ``from_json(obj, where, base)``."""
        return self.spec_type.from_json(obj, where, base)

    def spec_to_json(self, spec):
        """``spec`` as a JSON object that :meth:`parse_spec` reads back. By default: its
        ``to_json()``."""
        return spec.to_json()

    # --- formats --------------------------------------------------------------------------

    def weight_formats(self, layer_name, weight, spec):
        """One weight format per output channel (axis 0 of the float ``weight``),
        calibrated where the spec says ``"auto"``."""
        raise NotImplementedError

    def output_format(self, activations, spec):
        """The format of the layer's output, calibrated on the float ``activations``
        (a callable returning them, so that fixed formats need none)."""
        raise NotImplementedError

    def bias_formats(self, in_fmt, w_fmts, bias_width):
        """Per output channel, the format the bias is stored in (the accumulator's)."""
        raise NotImplementedError

    def resolved_spec(self, layer):
        """A spec of this kind with every calibrated value fixed to ``layer``'s
        (a :class:`hwgen.quant.modules.QuantConv2d` or ``QuantLinear``)."""
        raise NotImplementedError

    # --- values ---------------------------------------------------------------------------

    def fake_quant(self, weight, w_fmts):
        """The weights as the hardware sees them, in ``weight``'s dtype, with a
        straight-through gradient. By default: :func:`hwgen.numerics.quantize` per output
        channel (right for every format it handles: fixed point, powers of two)."""
        from .fixed import fake_quant
        return fake_quant(weight, w_fmts)

    def int_weights(self, weight, w_fmts):
        """The stored integers of ``weight`` (a tensor), int64 numpy. By default:
        :func:`hwgen.numerics.quantize` per output channel."""
        import numpy as np

        from ..numerics import quantize
        w = weight.detach()
        return np.concatenate([quantize(w[c:c + 1], f).numpy() for c, f in enumerate(w_fmts)])

    def weight_bytes(self, count_per_channel, w_fmts):
        """Bytes the weights take in memory: ``count_per_channel`` values per format."""
        raise NotImplementedError

    def describe(self, w_fmts):
        """The weight formats in a few characters, for reports."""
        raise NotImplementedError

    # --- per layer (defaults that kinds without scales or training state keep) -------------

    def layer_weights(self, layer):
        """The fake-quant weights of ``layer`` (a ``QuantConv2d``/``QuantLinear``), scale
        included; training mode may differ (stochastic binarization)."""
        return self.fake_quant(layer.weight, layer.w_fmts)

    def layer_int_weights(self, layer):
        """The stored integers of ``layer``'s weights (int64 numpy); by default
        :meth:`int_weights` of its weight and formats (a kind whose integers depend on more,
        such as a code-book's clusters, overrides this)."""
        return self.int_weights(layer.weight, layer.w_fmts)

    def layer_scale(self, layer):
        """``(m, scale_frac)``: the per-channel integer multiplier of ``layer``'s scale
        (int64 numpy) and its fractional bits, or None for a layer without a scale."""
        return

    def layer_bias_formats(self, layer):
        """Per output channel, the format ``layer``'s bias is stored in."""
        return self.bias_formats(layer.in_fmt, layer.w_fmts, layer.bias_width)

    def clip_(self, layer):
        """Clip ``layer``'s float shadow weights in place after an optimizer step."""

    def scale_bytes(self, layer):
        """Bytes of ``layer``'s scale multipliers."""
        return 0


def register_kind(name):
    """Class decorator: register an instance of the decorated :class:`QuantKind`
    subclass under ``name``."""
    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, QuantKind)):
            raise ArgumentError(f"Quantizer kind {name!r} must be a QuantKind subclass, "
                                f"not {cls!r}")
        if name in KINDS:
            raise ArgumentError(f"Quantizer kind {name!r} is already registered")
        cls.name = name
        KINDS[name] = cls()
        return cls
    return register


def get_kind(name):
    """The registered :class:`QuantKind` called ``name``."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise FormatError(f"Quantizer kind must be one of {', '.join(KINDS)}, "
                          f"not {name!r}") from None
