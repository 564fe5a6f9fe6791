"""tau3mu's background with the BDT efficiency factorised (stats/factorised.py) beside the plain ABCD.

b_fact = (N_A + N_C) x N_B / (N_B + N_D) against b_ABCD = N_B x N_C / N_D: equal when A / C = B / D
(the independence both assume); with the BDT-pass regions empty in simulation the plain ABCD rests
on the MC bound of N_B, the factorised one spreads it over N_B + N_D. N before the BDT either counted
in the ellipse (``before_from: ellipse``, A + C) or from the whole window scaled by the area
fraction (``window_area``, (A + B + C + D) x A_SR / A_window, a flat background).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from belle_rare.analyses.cli import main
from belle_rare.configs.loader import ConfigError
from belle_rare.processors.registry import get_search
from belle_rare.processors.tau3mu import sr_fraction
from belle_rare.stats.factorised import factorised_estimate
from belle_rare.stats.mc_bound import BoundedCount, McBound
from belle_rare.stats.model_config import DataDriven, StatsConfig, load_stats_config, with_background_estimate
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output
from belle_rare.simulation.production import gamma_star_share


# the processor's area of the 5 sigma ellipse over the 20 sigma window, (5 / 20)^2
AREA = 1 / 16


def _run(tmp_path, regions: dict[str, float], w: float, more: dict[str, tuple[float, dict[str, float]]] | None = None) -> None:
    """Asimov tau3mu output: one background dataset ``tautau`` of weight ``w`` with ``regions``
    simulated events per region (yield n w, variance n w^2), signal 50 events in SR_pass; ``more``:
    further background datasets, name -> (weight, regions)."""
    histograms = {}
    h = book(histograms, "yields", count_axis())
    set_bins(h, "sig_tau3mu", "3mu", "SR_pass", 50.0, 1.0)
    for syst in ("leptonID", "tracking", "trigger", "momentumScale", "luminosity"):
        for suffix, f in (("Up", 1.01), ("Down", 0.99)):
            set_bins(h, "sig_tau3mu", "3mu", "SR_pass", 50.0 * f, 1.0, variation=syst + suffix)
    datasets = {
        "sig_tau3mu": {"kind": "signal", "process": "sig_tau3mu", "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-8 * gamma_star_share("sig_tau3mu", "belle2"), "parameters": {}},
    }
    for name, (wd, counts) in {"tautau": (w, regions), **(more or {})}.items():
        for region, n in counts.items():
            if n > 0:
                set_bins(h, name, "3mu", region, n * wd, n * wd * wd)
        datasets[name] = {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}, "scale": wd}
    write_run_output(tmp_path, "tau3mu", "belle2", 424.0, datasets, histograms, {"sr_area_fraction": {"3mu": AREA}})


def _before_from(mode: str | None, plain_min_events: float | None = None, per_dataset: bool = False) -> StatsConfig:
    """The tau3mu stats model with N before the BDT from ``mode`` ("ellipse" or "window_area"; None: the YAML's)
    and ``plain_min_events`` (None: every dataset factorised, whatever the YAML says: the factorisation itself);
    ``per_dataset``: each dataset its own pass fraction (taulphi's form) instead of one pooled."""
    config = load_stats_config("tau3mu")
    channel = config.channels[0]
    samples = []
    for sample in channel.samples:
        dd = sample.data_driven
        if dd is not None:
            update = {"plain_min_events": plain_min_events, "per_dataset": per_dataset, **({"before_from": mode} if mode else {})}
            dd = dd.model_copy(update={"factorised": dd.factorised.model_copy(update=update)})
        samples.append(sample.model_copy(update={"data_driven": dd}))
    return config.model_copy(update={"channels": [channel.model_copy(update={"samples": samples})]})


def _estimates(tmp_path, estimate: str | None = None, before_from: str | None = "ellipse",
               plain_min_events: float | None = None, per_dataset: bool = False) -> tuple[dict, dict]:
    """limits.json's entry and its estimates by name; ``before_from`` None: the YAML's choice."""
    config = _before_from(before_from, plain_min_events, per_dataset)
    entry = compute_search_limits("tau3mu", tmp_path, Settings(background_estimate=estimate), config).document["limits"][0]
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
    # plain: N_B = bound w, x C / D; factorised: C x eps with eps the Beta(1, 601) posterior mean
    # 1 / 602 of 600 events all failing (stats/mc_bound.py fill_empty_fraction), no bound needed
    assert plain["value"] == pytest.approx(w * 30 / 600)
    assert fact["value"] == pytest.approx(30 * w / 602)
    assert math.isfinite(fact["value"]) and 0 < fact["value"] < plain["value"]
    assert not fact["from_mc_bound"] and plain["from_mc_bound"]
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
    # the simulated statistics alone: the same without the data count's 1 / N
    assert est.rel_simulation == pytest.approx(math.sqrt(0.0025 + 1280 / 160000 / 0.04))
    assert est.as_dict()["simulation_rel_uncertainty"] == pytest.approx(est.rel_simulation)
    # P empty: the bound w = 3 (+- 3) is the numerator; eps = 3 / 19 with (F / (P + F)) x 100 %
    empty = factorised_estimate(BoundedCount(100.0, 25.0, None), BoundedCount(0.0, 0.0, McBound("B", {"tautau": 3.0})),
                                BoundedCount(16.0, 16.0, None), False)
    assert empty.efficiency == pytest.approx(3 / 19) and empty.from_mc_bound
    assert empty.rel_efficiency == pytest.approx(16 / 19 * math.sqrt(1 + 1 / 16))
    assert empty.rel_before == pytest.approx(0.05)  # data-like: variance / N^2 only


def test_workspace_carries_the_two_factors_as_constraints(tmp_path):
    w = 0.5
    _run(tmp_path, {"SR_pass": 2, "SR_fail": 98, "outer_pass": 10, "outer_fail": 390}, w)
    result = compute_search_limits("tau3mu", tmp_path, config=_before_from("ellipse"))
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
    with pytest.raises(ConfigError, match="offers the estimate 'sideband_fit'"):
        with_background_estimate(load_stats_config("taulphi"), "sideband_fit")


def test_the_command_line_chooses_the_estimate(tmp_path, capsys):
    _run(tmp_path, {"SR_pass": 2, "SR_fail": 98, "outer_pass": 10, "outer_fail": 390}, w=0.5)
    # the YAML's factorised estimate takes N before the BDT from the window: 500 x 0.5 x 1 / 16
    for estimate, b in (("transfer_factor", 10 * 0.5 * 98 / 390), ("factorised", 500 * 0.5 * AREA * 10 / 400)):
        assert main(["limit", "tau3mu", "--results", str(tmp_path), "--no-plots", "--background-estimate", estimate]) == 0
        entry = json.loads((tmp_path / "tau3mu" / "limits.json").read_text())["limits"][0]
        assert entry["background_estimate"] == [estimate] and entry["background_events"] == pytest.approx(b)
    assert main(["limit", "taulphi", "--results", str(tmp_path), "--background-estimate", "sideband_fit"]) == 2
    capsys.readouterr()


# ------------------------------------------------------------------ N before the BDT from the window area
def test_the_yaml_takes_n_before_from_the_window_area():
    fz = load_stats_config("tau3mu").channels[0].samples[1].data_driven.factorised
    assert fz.before_from == "window_area"
    assert set(fz.window_regions) == {"SR_pass", "SR_fail", "outer_pass", "outer_fail"}


def test_the_area_fraction_is_the_ellipse_over_the_window_of_the_processor():
    # (5 / 20)^2 analytically (the distance is a norm in rescaled rotated axes: areas scale as d^2
    # in each quadrant whatever the four widths); checked by throwing points flat in (M, dE)
    search = get_search("tau3mu")
    config = search.load_config()
    assert sr_fraction(config, "3mu") == pytest.approx(AREA)
    ell = config.signal_region
    rng = np.random.default_rng(1)
    m = rng.uniform(ell.m_mean - 0.2, ell.m_mean + 0.2, 2_000_000)
    de = rng.uniform(ell.de_mean - 0.8, ell.de_mean + 0.8, 2_000_000)
    d = ell.distance(m, de)
    assert (d < 20).sum() < 0.9 * len(d)  # the box holds the whole window
    n_win, n_sr = (d < ell.outer_n_sigma).sum(), (d < ell.n_sigma).sum()
    assert n_sr / n_win == pytest.approx(AREA, abs=4 * math.sqrt(AREA * (1 - AREA) / n_win))


def test_window_area_closes_on_a_flat_background(tmp_path):
    # flat in (M, dE) with a BDT pass fraction of 5 % everywhere: the ellipse holds 1 / 16 of the window
    w = 0.01
    _run(tmp_path, {"SR_pass": 10, "SR_fail": 190, "outer_pass": 150, "outer_fail": 2850}, w)
    _, ell = _estimates(tmp_path, before_from="ellipse")
    _, win = _estimates(tmp_path, before_from="window_area")
    ell, win = ell["factorised"], win["factorised"]
    assert ell["value"] == pytest.approx(200 * w * 0.05) and win["value"] == pytest.approx(ell["value"])
    assert win["before_from"] == "window_area" and win["area_fraction"] == pytest.approx(AREA)
    assert win["n_before_counted"] == pytest.approx(3200 * w) and win["n_before"] == pytest.approx(200 * w)
    # 16 x the events: N before the BDT is 4 x more precise (Poisson 1 / N and simulation w^2 / N w^2)
    assert win["n_before_rel_uncertainty"] == pytest.approx(ell["n_before_rel_uncertainty"] / 4)
    # a pseudo-sample drawn flat (Poisson, seeded): the two agree within their uncertainties
    rng = np.random.default_rng(7)
    n = rng.poisson(3200)
    r = 20 * np.sqrt(rng.uniform(size=n))  # distance to the peak, flat in area
    passed = rng.uniform(size=n) < 0.05
    sr = r < 5
    counts = {"SR_pass": int(np.sum(sr & passed)), "SR_fail": int(np.sum(sr & ~passed)),
              "outer_pass": int(np.sum(~sr & passed)), "outer_fail": int(np.sum(~sr & ~passed))}
    _run(tmp_path / "toy", counts, 1.0)  # w = 1: the yields are the counts
    _, ell = _estimates(tmp_path / "toy", before_from="ellipse")
    _, win = _estimates(tmp_path / "toy", before_from="window_area")
    ell, win = ell["factorised"], win["factorised"]
    # the window contains the ellipse: the uncorrelated part of the difference is the ellipse's N
    assert abs(win["value"] - ell["value"]) < 2 * ell["value"] * ell["n_before_rel_uncertainty"]
    assert abs(win["value"] - 3200 * AREA * 0.05) < 2 * win["uncertainty"]


def test_an_empty_ellipse_with_a_filled_window_gives_a_counted_estimate_below_the_bound(tmp_path):
    # tautau (w = 0.01) fills the window but not the ellipse; uds (w = 2) is empty everywhere
    w, w_uds = 0.01, 2.0
    _run(tmp_path, {"outer_pass": 2, "outer_fail": 38}, w, more={"uds": (w_uds, {})})
    _, ell = _estimates(tmp_path, before_from="ellipse")
    entry, win = _estimates(tmp_path, before_from="window_area")
    ell, win = ell["factorised"], win["factorised"]
    eps = (2 * w + w_uds) / (2 * w + w_uds + 38 * w + w_uds)  # uds's bound in pass and fail alike
    # ellipse: both datasets' bounds, w + w_uds; window: tautau's 40 events and uds's bound, x 1 / 16
    assert ell["n_before"] == pytest.approx(w + w_uds) and ell["value"] == pytest.approx((w + w_uds) * eps)
    assert win["n_before"] == pytest.approx((40 * w + w_uds) * AREA)
    assert win["value"] == pytest.approx((40 * w + w_uds) * AREA * eps)
    assert math.isfinite(win["value"]) and win["value"] < 0.2 * ell["value"]
    assert entry["background_estimate"] == ["factorised"]
    assert "window count before the cut (MC, Asimov)" in [r["estimate"] for r in entry["mc_bound"]]
    # without the uds bound the window count alone: 40 simulated events, no bound before the BDT
    _run(tmp_path / "tt", {"outer_pass": 2, "outer_fail": 38}, w)
    entry, win = _estimates(tmp_path / "tt", before_from="window_area")
    win = win["factorised"]
    assert win["n_before"] == pytest.approx(40 * w * AREA)
    assert win["n_before_rel_uncertainty"] == pytest.approx(math.sqrt(1 / (40 * w) + 1 / 40))
    assert not entry["background_from_mc_bound"] and not win["from_mc_bound"]


def test_window_area_needs_the_window_and_falls_back_to_the_ellipse_without_the_recorded_area(tmp_path):
    with pytest.raises(ValueError, match="needs 'window_regions'"):
        DataDriven(sideband_region="B", transfer_factor={"value": 1.0}, estimate="factorised",
                   factorised={"before_regions": ["A"], "pass_regions": ["B"], "fail_regions": ["D"], "before_from": "window_area"})
    with pytest.raises(ValueError, match="must contain the 'before_regions'"):
        DataDriven(sideband_region="B", transfer_factor={"value": 1.0}, estimate="factorised",
                   factorised={"before_regions": ["A"], "pass_regions": ["B"], "fail_regions": ["D"], "window_regions": ["B", "D"]})
    _run(tmp_path, {"SR_fail": 30, "outer_pass": 3, "outer_fail": 600}, 1.0)
    meta = tmp_path / "tau3mu" / "metadata.json"
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "sr_area_fraction"}))
    # an older run output: N before the BDT counted in the ellipse, and limits.json says so
    document = compute_search_limits("tau3mu", tmp_path, config=_before_from("window_area")).document
    est = {e["estimate"]: e for e in document["limits"][0]["background_estimates"]}
    assert est["factorised"]["before_from"] == "ellipse" and est["factorised"]["n_before"] == pytest.approx(30.0)
    assert any("no sr_area_fraction" in n for n in document["notes"])


