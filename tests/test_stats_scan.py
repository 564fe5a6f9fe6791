"""Scans over many hypotheses: the vectorised fast path against pyhf, the parallel driver, Brazil plots."""

from __future__ import annotations

import json

import hist
import numpy as np
import pytest

from belle_rare.stats.counting import CountingChannel, counting_workspace, one_bin_summary
from belle_rare.stats.model_config import StatsConfig
from belle_rare.stats.scan import ScanTask, run_scan
from belle_rare.stats.search_limits import Settings, run_search_limits
from belle_rare.stats.synthetic import book, set_bins, write_run_output


def _tasks(points):
    return [
        ScanTask({"i": i}, counting_workspace([CountingChannel("sr", n, b, db, s)], poi="mu", measurement="m"), "m")
        for i, (n, b, db, s) in enumerate(points)
    ]


POINTS = [(55, 50.0, 7.0, 5.0), (14, 12.0, 2.0, 1.0), (30, 25.0, 3.0, 2.0), (20, 22.0, 4.0, 0.5)]


def test_one_bin_summary_reads_the_counting_numbers_back():
    spec = counting_workspace([CountingChannel("sr", 7, 5.0, 1.5, 2.0, 0.1, background_model="normsys")])
    item = one_bin_summary(spec, "counting")
    assert (item.n, item.b, item.s) == (7, 5.0, 2.0)
    assert item.b_unc == pytest.approx(1.5)
    assert item.s_rel_unc == pytest.approx(0.1)


def test_fast_scan_agrees_with_full_pyhf_limits():
    tasks = _tasks(POINTS)
    fast = run_scan(tasks, cl=0.95, method="fast", calculator="asymptotics")
    full = run_scan(tasks, cl=0.95, method="pyhf", calculator="asymptotics")
    for f, p in zip(fast, full):
        assert f.method.startswith("fast asymptotic") and p.method == "pyhf asymptotics"
        assert f.observed == pytest.approx(p.observed, rel=1e-4)
        assert np.allclose(f.expected, p.expected, rtol=1e-4)


def test_small_background_uses_exact_poisson_and_parallel_matches_serial():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.2, 8.0, 500)  # > 200 per worker: split into two chunks on two processes
    points = [(int(rng.poisson(x)), float(x), 0.0, 1.0) for x in b]
    serial = run_scan(_tasks(points), cl=0.90)
    parallel = run_scan(_tasks(points), cl=0.90, workers=2)
    assert all(r.method == "fast exact Poisson CLs" for r in serial)
    assert [r.observed for r in serial] == pytest.approx([r.observed for r in parallel], rel=1e-12)
    n0 = [r.observed for r, p in zip(serial, points) if p[0] == 0]
    assert n0 and np.allclose(n0, np.log(10.0), rtol=1e-8)


@pytest.mark.slow
def test_dask_executor():
    tasks = _tasks(POINTS)
    local = run_scan(tasks, cl=0.95, calculator="asymptotics")
    dask = run_scan(tasks, cl=0.95, calculator="asymptotics", executor="dask", workers=2)
    assert [r.observed for r in local] == pytest.approx([r.observed for r in dask], rel=1e-12)


MASSES = (0.5, 1.0, 1.5)
CTAUS = (1.0, 10.0)


def _scan_config() -> StatsConfig:
    channel = lambda name: {  # noqa: E731
        "name": name,
        "histogram": "mred",
        "region": "SR",
        "counting": True,
        "window": {"axis": "mred", "centre": "mass", "half_width": 0.1},
        "samples": [
            {"name": "signal", "signal": "scalar", "datasets": {"kind": "signal"}, "modifiers": [{"type": "lumi"}]},
            {"name": "background", "datasets": {"kind": "background"}, "modifiers": [{"type": "staterror"}]},
        ],
    }
    return StatsConfig.model_validate(
        {
            "search": "bkscalar",
            "experiment": "belle2",
            "cl": 0.95,
            "luminosity_uncertainty": 0.02,
            "signals": {
                "scalar": {
                    "label": "B -> K S",
                    "normalisation": {"quantity": "branching_fraction", "parents": "b_pairs", "n_bb_key": "bkscalar", "b_fraction": 0.514},
                    "scan": ["mass", "ctau"],
                }
            },
            "channels": [channel("ee"), channel("mumu")],
            "scan": {"workers": 1},
        }
    )


def _scan_output(tmp_path):
    histograms = {}  # every hypothesis a dataset: one histogram each, no dense dataset axis
    h = book(histograms, "mred", hist.axis.Regular(20, 0.0, 2.0, name="mred"))
    datasets = {"bkg": {"kind": "background"}, "data": {"kind": "data"}}
    for ch in ("ee", "mumu"):
        set_bins(h, "bkg", ch, "SR", 3.0, 0.09)  # 3 per bin: 6 events in each +-0.1 window
        set_bins(h, "data", ch, "SR", 3.0)
        for m in MASSES:
            for ctau in CTAUS:
                name = f"scalar_m{m}_ctau{ctau}"
                datasets[name] = {"kind": "signal", "branching_fraction": 1e-6, "hypothesis": {"mass": m, "ctau": ctau}}
                values = np.where(np.abs(h.template.axes["mred"].centers - m) < 0.1, 2.0 / ctau, 0.0)
                set_bins(h, name, ch, "SR", values, 1e-4 * values)
    write_run_output(tmp_path, "bkscalar", "belle2", 189.0, datasets, histograms)


def test_search_scan_per_hypothesis_with_brazil_plots(tmp_path):
    _scan_output(tmp_path)
    result = run_search_limits("bkscalar", tmp_path, Settings(), config=_scan_config())
    doc = json.loads((tmp_path / "bkscalar" / "limits.json").read_text())
    entries = doc["limits"]
    assert len(entries) == len(MASSES) * len(CTAUS) * 3  # ee, mumu, combined per hypothesis
    per_channel = [e for e in entries if e["limit"] == "ee"]
    assert {e["method"] for e in per_channel} == {"fast exact Poisson CLs"}  # b = 6 < 10
    combined = [e for e in entries if e["limit"] == "combined"]
    assert {e["method"] for e in combined} == {"pyhf asymptotics"}  # two bins, b = 12
    for e in entries:
        assert e["physics"]["observed"] == pytest.approx(e["poi_limit"]["observed"] * 1e-6)
        assert e["background_events"] == pytest.approx(6.0 if e["limit"] != "combined" else 12.0)
    # longer lifetime -> fewer signal events in the window -> weaker limit
    by_ctau = {e["hypothesis"]["ctau"]: e["physics"]["observed"] for e in per_channel if e["hypothesis"]["mass"] == 1.0}
    assert by_ctau[10.0] > by_ctau[1.0]
    # efficiency: 2 signal events per bin x 2 bins for ctau 1 out of 2 N_BB f BR_ref decays
    n_bb = 198.0e6
    e = next(e for e in per_channel if e["hypothesis"] == {"mass": 1.0, "ctau": 1.0})
    assert e["normalisation"]["efficiency"] == pytest.approx(4.0 / (2 * n_bb * 0.514 * 1e-6))
    plots = sorted(p.name for p in (tmp_path / "bkscalar" / "plots").iterdir())
    assert "brazil_scalar_combined_ctau1.png" in plots and "brazil_scalar_ee_ctau10.pdf" in plots
    assert result.document["limits"] == entries
    spec = json.loads((tmp_path / "bkscalar" / "workspace.json").read_text())
    lumi = next(p for p in spec["measurements"][0]["config"]["parameters"] if p["name"] == "lumi")
    assert lumi["sigmas"] == [0.02]
