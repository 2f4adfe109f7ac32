"""The compiled design and its manifest (``manifest.json``): the layer program, the memory
images and the predicted cycles, serialised with the contract version."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .. import timing
from ..contract import CONTRACT_VERSION, LayerDescriptor
from ..errors import FormatError
from ..numerics import QFormat, format_from_json
from .plan import AcceleratorConfig

__all__ = ["CompiledDesign", "EngineImage", "LayerProgram"]


@dataclass(frozen=True)
class LayerProgram:
    """One entry of the layer program: the layer's shapes and formats, its
    :class:`~hwgen.contract.LayerDescriptor` and its predicted
    :class:`~hwgen.timing.LayerCycles`."""

    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    in_fmt: QFormat
    out_fmt: QFormat
    w_width: int
    macs: int
    tiles: int
    desc: LayerDescriptor
    cycles: timing.LayerCycles
    pe_kind: str = "fixed"

    def to_json(self):
        return {
            "name": self.name, "kind": self.kind, "pe_kind": self.pe_kind, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "in_fmt": self.in_fmt.to_json(),
            "out_fmt": self.out_fmt.to_json(), "w_width": self.w_width, "macs": self.macs,
            "tiles": self.tiles, "descriptor": self.desc.to_json(),
            "cycles": self.cycles.to_json(),
        }

    @classmethod
    def from_json(cls, obj):
        return cls(obj["name"], obj["kind"], tuple(obj["in_shape"]), tuple(obj["out_shape"]),
                   format_from_json(obj["in_fmt"]), format_from_json(obj["out_fmt"]),
                   obj["w_width"], obj["macs"], obj["tiles"],
                   LayerDescriptor.from_json(obj["descriptor"]),
                   timing.LayerCycles.from_json(obj["cycles"]), obj["pe_kind"])


@dataclass(frozen=True)
class EngineImage:
    """One engine of a design: its PE kind, the widths of a stored weight field and of its
    PEs' accumulators, its weight memory's words (:mod:`hwgen.contract`) and its
    accumulator bounds ``((width, overflow), ...)``, which a layer's ``acc_mode`` selects
    (narrow accumulators; :class:`hwgen.rtl.pe.PE`).

    A code-book engine (kind ``"codebook"``) stores table indices (``weight_width`` bits)
    and also has ``value_width`` (bits of a looked-up weight, what its MAC PEs take),
    ``tables`` (table rows: per row, per column, the ``2**weight_width`` entries) and
    ``table_bounds`` (per row, the first weight memory address that uses it; rows in
    ascending address order, the first at 0).

    An engine that runs split layers has ``banks``: the words of weight banks ``1 … rows −
    1`` (the weight memory is bank 0; each bank holds the split layers, which come first
    in the weight memory; :mod:`hwgen.contract`).
    """

    kind: str
    weight_width: int
    acc_width: int
    weight_image: tuple
    acc_modes: tuple = ()
    value_width: int = 0
    tables: tuple = ()
    table_bounds: tuple = ()
    banks: tuple = ()

    def __post_init__(self):
        modes = tuple(tuple(mode) for mode in self.acc_modes) or ((self.acc_width, "wrap"),)
        object.__setattr__(self, "acc_modes", modes)

    def to_json(self):
        obj = {"kind": self.kind, "weight_width": self.weight_width,
               "acc_width": self.acc_width, "weight_image": list(self.weight_image),
               "acc_modes": [list(mode) for mode in self.acc_modes]}
        if self.tables:
            obj.update(value_width=self.value_width,
                       tables=[[list(t) for t in row] for row in self.tables],
                       table_bounds=list(self.table_bounds))
        if self.banks:
            obj["banks"] = [list(bank) for bank in self.banks]
        return obj

    @classmethod
    def from_json(cls, obj):
        return cls(obj["kind"], obj["weight_width"], obj["acc_width"],
                   tuple(obj["weight_image"]), tuple(tuple(m) for m in obj["acc_modes"]),
                   obj.get("value_width", 0),
                   tuple(tuple(tuple(t) for t in row) for row in obj.get("tables", ())),
                   tuple(obj.get("table_bounds", ())),
                   tuple(tuple(bank) for bank in obj.get("banks", ())))


@dataclass(frozen=True, eq=False)
class CompiledDesign:
    """Everything the hardware generator and the testbench need: the resolved config, the
    layer program, the memory images and the predicted cycles. ``to_json`` is the manifest.
    """

    name: str
    config: AcceleratorConfig
    act_width: int          # a stored activation (signed)
    word_width: int         # an activation buffer word: act_width, or P when wider
    acc_width: int          # the post-processing unit's accumulator (the widest engine's)
    buffer_depth: int
    input_shape: tuple
    input_fmt: QFormat
    output_shape: tuple
    output_fmt: QFormat
    input_base: int
    output_base: int
    layers: tuple
    engines: tuple          # EngineImage per PE kind, in the order of the layers' use
    param_image: tuple      # (bias, shift, scale, flip, offset, bit) per channel slot
    roundings: tuple
    overflows: tuple
    scale_width: int = 0    # bits of the per-channel multiplier; 0: no multiplier
    thresholds: bool = False    # some layer has binary outputs (threshold compare)

    @property
    def pe_latency(self):
        """Latency of one PE: :func:`hwgen.timing.pe_latency` of ``config.pe_stages``."""
        return timing.pe_latency(self.config.pe_stages)

    @property
    def post_latency(self):
        """Latency of the post-processing unit: :func:`hwgen.timing.post_process_latency`
        (one cycle more with the per-channel multiplier or stochastic rounding)."""
        return timing.post_process_latency(self.scale_width > 0, "stochastic" in self.roundings)

    @property
    def engine_kinds(self):
        """The engines' PE kinds, in engine index order."""
        return tuple(engine.kind for engine in self.engines)

    @property
    def bit_width(self):
        """Bits of a parameter word's ``bit`` field (a channel's bit in a packed word)."""
        return max(1, (self.config.xnor_width - 1).bit_length())

    @property
    def descriptors(self):
        """The layer program as the hardware runs it: one descriptor per layer."""
        return tuple(layer.desc for layer in self.layers)

    @property
    def batch(self):
        """Images one start takes (``config.batch``)."""
        return self.config.batch

    @property
    def image_in(self):
        """Input words of one image."""
        return int(np.prod(self.input_shape))

    @property
    def image_out(self):
        """Output words of one image."""
        return int(np.prod(self.output_shape))

    @property
    def n_in(self):
        """Input words one start takes: :attr:`batch` images, one after the other."""
        return self.batch * self.image_in

    @property
    def n_out(self):
        """Output words one start gives: :attr:`batch` images' outputs, channel-major
        when :attr:`channel_major_out` (see :meth:`from_batches`)."""
        return self.batch * self.image_out

    @property
    def channel_major_out(self):
        """Whether the output words of a start are ``C × batch`` (a batched network ending
        in a Linear layer, :mod:`hwgen.compiler.plan`) rather than image after image."""
        return self.batch > 1 and self.layers[-1].kind == "linear"

    def to_batches(self, inputs):
        """Per-image input words ``(S, image_in)`` as the starts' words ``(ceil(S / batch),
        n_in)``; the last start is filled up with copies of the first image."""
        inputs = np.asarray(inputs, dtype=np.int64).reshape(len(inputs), self.image_in)
        starts = -(-len(inputs) // self.batch)
        fill = starts * self.batch - len(inputs)
        if fill:
            inputs = np.concatenate([inputs, np.repeat(inputs[:1], fill, axis=0)])
        return inputs.reshape(starts, self.n_in)

    def from_batches(self, words, samples):
        """The starts' output words ``(starts, n_out)`` as the first ``samples`` images'
        ``(samples, image_out)``, undoing the channel-major order of
        :attr:`channel_major_out`."""
        words = np.asarray(words, dtype=np.int64).reshape(len(words), self.n_out)
        if self.channel_major_out:
            words = words.reshape(len(words), self.image_out, self.batch).transpose(0, 2, 1)
        return words.reshape(-1, self.image_out)[:samples]

    @property
    def cycles(self):
        return sum(layer.cycles.total for layer in self.layers)

    @property
    def macs(self):
        return sum(layer.macs for layer in self.layers)

    def graph_layer(self, layer):
        """The network layer a program entry runs: ``conv1`` for ``conv1[2]`` (the
        convolution's entry for image 2 of a batch)."""
        return layer.name.rpartition("[")[0] if layer.kind == "conv" and self.batch > 1 \
            else layer.name

    def macs_per_step(self, layer):
        """MACs one PE does per step in ``layer``: ``P`` (``config.xnor_width``) on the
        XNOR engine, else 1."""
        return self.config.xnor_width if layer.pe_kind == "xnor" else 1

    def layer_ideal(self, layer):
        """Cycles of ``layer`` at the physical limit: MACs ÷ (PEs · :meth:`macs_per_step`)."""
        return layer.macs / (self.config.pes * self.macs_per_step(layer))

    @property
    def ideal_cycles(self):
        return sum(self.layer_ideal(layer) for layer in self.layers)

    def to_json(self):
        return {
            "format": "hwgen-manifest", "contract_version": CONTRACT_VERSION,
            "name": self.name, "config": asdict(self.config),
            "widths": {"act": self.act_width, "word": self.word_width,
                       "acc": self.acc_width, "scale": self.scale_width},
            "thresholds": self.thresholds,
            "buffer_depth": self.buffer_depth,
            "timing": {"pe_latency": self.pe_latency, "post_latency": self.post_latency},
            "input": {"shape": list(self.input_shape), "fmt": self.input_fmt.to_json(),
                      "base": self.input_base, "words": self.n_in},
            "output": {"shape": list(self.output_shape), "fmt": self.output_fmt.to_json(),
                       "base": self.output_base, "words": self.n_out},
            "modes": {"rounding": list(self.roundings), "overflow": list(self.overflows)},
            "layers": [layer.to_json() for layer in self.layers],
            "cycles": {"predicted_total": self.cycles, "macs": self.macs,
                       "ideal": self.ideal_cycles,
                       "per_layer": {layer.name: layer.cycles.total for layer in self.layers}},
            "engines": [engine.to_json() for engine in self.engines],
            "param_image": [list(p) for p in self.param_image],
        }

    @classmethod
    def from_json(cls, obj):
        if not isinstance(obj, dict) or obj.get("format") != "hwgen-manifest":
            raise FormatError("Manifest is not an hwgen manifest")
        version = obj.get("contract_version", obj.get("version"))
        if version != CONTRACT_VERSION:
            raise FormatError(f"Manifest has contract version {version!r} but this hwgen "
                              f"reads version {CONTRACT_VERSION}; compile the model again")
        return cls(
            name=obj["name"], config=AcceleratorConfig(**obj["config"]),
            act_width=obj["widths"]["act"], word_width=obj["widths"]["word"],
            acc_width=obj["widths"]["acc"], buffer_depth=obj["buffer_depth"],
            input_shape=tuple(obj["input"]["shape"]),
            input_fmt=format_from_json(obj["input"]["fmt"]),
            output_shape=tuple(obj["output"]["shape"]),
            output_fmt=format_from_json(obj["output"]["fmt"]),
            input_base=obj["input"]["base"], output_base=obj["output"]["base"],
            layers=tuple(LayerProgram.from_json(layer) for layer in obj["layers"]),
            engines=tuple(EngineImage.from_json(e) for e in obj["engines"]),
            param_image=tuple(tuple(p) for p in obj["param_image"]),
            roundings=tuple(obj["modes"]["rounding"]), overflows=tuple(obj["modes"]["overflow"]),
            scale_width=obj["widths"]["scale"], thresholds=bool(obj["thresholds"]),
        )

    def dumps(self):
        return json.dumps(self.to_json(), indent=1)
