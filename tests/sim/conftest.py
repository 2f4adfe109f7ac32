"""Shared by the system tests: the check every simulation report must pass."""

import pytest


def check_report(report, design):
    """Every output word bit-exact, every layer's measured cycles as predicted."""
    assert report.mismatches == 0, report.mismatched_samples
    assert report.bit_exact
    assert report.cycles_match, (report.cycles_measured, report.cycles_predicted)
    assert report.cycles_measured["per_layer"] == {
        layer.name: layer.cycles.total for layer in design.layers}


@pytest.fixture(name="check")
def check_fixture():
    """:func:`check_report`."""
    return check_report
