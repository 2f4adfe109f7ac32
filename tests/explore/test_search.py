"""hwgen.explore.search: its arguments, the specs it writes, and real searches whose result
is checked through the normal compile path (costs counted from the compiled design)."""

import json
import re

import pytest

from hwgen.errors import ArgumentError, UnreachableTargetError
from hwgen.explore.search import (
    FILES,
    Candidate,
    LayerChoice,
    candidate_spec,
    check_cost,
    check_target,
    search,
    uniform,
    write_search,
)
from hwgen.flow import compile_model
from hwgen.quant import scheme_from_json

# --- construction and errors first --------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, float("nan"), True, "0.9"])
def test_target_must_be_in_0_1(bad):
    with pytest.raises(ArgumentError, match=r"^Target accuracy must be a number in \(0, 1\], "
                                            r"not .+$"):
        check_target(bad)


def test_target_message():
    with pytest.raises(ArgumentError, match=r"^Target accuracy must be a number in \(0, 1\], "
                                            r"not 1\.5$"):
        check_target(1.5)
    assert check_target(1) == 1.0


def test_unknown_cost():
    with pytest.raises(ArgumentError, match=r"^Cost must be one of weight-bytes, act-bytes, "
                                            r"cycles, luts, bram, energy, not 'area'$"):
        check_cost("area")


def test_luts_need_an_ice40_before_anything_loads():
    with pytest.raises(ArgumentError, match=r"^Analytic estimates are calibrated for iCE40 "
                                            r"targets .*, not 'ecp5-25k'$"):
        search("builtin:nothing", 0.9, "luts", device="ecp5-25k")


# --- specs --------------------------------------------------------------------------------

NAMES = ("conv1", "conv2", "fc")
L2 = {"conv1": {"weights": {4: 2}, "inputs": {8: 6}},
      "conv2": {"weights": {4: 3}, "inputs": {5: 1}},
      "fc": {"weights": {6: 5}, "inputs": {5: 0}}}


def test_candidate_spec_is_a_scheme_of_every_kind():
    c = Candidate(8, (LayerChoice("fixed4", 5, False, "l2"), LayerChoice("pow2-4", 5, True),
                      LayerChoice("ternary", 6, True, "l2")))
    spec = candidate_spec(c, NAMES, L2)
    assert spec == {
        "name": "search",
        # conv1's l2 choice sets its weights' frac and its input's (the network input)
        "input": {"width": 8, "frac": 6},
        "layers": {
            "conv1": {"kind": "fixed", "weight_width": 4, "per_channel": False,
                      "weight_frac": 2, "out_width": 5},
            "conv2": {"kind": "pow2", "bits": 4, "per_channel": True, "out_width": 5,
                      # fc's l2 choice sets its input's frac: conv2's output
                      "frac": 0},
            "fc": {"kind": "ternary", "out_width": 6}}}
    scheme = scheme_from_json(spec)
    assert [s.kind for _, s in scheme.layers] == ["fixed", "pow2", "ternary"]


def test_codebook_candidates():
    c = Candidate(8, (LayerChoice("codebook-6", 8, True), LayerChoice("fixed8", 8),
                      LayerChoice("codebook-4", 6)))
    assert c.layers[0].label() == "codebook-6/ch a8"
    spec = candidate_spec(c, NAMES)
    assert spec["layers"]["conv1"] == {"kind": "codebook", "bits": 6, "per_channel": True,
                                       "out_width": 8}
    assert spec["layers"]["fc"] == {"kind": "codebook", "bits": 4, "per_channel": False,
                                    "out_width": 6}
    scheme = scheme_from_json(spec)
    assert [s.kind for _, s in scheme.layers] == ["codebook", "fixed", "codebook"]


def test_uniform_candidates():
    assert uniform("fixed6", 2) == Candidate(6, (LayerChoice("fixed6", 6),) * 2)
    assert uniform("bwn", 1) == Candidate(8, (LayerChoice("bwn", 8),))
    spec = candidate_spec(uniform("bwn", 1), ("fc",))
    assert spec["layers"]["fc"] == {"kind": "binary", "out_width": 8}


# --- real searches ------------------------------------------------------------------------

