"""The Monte Carlo statistical bound (stats/mc_bound.py): an empty simulated region is never b = 0.

Synthetic run output in the processors' layout; the weight per simulated event is the metadata
``scale`` the runner writes (analyses/runner.py). Expectations from the Gamma(n + 1) posterior of
a Poisson count with n = 0: each empty dataset contributes b_d = w_d with sigma_d = w_d.
"""

from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.mc_bound import McBound, bounded_count, mc_bound, weight_per_event
from belle_rare.stats.model_config import load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits, run_search_limits
from belle_rare.stats.summary import MC_BOUND_LEGEND, MC_BOUND_MARK, limit_all, print_summary
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output
from belle_rare.stats.workspace import build_workspace, hypotheses
from belle_rare.simulation.production import gamma_star_share

BR_REF = 1.0e-7
# tau3mu's paper ABCD (the YAML uses the factorised estimate; tests/test_stats_factorised.py covers it)
PLAIN_ABCD = Settings(background_estimate="transfer_factor")


def _bkg(scale: float | None) -> dict:
    info = {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}}
    if scale is not None:
        info["scale"] = scale
    return info


def _signal(process: str) -> dict:
    return {"kind": "signal", "process": process, "cross_section_nb": 2 * SIGMA_TAUTAU_NB * BR_REF * gamma_star_share(process, "belle2"), "parameters": {},
            "scale": 1e-3}


def taulgamma_output(results_dir, weights: dict[str, float | None], filled: dict[str, dict[str, float]]):
    """taulgamma counting output, Asimov: background datasets ``weights`` (name -> scale or None),
    ``filled[channel][dataset]`` = simulated events in the ellipse (yield n w, variance n w^2)."""
    histograms = {}
    h = book(histograms, "yields", count_axis())
    datasets = {name: _bkg(w) for name, w in weights.items()}
    for ch in ("mugamma", "egamma"):
        datasets[f"sig_tau{ch}"] = _signal(f"sig_tau{ch}")
        set_bins(h, f"sig_tau{ch}", ch, "signal", 20.0, 0.04)
        for name, w in weights.items():
            set_bins(h, name, ch, "outside", 50.0 * (w or 1.0), 50.0 * (w or 1.0) ** 2)  # every dataset fills somewhere
            n = filled.get(ch, {}).get(name, 0.0)
            if n > 0:
                set_bins(h, name, ch, "signal", n * w, n * w * w)
    return write_run_output(results_dir, "taulgamma", "belle", 988.0, datasets, histograms)


def _built(results_dir, signal="taumugamma", channel="mugamma"):
    config = load_stats_config("taulgamma")
    run = load_run_output(results_dir, "taulgamma")
    return build_workspace(config, run, {signal: hypotheses(config, run, signal)[0]}, [channel])


def _samples(built):
    return {s["name"]: s for s in built.spec["channels"][0]["samples"]}


def test_an_empty_dataset_contributes_its_weight_with_full_uncertainty():
    meta = {"tautau": {"scale": 0.5}, "uds": {"scale": 2.0}, "hand_made": {}}
    bound = mc_bound("signal", {"tautau": 0.0, "uds": 0.0, "hand_made": 0.0}, meta)
    assert bound.weights == {"tautau": 0.5, "uds": 2.0}  # unknown weight: no bound
    assert bound.mean == pytest.approx(2.5) and bound.uncertainty == pytest.approx(math.sqrt(4.25))
    assert bound.effective_events == pytest.approx(2.5**2 / 4.25) and bound.largest_weight == 2.0
    assert McBound("x", {"a": 3.0}).effective_events == pytest.approx(1.0)  # one dataset: one pseudo-event
    assert mc_bound("signal", {"tautau": 1.5, "uds": 4.0}, meta) is None  # nothing empty
    c = bounded_count("signal", {"tautau": (1.5, 0.75), "uds": (0.0, 0.0)}, meta)
    assert c.value == pytest.approx(1.5 + 2.0) and c.variance == pytest.approx(0.75 + 4.0)
    assert weight_per_event({"scale": 3.0, "max_event_weight": 7.0}) == 7.0
    assert weight_per_event({"kind": "data", "scale": 1.0}) == 1.0


