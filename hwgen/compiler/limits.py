"""Size limits: what hwgen refuses to build unless told ``allow_large``.

A mistyped size must not take a machine down, so :func:`check_size` refuses, before any
memory image is built or any gateware elaborated, a design beyond :data:`SIZE_LIMITS`:
more than 1,024 PEs (32×32: the largest array whose generation is measured, see
``benchmarks/compile_time.py``), operands wider than 32 bits, accumulators wider than 64
(the golden model's integers), or on-chip memory beyond the largest supported device (the
ECP5-85F's 208 block RAMs of 18 Kbit). ``allow_large=True`` (``--allow-large``) lifts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DoesNotFitError

__all__ = ["SIZE_LIMITS", "SizeLimits", "check_size", "memory_bits"]


@dataclass(frozen=True)
class SizeLimits:
    """The largest design hwgen builds unless told ``allow_large`` (see the module
    docstring)."""

    pes: int = 1024
    operand_width: int = 32
    acc_width: int = 64
    xnor_width: int = 64
    memory_bits: int = 208 * 18 * 1024


SIZE_LIMITS = SizeLimits()


def _refuse(what, limit_text):
    raise DoesNotFitError(f"{what} is more than hwgen builds ({limit_text}); pass "
                          f"--allow-large (allow_large=True) to build it anyway")


def check_size(config, memory=None, allow_large=False, limits=SIZE_LIMITS):
    """Refuse ``config`` (and, once the widths are known, ``memory`` bits of on-chip
    memory) beyond ``limits`` with :class:`~hwgen.errors.DoesNotFitError`, unless
    ``allow_large``. Cheap: call it before any long work."""
    if allow_large:
        return
    if config.pes > limits.pes:
        _refuse(f"A {config.rows}x{config.cols} array of {config.pes:,} PEs",
                f"at most {limits.pes:,} PEs, e.g. 32x32")
    for name in ("act_width", "weight_width"):
        value = getattr(config, name)
        if value is not None and value > limits.operand_width:
            _refuse(f"A {value}-bit {name.replace('_', ' ')}",
                    f"at most {limits.operand_width} bits")
    if config.xnor_width > limits.xnor_width:
        _refuse(f"An XNOR width of {config.xnor_width} binary positions",
                f"at most {limits.xnor_width}")
    if config.acc_width is not None and config.acc_width > limits.acc_width:
        _refuse(f"A {config.acc_width}-bit accumulator", f"at most {limits.acc_width} bits")
    if memory is not None and memory > limits.memory_bits:
        _refuse(f"{memory:,} bits of on-chip memory",
                f"at most {limits.memory_bits:,}, the block RAM of an ECP5-85F")


def memory_bits(config, word_width, buffer_depth, weights, param_words, param_width):
    """Bits of on-chip memory of a design: the activation buffer (one copy of
    ``buffer_depth`` words of ``word_width`` bits per array row), the weight memories
    (``weights``: ``(weight field bits, words)`` per engine, ``cols`` fields a word) and
    the parameter memory (``param_words`` words of ``param_width`` bits,
    :func:`hwgen.contract.param_word_fields`)."""
    return (config.rows * buffer_depth * word_width
            + sum(words * config.cols * width for width, words in weights)
            + param_words * param_width)
