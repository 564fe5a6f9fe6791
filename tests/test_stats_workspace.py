"""Histograms -> pyhf workspace -> limits.json, on synthetic run output in the processors' layout
(``{dataset: {name: Hist}}``, belle_rare.core.histograms)."""

from __future__ import annotations

import json
import math

import hist
import numpy as np
import pyhf
import pytest
from scipy import stats

from belle_rare.stats.errors import StatsError
from belle_rare.stats import histograms as H
from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.model_config import StatsConfig, load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits, run_search_limits
from belle_rare.stats.synthetic import book, count_axis, set_bins, taulgamma_counting_output, write_run_output
from belle_rare.stats.workspace import build_workspace, hypotheses

N_TAUTAU = 912.0e6  # tau pairs in 988 /fb (SEARCHES.md)
BR_REF = 1.0e-7


@pytest.fixture
def taulgamma_dir(tmp_path):
    taulgamma_counting_output(tmp_path, observed={"mugamma": 5, "egamma": 5}, reference_br=BR_REF)
    return tmp_path


def _channel(spec, name):
    return next(c for c in spec["channels"] if c["name"] == name)


def _sample(channel, name):
    return next(s for s in channel["samples"] if s["name"] == name)


def test_taulgamma_workspace_from_histograms(taulgamma_dir):
    config = load_stats_config("taulgamma")
    run = load_run_output(taulgamma_dir, "taulgamma")
    hyp = hypotheses(config, run, "taumugamma")[0]
    built = build_workspace(config, run, {"taumugamma": hyp}, ["mugamma"])
    spec = built.spec
    pyhf.Workspace(spec)  # valid against pyhf's schema
    ch = _channel(spec, "mugamma")
    sig, bkg = _sample(ch, "signal"), _sample(ch, "background")
    assert sig["data"] == pytest.approx([2 * N_TAUTAU * BR_REF * 0.037])  # counting: one bin
    assert bkg["data"] == pytest.approx([5.8])  # summed over the tag-class bins of "yields"
    mods = {m["name"]: m for m in bkg["modifiers"]}
    assert mods["staterror_mugamma"]["data"] == pytest.approx([0.4])  # sqrt of the summed Weight() variances
    # histosys from the variation axis, with the processor's names and sizes
    assert mods["trigger"]["data"]["hi_data"] == pytest.approx([5.8 * 1.021])
    assert mods["luminosity"]["data"]["lo_data"] == pytest.approx([5.8 * 0.986])
    assert mods["background_model_mugamma"]["data"] == {"hi": 1.033, "lo": 0.967}
    sig_mods = {m["name"]: m for m in sig["modifiers"]}
    assert sig_mods["mu_taumugamma"]["type"] == "normfactor"
    assert {"tracking", "photonEff", "photonEnergy", "luminosity", "trigger"} <= set(sig_mods)
    assert sig_mods["photonEnergy"]["data"]["hi_data"] == pytest.approx([sig["data"][0] * 1.032])
    assert all(m["type"] != "lumi" for m in sig["modifiers"])  # the luminosity is a variation, not counted twice
    assert spec["observations"] == [{"name": "mugamma", "data": [5.0]}]
    assert not built.asimov


def test_asimov_observation_without_pseudo_data(tmp_path):
    taulgamma_counting_output(tmp_path, observed=None)
    config = load_stats_config("taulgamma")
    run = load_run_output(tmp_path, "taulgamma")
    built = build_workspace(config, run, {s: hypotheses(config, run, s)[0] for s in config.signals})
    assert built.asimov
    assert _channel(built.spec, "egamma")["samples"][1]["data"] == pytest.approx([5.1])
    assert next(o for o in built.spec["observations"] if o["name"] == "egamma")["data"] == pytest.approx([5.1])
    assert any("Asimov" in n for n in built.notes)
    # the all-channel workspace: one measurement per signal, the other POI fixed at 0
    meas = {m["name"]: m["config"] for m in built.spec["measurements"]}
    assert meas["taumugamma"]["poi"] == "mu_taumugamma"
    assert {"name": "mu_tauegamma", "fixed": True, "inits": [0.0]} in meas["taumugamma"]["parameters"]