@pytest.mark.parametrize("per_dataset", [False, True])
def test_a_dataset_with_statistics_in_the_signal_region_takes_its_plain_count(tmp_path, per_dataset):
    """plain_min_events: tautau (40 simulated events in A, w 0.01) is counted there; uds (2 in A) stays factorised
    (pooled over the datasets without plain statistics, or per dataset: one dataset, the same); the record keeps
    tautau's own factorisation and its pull."""
    w, wu = 0.01, 0.5
    tautau = {"SR_pass": 40, "SR_fail": 400, "outer_pass": 100, "outer_fail": 2000}   # A / C = 1 / 10, B / D = 1 / 20
    uds = {"SR_pass": 2, "SR_fail": 30, "outer_pass": 10, "outer_fail": 300}
    _run(tmp_path, tautau, w, more={"uds": (wu, uds)})
    _, est = _estimates(tmp_path, before_from="window_area", plain_min_events=10, per_dataset=per_dataset)
    fact = est["factorised"]
    uds_window = sum(uds.values()) * wu
    uds_eps = uds["outer_pass"] / (uds["outer_pass"] + uds["outer_fail"])
    assert fact["value"] == pytest.approx(40 * w + uds_window * AREA * uds_eps)
    closure = fact["plain_count_datasets"]
    assert set(closure) == {"tautau"}
    t = closure["tautau"]
    assert t["plain"] == pytest.approx(40 * w) and t["effective_events"] == pytest.approx(40)
    own = sum(tautau.values()) * w * AREA * tautau["outer_pass"] / (tautau["outer_pass"] + tautau["outer_fail"])
    assert t["factorised"] == pytest.approx(own)
    assert t["pull"] == pytest.approx((own - 40 * w) / math.hypot(t["factorised_uncertainty"], t["plain_uncertainty"]))
    # the uncertainty by hand: the plain count's sqrt(40) w; the pooled uds part's window count (the Poisson term of
    # the data count it stands for, uds_window events, on its own share of b; and its simulated variance, 1 / n) and
    # its pass fraction
    uds_part = uds_window * AREA * uds_eps
    n_uds = sum(uds.values())
    rel_eps = (1 - uds_eps) * math.sqrt(1 / uds["outer_pass"] + 1 / uds["outer_fail"])
    var = (math.sqrt(40) * w) ** 2 + uds_part**2 * (1 / uds_window + 1 / n_uds) + (uds_part * rel_eps) ** 2
    assert fact["uncertainty"] == pytest.approx(math.sqrt(var), rel=1e-9)
    # without the option every dataset is factorised (the shipped YAML's behaviour below 10 events)
    _, before = _estimates(tmp_path, before_from="window_area", per_dataset=per_dataset)
    assert "plain_count_datasets" not in before["factorised"]


def test_summed_estimate_with_plain_parts_by_hand():
    from belle_rare.stats.factorised import summed_estimate

    parts = {"a": (BoundedCount(200.0, 200.0, None), BoundedCount(10.0, 10.0, None), BoundedCount(90.0, 90.0, None))}
    plain = {"b": BoundedCount(3.0, 0.25, None)}
    est = summed_estimate(parts, poisson_before=True, before_scale=0.5, plain=plain)
    fa = 200 * 0.5 * 0.1
    assert est.value == pytest.approx(fa + 3.0)
    assert est.n_before == pytest.approx(200.0)   # the data count the factorised part stands for
    rel_eps_a = 0.9 * math.sqrt(1 / 10 + 1 / 90)
    var = (fa * math.sqrt(1 / 200)) ** 2 + fa**2 / 200 + 0.25 + (fa * rel_eps_a) ** 2
    assert est.uncertainty == pytest.approx(math.sqrt(var), rel=1e-9)
    assert est.as_dict()["per_dataset"]["b"]["plain_count"] is True
    # only plain parts: no Poisson term at all
    only = summed_estimate({}, poisson_before=True, plain=plain)
    assert only.value == pytest.approx(3.0) and only.uncertainty == pytest.approx(0.5)