def test_empty_region_gets_the_bound_sample_with_a_poisson_constraint(tmp_path):
    taulgamma_output(tmp_path, {"tautau": 0.5, "uds": 2.0}, {"egamma": {"tautau": 6.0}})
    built = _built(tmp_path)
    samples = _samples(built)
    assert "background" not in samples  # no simulated event: the nominal sample is empty
    bound = samples["background_mc_bound"]
    assert bound["data"] == pytest.approx([2.5])  # sum_d w_d
    (mod,) = bound["modifiers"]
    assert mod["type"] == "shapesys" and mod["data"] == pytest.approx([math.sqrt(0.5**2 + 2.0**2)])
    assert built.background_events["mugamma"] == pytest.approx(2.5)
    assert built.observed_events["mugamma"] == pytest.approx(2.5)  # Asimov
    (record,) = built.mc_bounds["mugamma"]
    assert record["weight_per_event"] == {"tautau": 0.5, "uds": 2.0} and record["region"] == "signal"
    # egamma: tautau's 6 events keep their yield and staterror; only the empty uds adds its weight
    eg = _samples(_built(tmp_path, "tauegamma", "egamma"))
    assert eg["background"]["data"] == pytest.approx([3.0])
    staterror = next(m for m in eg["background"]["modifiers"] if m["type"] == "staterror")
    assert staterror["data"] == pytest.approx([math.sqrt(6 * 0.25)])
    assert eg["background_mc_bound"]["data"] == pytest.approx([2.0])


def test_a_region_every_dataset_filled_is_unchanged(tmp_path):
    filled = {"mugamma": {"tautau": 6.0, "uds": 2.0}}
    taulgamma_output(tmp_path / "w", {"tautau": 0.5, "uds": 2.0}, filled)
    with_weights = _built(tmp_path / "w")
    assert not with_weights.mc_bounds
    assert set(_samples(with_weights)) == {"signal", "background"}
    assert _samples(with_weights)["background"]["data"] == pytest.approx([3.0 + 4.0])


def _expected_limit(results_dir, weight: float | None) -> dict:
    taulgamma_output(results_dir, {"tautau": weight, "uds": weight}, {})
    doc = compute_search_limits("taulgamma", results_dir).document
    return next(e for e in doc["limits"] if e["limit"] == "mugamma")


def test_the_bound_weakens_the_limit_and_vanishes_with_the_weight(tmp_path):
    floor = _expected_limit(tmp_path / "none", None)  # unknown weight: the old b = 0
    assert floor["background_events"] == 0.0 and not floor["background_from_mc_bound"]
    big = _expected_limit(tmp_path / "big", 1.0)
    small = _expected_limit(tmp_path / "small", 1e-4)
    assert big["background_events"] == pytest.approx(2.0) and small["background_events"] == pytest.approx(2e-4)
    for e in (big, small):
        assert e["background_from_mc_bound"] and e["method"] == "exact Poisson CLs"
    # b = 0: s90 = 2.30 events; b = 2 +- 1.4 (Asimov n = 2) is clearly weaker; w -> 0 gives the floor back
    assert floor["signal_events"]["expected"][2] == pytest.approx(-math.log(0.10), rel=1e-3)
    assert big["physics"]["expected"][2] > 1.3 * floor["physics"]["expected"][2]
    assert small["physics"]["expected"][2] == pytest.approx(floor["physics"]["expected"][2], rel=2e-3)
    assert floor["physics"]["expected"][2] < small["physics"]["expected"][2] < big["physics"]["expected"][2]


def test_the_flag_is_in_limits_json_and_the_summary(tmp_path):
    taulgamma_output(tmp_path, {"tautau": 0.5, "uds": 2.0}, {"egamma": {"tautau": 6.0, "uds": 1.0}})
    run_search_limits("taulgamma", tmp_path, make_plots=False)
    doc = json.loads((tmp_path / "taulgamma" / "limits.json").read_text())
    by_limit = {e["limit"]: e for e in doc["limits"]}
    mu, eg = by_limit["mugamma"], by_limit["egamma"]
    assert mu["background_from_mc_bound"] is True and not eg["background_from_mc_bound"] and eg["mc_bound"] == []
    (record,) = mu["mc_bound"]
    assert record["channel"] == "mugamma" and record["bound"] == pytest.approx(2.5)
    assert record["largest_weight_per_event"] == 2.0 and record["effective_events"] == pytest.approx(2.5**2 / 4.25)
    rows = limit_all(tmp_path, searches=["taulgamma"])
    flags = {r["channel"]: r["background_from_mc_bound"] for r in rows}
    assert flags == {"mugamma": True, "egamma": False}
    console = Console(record=True, width=250)
    print_summary(rows, console)
    text = console.export_text()
    assert f"2.5{MC_BOUND_MARK}" in text and MC_BOUND_LEGEND.split(":")[0] in text