def test_histogram_convention_is_checked(tmp_path):
    bad = hist.Hist(hist.axis.StrCategory(["a"], name="dataset"), hist.axis.Regular(3, 0, 1, name="x"), storage=hist.storage.Weight())
    write_run_output(tmp_path, "taulgamma", "belle", 988.0, {"a": {"kind": "background"}}, {"a": {"yields": bad}})
    with pytest.raises(StatsError, match="dataset 'a': histogram 'yields': axes must start with channel, region"):
        load_run_output(tmp_path, "taulgamma")
    # the old flat layout (a dense dataset axis) is named as such
    good = book({}, "yields", count_axis()).template
    write_run_output(tmp_path, "taulgamma", "belle", 988.0, {"a": {"kind": "background"}}, {"yields": good})
    with pytest.raises(StatsError, match=r"'yields' is a histogram, not a dataset: expected \{dataset: \{histogram: Hist\}\}"):
        load_run_output(tmp_path, "taulgamma")
    # one name, different physics axes in two datasets
    hists = {}
    book(hists, "yields", count_axis()).set_bins("a", "mugamma", "signal", 1.0)
    book(hists, "yields", hist.axis.Regular(2, 0, 1, name="x")).set_bins("b", "mugamma", "signal", 1.0)
    write_run_output(tmp_path, "taulgamma", "belle", 988.0, {"a": {"kind": "background"}, "b": {"kind": "background"}}, hists)
    with pytest.raises(StatsError, match="histogram 'yields' has different axes in datasets 'a' and 'b'"):
        load_run_output(tmp_path, "taulgamma")
    write_run_output(tmp_path, "taulgamma", "belle", 988.0, {"a": {"kind": "mc"}}, {})
    with pytest.raises(StatsError, match="datasets.a.kind"):
        load_run_output(tmp_path, "taulgamma")
    with pytest.raises(StatsError, match="expected 'tau3mu'"):
        write_run_output(tmp_path, "tau3mu", "belle2", 424.0, {}, {})
        meta = tmp_path / "tau3mu" / "metadata.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "search": "taulgamma"}))
        load_run_output(tmp_path, "tau3mu")


def _sideband_config() -> StatsConfig:
    return StatsConfig.model_validate(
        {
            "search": "taulphi",
            "experiment": "belle2",
            "signals": {
                "tauephi": {
                    "label": "tau -> e phi",
                    "normalisation": {"quantity": "branching_fraction", "parents": "tau_pairs"},
                }
            },
            "channels": [
                {
                    "name": "ephi",
                    "histogram": "mtau",
                    "region": "SR",
                    "counting": True,
                    "samples": [
                        {"name": "signal", "signal": "tauephi", "datasets": {"kind": "signal"}},
                        {
                            "name": "background",
                            "data_driven": {"sideband_region": "RSB", "transfer_factor": {"from_mc": {"kind": "background"}}},
                        },
                    ],
                }
            ],
        }
    )


def _sideband_output(tmp_path, with_data=True):
    hists = {}
    h = book(hists, "mtau", hist.axis.Regular(2, 1.7, 1.85, name="mtau"))
    set_bins(h, "sig", "ephi", "SR", [1.0, 1.0], [0.01, 0.01])
    set_bins(h, "qq", "ephi", "SR", [0.5, 0.5], [0.04, 0.04])  # MC: SR 1.0 +- 0.283
    set_bins(h, "qq", "ephi", "RSB", [2.0, 2.0], [0.16, 0.16])  # MC: RSB 4.0 +- 0.566 -> r = 0.25
    datasets = {"sig": {"kind": "signal", "branching_fraction": 1e-6}, "qq": {"kind": "background"}}
    if with_data:
        set_bins(h, "data", "ephi", "RSB", [1.0, 2.0])  # 3 sideband events
        set_bins(h, "data", "ephi", "SR", [0.0, 1.0])
        datasets["data"] = {"kind": "data"}
    write_run_output(tmp_path, "taulphi", "belle2", 190.0, datasets, hists)


def test_data_driven_background_sideband_times_transfer_factor(tmp_path):
    _sideband_output(tmp_path)
    config = _sideband_config()
    run = load_run_output(tmp_path, "taulphi")
    built = build_workspace(config, run, {"tauephi": hypotheses(config, run, "tauephi")[0]})
    bkg = _sample(_channel(built.spec, "ephi"), "background")
    r, n_sb = 1.0 / 4.0, 3.0
    assert bkg["data"] == pytest.approx([r * n_sb])
    mods = {m["name"]: m for m in bkg["modifiers"]}
    # Poisson constraint of the sideband count: shapesys with tau = (b / sigma)^2 = N_SB
    assert (bkg["data"][0] / mods["sideband_ephi"]["data"][0]) ** 2 == pytest.approx(n_sb)
    rel_r = math.sqrt(0.08 / 1.0**2 + 0.32 / 4.0**2)
    assert mods["transfer_ephi"]["data"]["hi"] == pytest.approx(1 + rel_r)


