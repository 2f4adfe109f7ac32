"""Fill the Verilog templates of ``rtl_templates/`` from a compiled design."""

from importlib import resources
from string import Template

__all__ = ["TEMPLATES", "render"]

#: Template file → name of the file written into a design folder.
TEMPLATES = {"hwgen_axis.v": "hwgen_axis.v", "hwgen_inst.v": "hwgen_inst.v"}


def render(design, top="hwgen_top"):
    """``{filename: Verilog text}`` of every template, filled for ``design``."""
    width = design.act_width
    values = {
        "top": top, "model": design.name, "width": width,
        "axis_width": max(8, (width + 7) // 8 * 8),
        "n_in": design.n_in, "n_out": design.n_out, "last_out": design.n_out - 1,
        "count_bits": max(1, (design.n_out - 1).bit_length()),
        "rows": design.config.rows, "cols": design.config.cols,
        "cycles": design.cycles, "last_layer": len(design.layers) - 1,
    }
    folder = resources.files("hwgen.rtl_templates")
    return {out: Template(folder.joinpath(name).read_text()).substitute(values)
            for name, out in TEMPLATES.items()}