def weight_bytes(design_dir):
    """Bytes of the weight memories, counted from the design folder's manifest: every
    engine's image words × cols fields × the field's bits, and a code-book engine's table
    entries."""
    manifest = json.loads((design_dir / "manifest.json").read_text())
    cols = manifest["config"]["cols"]
    return sum(len(e["weight_image"]) * cols * e["weight_width"] / 8
               + sum(len(t) for row in e.get("tables", ()) for t in row)
               * e.get("value_width", 0) / 8
               for e in manifest["engines"])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A short search on the digits CNN: weight bytes within 1 % of float, on two local
    processes; its files written."""
    result = search("builtin:digits-cnn", 0.99, "weight-bytes", relative=True, jobs=2,
                    budget=30)
    out = tmp_path_factory.mktemp("search") / "out"
    write_search(result, out)
    return result, out


def test_digits_search_meets_the_target_below_fixed8(digits, tmp_path):
    result, out = digits
    chosen = result.points[result.chosen]
    assert result.target == pytest.approx(0.99 * result.float_accuracy)
    assert chosen.accuracy >= result.target
    # The spec compiles as it is, through the normal path; the golden model's accuracy of
    # the compiled spec is what the search reported, and its weight memories, counted from
    # the written images, are smaller than fixed8's.
    design, qmodel = compile_model("builtin:digits-cnn", out / "spec.json", "4x4",
                                   tmp_path / "chosen", vectors=2)
    assert qmodel.quantized_accuracy() == chosen.accuracy
    compile_model("builtin:digits-cnn", "fixed8", "4x4", tmp_path / "fixed8", vectors=2)
    got, fixed8 = weight_bytes(tmp_path / "chosen"), weight_bytes(tmp_path / "fixed8")
    assert got == chosen.metrics["weight_bytes"]
    assert got < fixed8
    assert result.points[result.fixed8].metrics["weight_bytes"] == fixed8
    assert design.cycles == chosen.metrics["cycles"]


def test_digits_search_records_every_configuration(digits, tmp_path):
    result, out = digits
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    # one Markdown row per configuration, every one with the header's columns (the
    # configurations' labels hold escaped bars)
    md = [line for line in (out / "search.md").read_text().splitlines()
          if line.startswith("| ")]
    assert len(md) == 1 + len(result.points)
    assert len({len(re.split(r"(?<!\\)\|", line)) for line in md}) == 1
    rows = (out / "search.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.points) <= 1 + 30
    saved = json.loads((out / "search.json").read_text())
    assert saved["chosen"] == result.chosen and len(saved["points"]) == len(result.points)
    single = result.points[result.best_single].candidate.layers[0].weights
    assert set(saved["comparison"]) == {"search", "greedy", "fixed8", "fixed4",
                                        f"single-kind {single}"}
    # each compared configuration carries the spec it was evaluated with: the fixed4 one
    # compiles to the weight memories and accuracy the search reported for it
    fixed4 = result.points[result.fixed4]
    spec = scheme_from_json(saved["comparison"]["fixed4"]["spec"])
    _, qmodel = compile_model("builtin:digits-cnn", spec, "4x4", tmp_path / "fixed4", vectors=1)
    assert qmodel.quantized_accuracy() == fixed4.accuracy
    assert weight_bytes(tmp_path / "fixed4") == fixed4.metrics["weight_bytes"]
    # the choice ranks first among everything evaluated: no point that meets the target
    # fits with a lower cost
    chosen = result.points[result.chosen]
    for p in result.points:
        if p.accuracy is not None and p.accuracy >= result.target and p.metrics["fits"]:
            assert p.metrics["weight_bytes"] >= chosen.metrics["weight_bytes"]
    table = result.format_table()
    assert "search" in table and "greedy" in table and "fixed8" in table


@pytest.fixture(scope="module")
def mlp_serial():
    return search("builtin:mlp", 0.95, "energy", relative=True, budget=40, seed=3)


def test_the_result_does_not_depend_on_where_evaluations_run(mlp_serial):
    parallel = search("builtin:mlp", 0.95, "energy", relative=True, budget=40, seed=3,
                      jobs=2)
    assert [p.to_json() for p in parallel.points] == [p.to_json() for p in mlp_serial.points]
    assert parallel.chosen == mlp_serial.chosen


def test_a_local_dask_cluster_gives_the_same_result(mlp_serial):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = search("builtin:mlp", 0.95, "energy", relative=True, budget=40, seed=3,
                        executor=cluster.scheduler_address)
    assert [p.to_json() for p in result.points] == [p.to_json() for p in mlp_serial.points]


def test_unreachable_target():
    with pytest.raises(UnreachableTargetError,
                       match=r"^No configuration reaches the target accuracy 100\.00%; the "
                             r"most accurate, uniform (fixed|codebook-)\d+, reaches "
                             r"\d+\.\d\d%$"):
        search("builtin:mlp", 1.0, budget=20)