def test_search_limits_reproducible_with_pyhf_alone(taulgamma_dir):
    result = run_search_limits("taulgamma", taulgamma_dir, Settings(calculator="asymptotics"))
    base = taulgamma_dir / "taulgamma"
    doc = json.loads((base / "limits.json").read_text())
    assert doc == json.loads(json.dumps(result.document))
    entry = next(e for e in doc["limits"] if e["signal"] == "taumugamma")
    assert entry["limit"] == "mugamma" and entry["calculator"] == "asymptotics"
    # the written workspace alone gives the same limit with a direct pyhf call
    ws = pyhf.Workspace(json.loads((base / entry["workspace"]).read_text()))
    model = ws.model(measurement_name="taumugamma")
    ref = pyhf.infer.intervals.upper_limits.toms748_scan(ws.data(model), model, 0.05, 5.0, level=0.10, rtol=1e-6)
    assert entry["poi_limit"]["observed"] == pytest.approx(float(ref[0]), rel=1e-4)
    assert entry["poi_limit"]["expected"] == pytest.approx([float(v) for v in ref[1]], rel=1e-4)
    # physics: BR = mu x BR_ref = s / (2 eps N_tautau), with the simulated efficiency
    assert entry["normalisation"]["efficiency"] == pytest.approx(0.037)
    assert entry["physics"]["observed"] == pytest.approx(entry["poi_limit"]["observed"] * BR_REF)
    s_up = entry["signal_events"]["observed"]
    assert entry["physics"]["observed"] == pytest.approx(s_up / (2 * 0.037 * N_TAUTAU))
    assert entry["published"]["observed"] == 4.2e-8
    # the combined workspace and the plots
    combined = pyhf.Workspace(json.loads((base / "workspace.json").read_text()))
    assert {m["name"] for m in combined["measurements"]} == {"taumugamma", "tauegamma"}
    for stem in ("cls_taumugamma_mugamma", "cls_tauegamma_egamma"):
        for ext in ("png", "pdf"):
            assert (base / "plots" / f"{stem}.{ext}").stat().st_size > 1000
    assert not list(base.rglob("*.tmp*"))


def test_search_limits_default_uses_toys_for_small_background(taulgamma_dir):
    doc = compute_search_limits("taulgamma", taulgamma_dir).document
    entry = next(e for e in doc["limits"] if e["signal"] == "taumugamma")
    assert entry["calculator"] == "toybased" and "5.8 < 10" in entry["calculator_reason"]
    # exact Poisson CLs: between the no-uncertainty limit (scipy) and a few % above it
    s_up = entry["signal_events"]["observed"]
    s_plain = _scipy_cls_limit(5, 5.8, 0.90)
    assert s_plain < s_up < 1.05 * s_plain
    assert entry["signal_events"]["expected"][0] <= entry["signal_events"]["expected"][2] <= entry["signal_events"]["expected"][4]


def _scipy_cls_limit(n, b, cl):
    from scipy.optimize import brentq

    return brentq(lambda s: stats.poisson.cdf(n, s + b) / stats.poisson.cdf(n, b) - (1 - cl), 1e-6, 100)


def test_missing_signal_is_a_clear_error_and_writes_nothing(tmp_path):
    hists = {}
    h = book(hists, "yields", hist.axis.Regular(3, 1.75, 1.8, name="mbc"))
    set_bins(h, "bkg", "mugamma", "signal", [1.0, 2.0, 1.0])
    write_run_output(tmp_path, "taulgamma", "belle", 988.0, {"bkg": {"kind": "background"}}, hists)
    with pytest.raises(StatsError, match="no dataset of the run matches"):
        run_search_limits("taulgamma", tmp_path)
    assert not (tmp_path / "taulgamma" / "limits.json").exists()
    assert not (tmp_path / "taulgamma" / "workspace.json").exists()


def test_efficiency_scales_with_luminosity(tmp_path):
    """A larger data set: the same efficiency, a tighter expected BR limit."""
    small = compute_search_limits("taulgamma", _out(tmp_path / "a", 100.0))
    large = compute_search_limits("taulgamma", _out(tmp_path / "b", 1000.0))
    e_small, e_large = (next(e for e in r.document["limits"] if e["signal"] == "taumugamma") for r in (small, large))
    assert e_small["normalisation"]["efficiency"] == pytest.approx(e_large["normalisation"]["efficiency"])
    assert e_large["physics"]["expected"][2] < e_small["physics"]["expected"][2]


def _out(path, lumi):
    taulgamma_counting_output(path, luminosity_fb=lumi, observed=None)
    return path


def test_background_free_run_like_the_demo(tmp_path):
    """No simulated background passes (as in the small demo): signal-only model, n = 0 floor."""
    taulgamma_counting_output(tmp_path, observed=None, background={"mugamma": (0.0, 0.0), "egamma": (0.0, 0.0)})
    doc = compute_search_limits("taulgamma", tmp_path).document
    entry = next(e for e in doc["limits"] if e["signal"] == "taumugamma")
    assert any("'background' is empty and left out" in n for n in doc["notes"])
    assert entry["background_events"] == 0.0 and entry["observed_events"] == 0.0
    # n = 0: s_up = ln 10 at 90 % CL, widened by well under 1 % by the few-% signal systematics
    assert math.log(10) <= entry["signal_events"]["observed"] <= 1.01 * math.log(10)
    assert entry["physics"]["observed"] == pytest.approx(entry["signal_events"]["observed"] / (2 * 0.037 * N_TAUTAU))


