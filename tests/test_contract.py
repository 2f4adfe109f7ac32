"""The compiler↔gateware contract: one typed descriptor, and import boundaries that keep
the two sides apart."""

import ast
from pathlib import Path

import pytest

from hwgen import contract
from hwgen.contract import COUNT, MODE, SIGNED, WORD, descriptor_fields

ROOT = Path(__file__).resolve().parent.parent / "hwgen"


def imported_modules(path):
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ["hwgen", *path.relative_to(ROOT).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def sources(*parts):
    folder = ROOT.joinpath(*parts)
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]


def test_imported_modules_resolves_relative_imports():
    # The checker itself: it must see an import of the compiler written either way.
    names = imported_modules(ROOT / "rtl" / "top.py")
    assert "hwgen.contract" in names and "hwgen.rtl.engine" in names
    names = imported_modules(ROOT / "compiler" / "plan.py")
    assert "hwgen.compiler.pack" in names and "hwgen.timing" in names


def test_compiler_never_imports_the_gateware():
    for path in sources("compiler"):
        bad = {n for n in imported_modules(path) if n.startswith(("hwgen.rtl", "amaranth"))}
        assert not bad, (path, bad)


def test_gateware_never_imports_the_compiler_or_torch():
    for path in sources("rtl"):
        bad = {n for n in imported_modules(path)
               if n.startswith(("hwgen.compiler", "torch", "hwgen.quant", "hwgen.frontend"))}
        assert not bad, (path, bad)


def test_contract_and_timing_are_plain_python():
    for name in ("contract", "timing"):
        bad = {n for n in imported_modules(ROOT / f"{name}.py")
               if n.startswith(("amaranth", "torch", "hwgen.rtl", "hwgen.compiler"))}
        assert not bad, (name, bad)


def test_descriptor_fields_are_typed_and_documented():
    kinds = dict(descriptor_fields())
    assert set(kinds.values()) == {COUNT, SIGNED, MODE, WORD}
    assert [n for n, k in kinds.items() if k == MODE] == ["rounding", "overflow"]
    assert [n for n, k in kinds.items() if k == WORD] == ["rand_mask"]
    assert kinds["start_base"] == SIGNED and kinds["npix"] == COUNT
    for f in contract.LayerDescriptor.__dataclass_fields__.values():
        assert f.metadata["doc"], f.name


def test_descriptor_layout_follows_the_contract():
    from amaranth.hdl import signed, unsigned

    from hwgen.rtl.layouts import Overflow, Rounding, descriptor_layout, param_word_layout
    layout = descriptor_layout(10, 12)
    assert [name for name, _ in layout] == [name for name, _ in descriptor_fields()]
    assert layout["d_ci"].shape == signed(10) and layout["k_len"].shape == unsigned(12)
    assert layout["rounding"].shape is Rounding and layout["overflow"].shape is Overflow
    word = param_word_layout(20)
    # the bias plus rounding to nearest's half step, up to 2**21 (contract.param_bias)
    assert word["bias"].shape == signed(23)
    assert word["shift"].shape == signed(contract.SHIFT_BITS)


@pytest.mark.parametrize("bias, shift, rounding, field", [
    (5, 3, "nearest_even", 9), (5, 3, "nearest_up", 9), (-5, 1, "nearest_up", -4),
    (5, 3, "floor", 5), (5, 3, "stochastic", 5),            # no half step
    (5, 0, "nearest_even", 5), (5, -2, "nearest_up", 5),    # no right shift
    (0, 40, "nearest_up", 2048), (-512, 12, "nearest_even", 1536),   # clamped to 10 + 2
])
def test_param_bias_holds_rounding_to_nearests_half_step(bias, shift, rounding, field):
    assert contract.param_bias(bias, shift, rounding, 10) == field
    # the widest field a 10-bit bias needs fits the 13-bit field
    assert -(1 << 12) <= field < 1 << 12