def _yields(histograms):
    return book(histograms, "yields", count_axis())


def _set_signal(h, dataset, channel, region, s):
    """Signal with the corrections-layer <syst>Up / Down slices these stats models read (+-1 %)."""
    set_bins(h, dataset, channel, region, s, 1.0)
    for syst in ("leptonID", "tracking", "trigger", "momentumScale", "luminosity"):
        for suffix, f in (("Up", 1.01), ("Down", 0.99)):
            set_bins(h, dataset, channel, region, s * f, 1.0, variation=syst + suffix)


def test_abcd_and_rsb_times_rmc_use_the_bound_for_empty_simulated_regions(tmp_path):
    # tau3mu, no pseudo-data (Asimov): B empty in simulation -> N_B = w, C / D from filled regions
    w = 40.0
    histograms = {}
    h = _yields(histograms)
    _set_signal(h, "sig_tau3mu", "3mu", "SR_pass", 50.0)
    for region, n in (("SR_fail", 5.0), ("outer_fail", 20.0)):
        set_bins(h, "tautau", "3mu", region, n * w, n * w * w)
    datasets = {"sig_tau3mu": {"kind": "signal", "process": "sig_tau3mu", "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-8 * gamma_star_share("sig_tau3mu", "belle2"), "parameters": {}},
                "tautau": _bkg(w)}
    write_run_output(tmp_path, "tau3mu", "belle2", 424.0, datasets, histograms)
    entry = compute_search_limits("tau3mu", tmp_path, PLAIN_ABCD).document["limits"][0]
    assert entry["background_from_mc_bound"]
    assert entry["background_events"] == pytest.approx(w * 5.0 / 20.0)  # N_B (bound) x N_C / N_D
    assert [r["estimate"] for r in entry["mc_bound"]] == ["sideband count (MC, Asimov)"]
    workspace = json.loads(json.dumps(compute_search_limits("tau3mu", tmp_path, PLAIN_ABCD).workspaces["workspace.json"]))
    bkg = next(s for s in workspace["channels"][0]["samples"] if s["name"] == "background")
    side = next(m for m in bkg["modifiers"] if m["name"] == "sideband_3mu")
    # 1 / N_B (the Poisson count) + (w / N_B)^2 (the bound): a relative uncertainty of sqrt(1/w + 1)
    assert side["data"][0] == pytest.approx(entry["background_events"] * math.sqrt(1 / w + 1))

    # taulphi, Asimov: RSB and SR empty in both datasets -> N_RSB = sum w, r_MC = sum w / sum w
    histograms = {}
    h = _yields(histograms)
    weights = {"tautau": 3.0, "uds": 5.0}
    datasets = {name: _bkg(wd) for name, wd in weights.items()}
    for ch, sig in (("ephi", "sig_tauephi"), ("muphi", "sig_taumuphi")):
        datasets[sig] = {"kind": "signal", "process": sig, "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-8 * gamma_star_share(sig, "belle2"), "parameters": {}}
        _set_signal(h, sig, ch, "SR", 30.0)
        for name, wd in weights.items():
            set_bins(h, name, ch, "SR_presel", 10 * wd, 10 * wd * wd)
    write_run_output(tmp_path, "taulphi", "belle2", 190.0, datasets, histograms)
    # the paper's estimate (the YAML's own, per process, is tests/test_taulphi_factorised.py's)
    limits = {e["limit"]: e for e in compute_search_limits("taulphi", tmp_path, PLAIN_ABCD).document["limits"]}
    for ch in ("ephi", "muphi"):
        e = limits[ch]
        assert e["background_from_mc_bound"] and e["background_events"] == pytest.approx(8.0)
        assert {r["estimate"] for r in e["mc_bound"]} == {
            "sideband count (MC, Asimov)", "transfer-factor numerator (MC)", "transfer-factor denominator (MC)"
        }


def test_a_large_bound_uses_the_closed_form_asymptotic_limit_and_agrees_with_pyhf(tmp_path):
    from belle_rare.stats.limits import model_and_data, upper_limit, workspace_from_spec

    e = _expected_limit(tmp_path / "w20", 20.0)  # b = 40 +- 28: above the toy threshold of 10
    assert e["background_events"] == pytest.approx(40.0)
    assert e["calculator"] == "asymptotics" and "MC bound" in e["method"]
    built = _built(tmp_path / "w20")
    model, data = model_and_data(workspace_from_spec(built.spec, "w20"), measurement="taumugamma")
    pyhf_limit = upper_limit(model, data, cl=0.90, calculator="asymptotics")
    # same model; the closed form leaves out the 1 % signal staterror
    assert e["poi_limit"]["expected"][2] == pytest.approx(pyhf_limit.expected[2], rel=0.02)
    assert e["poi_limit"]["observed"] == pytest.approx(pyhf_limit.observed, rel=0.02)
    huge = _expected_limit(tmp_path / "huge", 1.5e8)  # a make-run Bhabha weight: finite, not the floor
    assert math.isfinite(huge["physics"]["expected"][2]) and huge["physics"]["expected"][2] > 1e3 * e["physics"]["expected"][2]


def test_an_empty_data_sideband_counts_as_one_event_of_weight_one(tmp_path):
    # pseudo-data with N_B = 0 (the runner writes scale 1 for data): N_B = 1 +- 1, b = 1 x N_C / N_D
    histograms = {}
    h = _yields(histograms)
    _set_signal(h, "sig_tau3mu", "3mu", "SR_pass", 50.0)
    for region, n in (("SR_pass", 0.0), ("SR_fail", 10.0), ("outer_fail", 40.0)):
        if n:
            set_bins(h, "data", "3mu", region, n, n)
    set_bins(h, "tautau", "3mu", "outer_pass", 2.0, 0.2)
    datasets = {"sig_tau3mu": {"kind": "signal", "process": "sig_tau3mu", "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-8 * gamma_star_share("sig_tau3mu", "belle2"), "parameters": {}},
                "tautau": _bkg(0.1), "data": {"kind": "data", "parameters": {}, "scale": 1.0}}
    write_run_output(tmp_path, "tau3mu", "belle2", 424.0, datasets, histograms)
    entry = compute_search_limits("tau3mu", tmp_path, PLAIN_ABCD).document["limits"][0]
    assert entry["background_events"] == pytest.approx(1.0 * 10.0 / 40.0)
    (record,) = entry["mc_bound"]
    assert record["estimate"] == "sideband count (data)" and record["weight_per_event"] == {"data": 1.0}
    assert entry["method"] == "exact Poisson CLs"  # b = 0.25 < 10: the YAML's toys


def test_an_efficiency_side_left_empty_is_filled_from_the_other():
    """12 events all failing a cut: the pass side is 1 / 13 of the fail yield (Beta(1, 13) mean), not
    the bound of a dataset that never reached the region; both-empty datasets keep the bound."""
    from belle_rare.stats.mc_bound import fill_empty_fraction

    w = 0.7
    passed = {"charm": (0.0, 0.0), "tautau": (3.0, 0.3), "eemumu": (0.0, 0.0)}
    failed = {"charm": (12 * w, 12 * w * w), "tautau": (4.0, 0.4), "eemumu": (0.0, 0.0)}
    p, f, filled = fill_empty_fraction(passed, failed)
    assert filled == ["charm"]
    assert p["charm"][0] == pytest.approx(12 * w / 13) and p["charm"][1] == pytest.approx((12 * w / 13) ** 2)
    assert p["tautau"] == passed["tautau"] and f == failed and p["eemumu"] == (0.0, 0.0)
    # the posterior mean of the pass fraction for n failing events: 1 / (n + 2)
    assert p["charm"][0] / (p["charm"][0] + f["charm"][0]) == pytest.approx(1 / 14)
