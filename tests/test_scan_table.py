"""The shared scan layer: ScanTable files, the look-elsewhere calibration against toys, the HEPData
record and limit plots, and the Search.scan hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from belle_rare.analyses.hepdata_record import plot_limit_curve, plot_limit_grid, write_hepdata
from belle_rare.processors import registry
from belle_rare.stats import search_limits
from belle_rare.stats.errors import StatsError
from belle_rare.stats.look_elsewhere import (
    calibrate,
    count_upcrossings,
    global_p_value,
    global_significance,
    rice_calibration,
    toy_calibration,
)
from belle_rare.stats.peak_scan import fit_all, local_significance, windows
from belle_rare.stats.scan_table import (COLUMNS, EXPECTED_COLUMNS, TOY_EXPECTED_COLUMNS, ScanTable, largest_excess, read_scan_table,
                                         scan_calibration)


def _table() -> ScanTable:
    m = np.linspace(0.1, 2.0, 40)
    exp = np.array([k * 1e-7 * (1 + m) for k in (0.5, 0.7, 1.0, 1.4, 2.0)])
    a = ScanTable.from_arrays("K_mumu", m, 1.1e-7 * (1 + m), exp, np.sin(5 * m), 0.005, lifetime_cm=1.0, efficiency=0.1)
    b = ScanTable.from_arrays("K_mumu", m, 1.2e-7 * (1 + m), exp, np.sin(5 * m), 0.005, lifetime_cm=10.0, efficiency=0.2)
    c = ScanTable.from_arrays("K_ee", m, 1.0e-7 * (1 + m), exp, 2.5 * np.cos(3 * m), 0.01)  # no lifetime: NaN
    return ScanTable.concat([a, b, c], metadata={"search": "toy", "poi": "BR"})


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_scan_table_round_trip(tmp_path, suffix):
    table = _table()
    path = table.write(tmp_path / f"scan.{suffix}")
    back = read_scan_table(path)
    assert list(back.frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert back.metadata == {"search": "toy", "poi": "BR"}
    assert len(back) == 120 and back.frame["lifetime_cm"].isna().sum() == 40
    np.testing.assert_allclose(back.expected, table.expected, rtol=1e-7)
    assert [k for k, _ in back.curves()][0] == ("K_ee", pytest.approx(float("nan"), nan_ok=True))
    assert not list(tmp_path.glob(".*"))  # the atomic writer left no temporary file


def test_scan_table_refuses_missing_columns_and_bad_shapes():
    with pytest.raises(StatsError, match="missing column"):
        ScanTable(_table().frame.drop(columns=["resolution"]))
    with pytest.raises(StatsError, match="shape"):
        ScanTable.from_arrays("c", np.arange(3.0), np.ones(3), np.ones((4, 3)), np.zeros(3), 0.01)


def test_largest_excess_counts_each_channel_once():
    table = _table()
    excess = largest_excess(table)
    assert excess.row["channel"] == "K_ee" and excess.local_significance == pytest.approx(2.5 * math.cos(6.0))  # at m = 2
    # lifetimes of one channel are one spectrum: K_mumu counts once, K_ee once
    m = np.linspace(0.1, 2.0, 40)
    expected = rice_calibration(m, np.full(40, 0.005)).n0 + rice_calibration(m, np.full(40, 0.01)).n0
    assert scan_calibration(table).n0 == pytest.approx(expected)
    assert 0.0 <= excess.global_significance < excess.local_significance


def test_rice_and_global_p_value_formulae():
    # int dm / (sqrt 2 sigma) / (2 pi) over 1 GeV at sigma = 10 MeV
    cal = rice_calibration(np.linspace(0, 1, 201), np.full(201, 0.01))
    assert cal.n0 == pytest.approx(1.0 / (np.sqrt(2) * 0.01) / (2 * np.pi))
    # small p: Gross-Vitells p_local + N0 exp(-u^2/2)
    z = 5.0
    gv = 0.5 * math.erfc(z / math.sqrt(2)) + cal.n0 * math.exp(-z * z / 2)
    assert global_p_value(z, cal) == pytest.approx(gv, rel=1e-3)
    assert global_significance(z, cal) < z
    assert (cal + cal).n0 == pytest.approx(2 * cal.n0)
    assert count_upcrossings(np.array([0.0, 2.0, 0.0, 2.0, 2.0]), 1.0) == 2
    assert calibrate(np.array([[0.0, 2.0, 0.0, 2.0]]), 1.0).n0 == pytest.approx(2 * math.exp(0.5))


def test_global_significance_matches_background_only_toys_of_the_fast_scan():
    """P(max Z > u) of the Gross-Vitells formula, calibrated on half the toys at u0 = 1, against the
    fraction of the other half whose largest local Z exceeds u (flat background, 50 events / 2 MeV bin,
    Gaussian peaks of 5 MeV at steps of sigma / 2 over 1 GeV)."""
    edges = np.linspace(0.0, 1.2, 601)
    masses = np.arange(0.1, 1.1, 0.0025)
    sigmas = np.full(len(masses), 0.005)
    cal_all, z = toy_calibration(edges, np.full(600, 50.0), masses, sigmas, n_toys=160, seed=7)
    assert abs(z.mean()) < 0.05 and z.std() == pytest.approx(1.0, abs=0.05)  # Z is a unit normal per point
    cal = calibrate(z[:80])
    z_max = z[80:].max(axis=1)
    for u in (2.5, 3.0):
        frac = np.mean(z_max > u)
        err = math.sqrt(max(frac * (1 - frac), 0.02) / len(z_max))
        assert abs(global_p_value(u, cal) - frac) < 3 * err, (u, frac, global_p_value(u, cal))
    # profiling the background in the windows decorrelates neighbours: more upcrossings than Rice
    assert cal_all.n0 > rice_calibration(masses, sigmas).n0


def test_local_significance_sign_and_injected_peak():
    edges = np.linspace(0.0, 1.0, 501)
    centres = 0.5 * (edges[1:] + edges[:-1])
    rng = np.random.default_rng(3)
    signal = 30.0 * np.exp(-0.5 * ((centres - 0.5) / 0.005) ** 2)  # ~ 190 events
    w = windows(edges, rng.poisson(100.0 + signal), np.array([0.3, 0.5]), np.array([0.005, 0.005]))
    z = local_significance(w, fit_all(w))
    # below the Asimov Z with the background known exactly (profiling it costs sensitivity), well above 0
    z_known = math.sqrt(2 * np.sum((signal + 100) * np.log1p(signal / 100) - signal))
    assert 3.0 < z[1] < z_known + 1.0 and abs(z[0]) < 3.0
    dip = windows(edges, np.where(np.abs(centres - 0.3) < 0.006, 60, 100), np.array([0.3]), np.array([0.005]))
    assert local_significance(dip, fit_all(dip))[0] < -3.0


def test_hepdata_record_and_plots(tmp_path):
    table = _table()
    files = write_hepdata(table, tmp_path / "toy" / "hepdata", "BR(B -> K S) x BR(S -> x x)")
    names = {p.name for p in files}
    assert {"submission.yaml", "submission.tar.gz"} <= names and len(names) == 5
    doc = yaml.safe_load((tmp_path / "toy" / "hepdata" / "limits_k_mumu_ctau_10_cm.yaml").read_text())
    expected = doc["dependent_variables"][1]
    assert doc["independent_variables"][0]["header"]["units"] == "GeV"
    first = expected["values"][0]
    assert first["value"] == pytest.approx(1.1e-7 * 1.0, rel=1e-3)  # expected median at m = 0.1
    assert first["errors"][0]["asymerror"]["plus"] == pytest.approx(0.4 * 1.1e-7, rel=1e-3)
    assert len(doc["dependent_variables"]) == 2          # observed, expected: no toy columns, no toy band
    # a scan with toy bands (zprime): a second expected variable with its own bands, beside the Asimov one
    toys = ScanTable(table.frame.assign(**{t: 0.5 * table.frame[c] for t, c in zip(TOY_EXPECTED_COLUMNS, EXPECTED_COLUMNS)}),
                     table.metadata)
    write_hepdata(toys, tmp_path / "toys" / "hepdata", "BR(B -> K S) x BR(S -> x x)")
    doc = yaml.safe_load((tmp_path / "toys" / "hepdata" / "limits_k_mumu_ctau_10_cm.yaml").read_text())
    toy = doc["dependent_variables"][2]
    assert toy["header"]["name"].startswith("Expected (background-only toys)")
    assert toy["values"][0]["value"] == pytest.approx(0.5 * first["value"])
    assert toy["values"][0]["errors"][0]["asymerror"]["plus"] == pytest.approx(0.5 * first["errors"][0]["asymerror"]["plus"])
    assert plot_limit_curve(table.frame["mass"][:40], table.frame["observed"][:40], table.expected[:, :40],
                            tmp_path / "curve", "BR")[0].stat().st_size > 0
    assert len(plot_limit_grid(table, tmp_path / "grid", "BR", panel_of=lambda c: (0, int(c == "K_mumu")),
                               shaded={"K_ee": [(1.0, 1.2)]})) == 2
    from belle_rare.analyses.hepdata_record import with_gaps
    x, y = with_gaps(np.array([0.0, 0.1, 0.2, 1.0, 1.1]), np.arange(5.0))
    assert np.isnan(x[3]) and np.isnan(y[3]) and len(x) == 6
    # hypotheses equally spaced in M^2 (zprime's scan): the steps in M shrink 16 x from 0.5 to 8 GeV, smoothly:
    # no break (with the median spacing as yardstick the low-mass points were isolated, and their line not drawn)
    m = np.sqrt(np.linspace(0.25, 64.0, 300))
    assert len(with_gaps(m, m)[0]) == 300
    # a vetoed window in such a scan still breaks the line, once
    vetoed = m[(m < 3.0) | (m > 3.5)]
    x, _ = with_gaps(vetoed, vetoed)
    assert np.isnan(x).sum() == 1 and x[np.flatnonzero(np.isnan(x))[0] - 1] < 3.0 < 3.5 < x[np.flatnonzero(np.isnan(x))[0] + 1]


def test_search_scan_hook_replaces_the_generic_path(monkeypatch, tmp_path):
    calls = []

    class FakeSearch:
        def scan_function(self):
            return lambda *args: calls.append(args) or "done"

    monkeypatch.setattr(registry, "get_search", lambda name: FakeSearch())
    assert search_limits.run_search_limits("toy", tmp_path) == "done"
    assert calls[0][0] == "toy" and calls[0][1] == tmp_path and calls[0][3] is True
    hooked = registry.Search("x", object, tmp_path, scan="belle_rare.stats.scan_table:read_scan_table")
    assert hooked.scan_function() is read_scan_table
    assert registry.Search("y", object, tmp_path).scan_function() is None


def test_scan_search_stats_yaml_is_not_read_by_the_generic_schema(monkeypatch, tmp_path):
    from belle_rare.configs.loader import ConfigError
    from belle_rare.stats import model_config

    stats = tmp_path / "stats.yaml"
    stats.write_text("search: toy\nkind: something else\n")
    hooked = registry.Search("toy", object, tmp_path, stats_file=stats, scan="belle_rare.stats.scan_table:read_scan_table")
    monkeypatch.setattr(registry, "get_search", lambda name: hooked)
    with pytest.raises(ConfigError, match="read by its own scan"):
        model_config.load_stats_config("toy")


def test_scan_spectrum_task_matches_the_direct_calls():
    from belle_rare.stats.peak_scan import SpectrumScan, scan_spectrum, upper_limits

    edges = np.linspace(0.0, 1.0, 501)
    counts = np.random.default_rng(5).poisson(np.full(500, 40.0)).astype(float)
    masses, sigmas = np.linspace(0.2, 0.8, 30), np.full(30, 0.006)
    res = scan_spectrum(SpectrumScan(("c", 1.0), edges, counts, masses, sigmas))
    w = windows(edges, counts, masses, sigmas)
    direct = upper_limits(w)
    np.testing.assert_allclose(res.observed, direct.observed)
    np.testing.assert_allclose(res.local_significance, local_significance(w, fit_all(w)))
    assert res.key == ("c", 1.0) and res.expected.shape == (5, 30)