def test_missing_dataset_or_category_gives_zeros_and_nominal_only_histograms_no_histosys(tmp_path):
    hists = {}
    with_syst = book(hists, "yields", count_axis())
    with_syst.set_bins("sig", "ephi", "SR", 2.0, 0.04)
    with_syst.set_bins("sig", "ephi", "SR", 2.2, 0.04, variation="trackingUp")
    with_syst.set_bins("sig", "ephi", "SR", 1.8, 0.04, variation="trackingDown")
    nominal_only = book(hists, "mtau", hist.axis.Regular(2, 1.7, 1.85, name="mtau"), systematics=False)
    nominal_only.set_bins("sig", "ephi", "SR", [1.0, 1.0], [0.01, 0.01])
    nominal_only.set_bins("qq", "ephi", "SR", [0.5, 0.5], [0.04, 0.04])
    with pytest.raises(ValueError, match="no variation axis"):
        nominal_only.set_bins("qq", "ephi", "SR", [0.5, 0.5], variation="trackingUp")
    datasets = {"sig": {"kind": "signal", "branching_fraction": 1e-6}, "qq": {"kind": "background"}}
    write_run_output(tmp_path, "taulphi", "belle2", 190.0, datasets, hists)
    run = load_run_output(tmp_path, "taulphi")
    # "qq" has no "yields", a channel / region / variation never filled: zeros of the fit shape
    for args in (("qq", "ephi", "SR"), ("sig", "muphi", "SR"), ("sig", "ephi", "RSB"), ("sig", "ephi", "SR", "pidUp")):
        y = H.yields(run, "yields", *args)
        assert y.values.tolist() == [0.0] and y.variances.tolist() == [0.0]
    assert H.yields(run, "mtau", "sig", "ephi", "SR").values.tolist() == [1.0, 1.0]
    assert H.yields(run, "mtau", "sig", "ephi", "SR", "trackingUp").values.tolist() == [0.0, 0.0]
    assert H.systematics(run, "yields") == ["tracking"] and H.systematics(run, "mtau") == []
    up, down = H.varied_yields(run, "yields", ["sig", "qq"], "ephi", "SR", "tracking")
    assert (up.values.tolist(), down.values.tolist()) == ([2.2], [1.8])
    up, _ = H.varied_yields(run.histograms, "mtau", ["sig", "qq"], "ephi", "SR", "tracking")  # nominal kept
    assert up.values.tolist() == [1.5, 1.5]
    with pytest.raises(StatsError, match="no histogram 'nope' in histograms.coffea"):
        H.yields(run, "nope", "sig", "ephi", "SR")

    def model(histogram, systematics):
        return StatsConfig.model_validate({
            "search": "taulphi", "experiment": "belle2",
            "signals": {"tauephi": {"label": "tau -> e phi",
                                    "normalisation": {"quantity": "branching_fraction", "parents": "tau_pairs"}}},
            "channels": [{"name": "ephi", "histogram": histogram, "region": "SR", "samples": [
                {"name": "signal", "signal": "tauephi", "datasets": {"kind": "signal"},
                 "modifiers": [{"type": "histosys", "systematics": systematics}]},
                {"name": "background", "datasets": {"kind": "background"}, "modifiers": [{"type": "histosys"}]},
            ]}],
        })

    config = model("yields", "all")
    built = build_workspace(config, run, {"tauephi": hypotheses(config, run, "tauephi")[0]})
    channel = _channel(built.spec, "ephi")
    sig = _sample(channel, "signal")
    assert [m["name"] for m in sig["modifiers"] if m["type"] == "histosys"] == ["tracking"]
    assert [s["name"] for s in channel["samples"]] == ["signal"]  # "qq" has no "yields": empty, left out
    config = model("mtau", "all")  # no variation axis: nominal only, no histosys
    built = build_workspace(config, run, {"tauephi": hypotheses(config, run, "tauephi")[0]})
    channel = _channel(built.spec, "ephi")
    assert np.allclose(_sample(channel, "background")["data"], [0.5, 0.5])
    assert not [m for s in channel["samples"] for m in s["modifiers"] if m["type"] == "histosys"]
    config = model("mtau", ["tracking"])
    with pytest.raises(StatsError, match="no variation\\(s\\) trackingUp/Down \\(it has no 'variation' axis: nominal only\\)"):
        build_workspace(config, run, {"tauephi": hypotheses(config, run, "tauephi")[0]})
