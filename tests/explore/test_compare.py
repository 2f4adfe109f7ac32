"""hwgen.explore: the Pareto front, the energy model's anchors, and a real sweep run
serially, on local processes and on a local Dask cluster of worker processes."""

import json

import pytest

from hwgen.cli import main
from hwgen.explore import energy
from hwgen.explore.compare import configs, pareto_front, run_sweep, write_results


def test_pareto_front_of_hand_placed_points():
    # (cost, value): b is dominated by a (cheaper and better); d ties a's cost, worse value.
    points = [(1, 5), (2, 4), (3, 9), (1, 2), (4, 9)]
    assert pareto_front(points) == [0, 2]


def test_energy_model_reproduces_the_table_and_orders_the_pe_kinds():
    assert energy.add_pj(8) == pytest.approx(0.03)
    assert energy.add_pj(16) == pytest.approx(0.05)
    assert energy.add_pj(32) == pytest.approx(0.1)
    assert energy.mul_pj(8, 8) == pytest.approx(0.2)
    assert energy.mul_pj(32, 32) == pytest.approx(3.1, rel=0.05)     # the table's 3.1 pJ
    fixed = energy.mac_pj("fixed", 8, 8, 24)
    shift = energy.mac_pj("shift", 8, 4, 24)
    xnor = energy.mac_pj("xnor", 1, 1, 16)
    assert xnor < shift < fixed
    assert fixed / xnor > 50


def test_a_sweep_needs_a_point_on_every_axis():
    from hwgen.errors import ArgumentError
    with pytest.raises(ArgumentError, match=r"^A sweep needs at least one scheme, one array, "
                                            r"one target and one batch$"):
        configs("builtin:mlp", [], ["2x2"], ["gowin"])
    with pytest.raises(ArgumentError, match=r"one batch$"):
        configs("builtin:mlp", ["fixed8"], ["2x2"], ["gowin"], batches=[])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def sweep():
    return configs("builtin:mlp", ["fixed8", "fixed4"], ["1x2"], ["gowin"], place=False)


@pytest.fixture(scope="module")
def serial_rows(sweep, cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("HWGEN_BUILD_DIR", str(cache / "sim"))   # estimates in cache/estimate
    try:
        yield run_sweep(sweep, progress=False)
    finally:
        mp.undo()


def test_serial_sweep(serial_rows, tmp_path):
    fixed8, fixed4 = serial_rows
    assert (fixed8.scheme, fixed4.scheme) == ("fixed8", "fixed4")
    assert fixed8.weight_bytes == 2 * fixed4.weight_bytes     # the same weights, half the bits
    assert fixed8.cycles == fixed4.cycles                     # same shapes, same array
    assert 0.9 < fixed8.accuracy <= 1 and fixed4.accuracy > 0.85
    assert fixed4.energy_nj < fixed8.energy_nj
    assert not fixed8.placed and fixed8.fmax_mhz is None and fixed8.latency_us is None
    paths = write_results(serial_rows, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(
        ["compare.csv", "compare.json", "compare.md", "accuracy_vs_luts.png",
         "latency_vs_luts.png"])
    rows = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [r["scheme"] for r in rows] == ["fixed8", "fixed4"]
    assert (tmp_path / "out" / "accuracy_vs_luts.png").read_bytes()[:4] == b"\x89PNG"


def test_a_batch_shares_the_weight_reads(cache, monkeypatch):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(cache / "sim"))
    single, batched = run_sweep(configs("builtin:mlp", ["fixed8"], ["2x2"], ["gowin"],
                                        place=False, batches=[1, 2]), progress=False)
    assert (single.batch, batched.batch) == (1, 2)
    assert batched.accuracy == single.accuracy and batched.weight_bytes == single.weight_bytes
    # on 2 rows the MLP's Linear layers take both images in the tiles one image took: about
    # half the cycles and half the weight reads per image, the same MACs
    assert batched.cycles < 0.6 * single.cycles
    assert batched.energy_nj < single.energy_nj


def test_local_processes_give_the_same_rows(serial_rows, sweep, cache, monkeypatch):
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(cache / "sim"))
    assert run_sweep(sweep, jobs=2, progress=False) == serial_rows


def test_a_local_dask_cluster_gives_the_same_rows(serial_rows, sweep, cache, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    monkeypatch.setenv("HWGEN_BUILD_DIR", str(cache / "sim"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        rows = run_sweep(sweep, executor=cluster.scheduler_address, progress=False)
    assert rows == serial_rows


def test_compare_command_refuses_bad_input_before_work(tmp_path, capsys):
    assert main(["compare", "builtin:mlp", "--arrays", "1000x1000", "--out",
                 str(tmp_path / "o")]) == 1
    assert "more than hwgen builds" in capsys.readouterr().err
    assert main(["compare", "builtin:mlp", "--jobs", "0", "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == ("hwgen: error: Jobs must be an integer of at least 1, "
                                       "not 0\n")
    assert list(tmp_path.iterdir()) == []
