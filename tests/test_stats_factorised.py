"""tau3mu's background with the BDT efficiency factorised (stats/factorised.py) beside the plain ABCD.

b_fact = (N_A + N_C) x N_B / (N_B + N_D) against b_ABCD = N_B x N_C / N_D: equal when A / C = B / D
(the independence both assume); with the BDT-pass regions empty in simulation the plain ABCD rests
on the MC bound of N_B, the factorised one spreads it over N_B + N_D.
"""

from __future__ import annotations

import json
import math

import pytest

from belle_rare.analyses.cli import main
from belle_rare.configs.loader import ConfigError
from belle_rare.stats.factorised import factorised_estimate
from belle_rare.stats.mc_bound import BoundedCount, McBound
from belle_rare.stats.model_config import DataDriven, load_stats_config, with_background_estimate
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output


def _run(tmp_path, regions: dict[str, float], w: float) -> None:
    """Asimov tau3mu output: one background dataset ``tautau`` of weight ``w`` with ``regions``
    simulated events per region (yield n w, variance n w^2), signal 50 events in SR_pass."""
    histograms = {}
    h = book(histograms, "yields", count_axis())
    set_bins(h, "sig_tau3mu", "3mu", "SR_pass", 50.0, 1.0)
    for syst in ("leptonID", "tracking", "trigger", "momentumScale", "luminosity"):
        for suffix, f in (("Up", 1.01), ("Down", 0.99)):
            set_bins(h, "sig_tau3mu", "3mu", "SR_pass", 50.0 * f, 1.0, variation=syst + suffix)
    for region, n in regions.items():
        if n > 0:
            set_bins(h, "tautau", "3mu", region, n * w, n * w * w)
    datasets = {
        "sig_tau3mu": {"kind": "signal", "process": "sig_tau3mu", "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-8, "parameters": {}},
        "tautau": {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}, "scale": w},
    }
    write_run_output(tmp_path, "tau3mu", "belle2", 424.0, datasets, histograms)


def _estimates(tmp_path, estimate: str | None = None) -> tuple[dict, dict]:
    entry = compute_search_limits("tau3mu", tmp_path, Settings(background_estimate=estimate)).document["limits"][0]
    return entry, {e["estimate"]: e for e in entry["background_estimates"]}


def test_the_yaml_uses_the_factorised_estimate_and_records_the_plain_abcd_beside_it(tmp_path):
    _run(tmp_path, {"SR_pass": 20, "SR_fail": 400, "outer_pass": 100, "outer_fail": 2000}, w=0.01)
    entry, est = _estimates(tmp_path)
    assert entry["background_estimate"] == ["factorised"]
    assert est["factorised"]["used"] and not est["transfer_factor"]["used"]
    assert entry["background_events"] == pytest.approx(est["factorised"]["value"])
    entry_plain, _ = _estimates(tmp_path, "transfer_factor")
    assert entry_plain["background_estimate"] == ["transfer_factor"]
    assert entry_plain["background_events"] == pytest.approx(est["transfer_factor"]["value"])


def test_closure_where_all_four_regions_have_statistics(tmp_path):
    # A / C = B / D = 1 / 20: both give 420 x 100 / 2100 = 400 x 100 / 2000 = 20 (x w)
    w = 0.01
    _run(tmp_path, {"SR_pass": 20, "SR_fail": 400, "outer_pass": 100, "outer_fail": 2000}, w)
    _, est = _estimates(tmp_path)
    fact, plain = est["factorised"], est["transfer_factor"]
    assert fact["value"] == pytest.approx(20 * w) and plain["value"] == pytest.approx(20 * w)
    # a fluctuation of A / C against B / D (A / C = 1 / 10): still within the combined uncertainty
    _run(tmp_path / "fluct", {"SR_pass": 40, "SR_fail": 400, "outer_pass": 100, "outer_fail": 2000}, w)
    _, est = _estimates(tmp_path / "fluct")
    fact, plain = est["factorised"], est["transfer_factor"]
    assert fact["value"] == pytest.approx(440 * 100 / 2100 * w) and plain["value"] == pytest.approx(20 * w)
    assert abs(fact["value"] - plain["value"]) < math.hypot(fact["uncertainty"], plain["uncertainty"])
    assert not fact["from_mc_bound"] and not plain["from_mc_bound"]


def test_empty_pass_regions_give_a_finite_estimate_below_the_bound_based_abcd(tmp_path):
    w = 2.0
    _run(tmp_path, {"SR_fail": 30, "outer_fail": 600}, w)
    entry, est = _estimates(tmp_path)
    fact, plain = est["factorised"], est["transfer_factor"]
    # plain: N_B = bound w, x C / D; factorised: (C) x w / (w + D)
    assert plain["value"] == pytest.approx(w * 30 / 600)
    assert fact["value"] == pytest.approx(30 * w * w / (w + 600 * w))
    assert math.isfinite(fact["value"]) and 0 < fact["value"] < plain["value"]
    assert fact["from_mc_bound"] and entry["background_from_mc_bound"]
    assert [r["estimate"] for r in entry["mc_bound"]] == ["efficiency numerator (MC, Asimov)"]
    # twice the control statistics (N_D doubled) halves what the bound contributes
    _run(tmp_path / "loose", {"SR_fail": 30, "outer_fail": 1200}, w)
    _, loose = _estimates(tmp_path / "loose")
    assert loose["factorised"]["value"] < 0.51 * fact["value"]


def test_uncertainty_by_hand():
    # N_before = 100 (simulated, variance 25, plus its Poisson 1 / N); P = 4 +- 2, F = 16 +- 4
    est = factorised_estimate(BoundedCount(100.0, 25.0, None), BoundedCount(4.0, 4.0, None), BoundedCount(16.0, 16.0, None), True)
    assert est.efficiency == pytest.approx(0.2) and est.value == pytest.approx(20.0)
    # var(eps) = (F^2 var P + P^2 var F) / (P + F)^4 = (256 x 4 + 16 x 16) / 20^4 = 1280 / 160000
    assert est.rel_efficiency * est.efficiency == pytest.approx(math.sqrt(1280 / 160000))
    assert est.rel_before == pytest.approx(math.sqrt(1 / 100 + 25 / 100**2))
    assert est.uncertainty == pytest.approx(20.0 * math.sqrt(0.01 + 0.0025 + 1280 / 160000 / 0.04))
    # P empty: the bound w = 3 (+- 3) is the numerator; eps = 3 / 19 with (F / (P + F)) x 100 %
    empty = factorised_estimate(BoundedCount(100.0, 25.0, None), BoundedCount(0.0, 0.0, McBound("B", {"tautau": 3.0})),
                                BoundedCount(16.0, 16.0, None), False)
    assert empty.efficiency == pytest.approx(3 / 19) and empty.from_mc_bound
    assert empty.rel_efficiency == pytest.approx(16 / 19 * math.sqrt(1 + 1 / 16))
    assert empty.rel_before == pytest.approx(0.05)  # data-like: variance / N^2 only


def test_workspace_carries_the_two_factors_as_constraints(tmp_path):
    w = 0.5
    _run(tmp_path, {"SR_pass": 2, "SR_fail": 98, "outer_pass": 10, "outer_fail": 390}, w)
    result = compute_search_limits("tau3mu", tmp_path)
    bkg = next(s for s in result.workspaces["workspace.json"]["channels"][0]["samples"] if s["name"] == "background")
    b = 100 * w * 10 / 400
    assert bkg["data"][0] == pytest.approx(b)
    mods = {m["name"]: m for m in bkg["modifiers"]}
    # before: Poisson 1 / (100 w) plus the simulation's variance 100 w^2 / (100 w)^2
    assert mods["before_cut_3mu"]["data"][0] == pytest.approx(b * math.sqrt(1 / (100 * w) + 1 / 100))
    rel_eps = 390 / 400 * math.sqrt(1 / 10 + 1 / 390)
    assert mods["cut_efficiency_3mu"]["data"]["hi"] == pytest.approx(1 + rel_eps)


def test_a_factorised_estimate_needs_its_regions_and_the_switch_needs_an_offer():
    with pytest.raises(ValueError, match="needs a 'factorised' block"):
        DataDriven(sideband_region="B", transfer_factor={"value": 1.0}, estimate="factorised")
    with pytest.raises(ValueError, match="must not share"):
        DataDriven(sideband_region="B", transfer_factor={"value": 1.0},
                   factorised={"before_regions": ["A"], "pass_regions": ["B"], "fail_regions": ["B"]})
    config = load_stats_config("tau3mu")
    plain = with_background_estimate(config, "transfer_factor")
    assert plain.channels[0].samples[1].data_driven.estimate == "transfer_factor"
    assert config.channels[0].samples[1].data_driven.estimate == "factorised"  # the original is untouched
    with pytest.raises(ConfigError, match="offers the estimate 'factorised'"):
        with_background_estimate(load_stats_config("taulphi"), "factorised")


def test_the_command_line_chooses_the_estimate(tmp_path, capsys):
    _run(tmp_path, {"SR_pass": 2, "SR_fail": 98, "outer_pass": 10, "outer_fail": 390}, w=0.5)
    for estimate, b in (("transfer_factor", 10 * 0.5 * 98 / 390), ("factorised", 100 * 0.5 * 10 / 400)):
        assert main(["limit", "tau3mu", "--results", str(tmp_path), "--no-plots", "--background-estimate", estimate]) == 0
        entry = json.loads((tmp_path / "tau3mu" / "limits.json").read_text())["limits"][0]
        assert entry["background_estimate"] == [estimate] and entry["background_events"] == pytest.approx(b)
    assert main(["limit", "taulphi", "--results", str(tmp_path), "--background-estimate", "factorised"]) == 2
    capsys.readouterr()
