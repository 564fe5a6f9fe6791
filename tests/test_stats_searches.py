"""Stats models of tau3mu (ABCD background) and taulphi (RSB x r_MC): limits.json from a faked run output.

The run outputs follow the processors' layout (``{dataset: {name: Hist}}``; the ``yields`` counting
histogram with a ``variation`` axis, regions and channels of processors/tau3mu.py and
processors/taulphi.py, metadata as analyses/runner.py writes it).
"""

from __future__ import annotations

import json
import math

import hist
import pytest

from belle_rare.configs.loader import ConfigError
from belle_rare.configs.processes import forced_sub_branching_fraction
from belle_rare.stats.errors import StatsError
from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.model_config import load_stats_config
from belle_rare.stats.workspace import hypotheses
from belle_rare.stats.model_config import TransferFactor
from belle_rare.stats.search_limits import Settings, compute_search_limits, reference_value, run_search_limits
from belle_rare.stats.summary import limit_all
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output
from belle_rare.simulation.production import gamma_star_share

BR_REF = 1.0e-8
# the corrections-layer systematics both stats models take as histosys, with a size per test sample
CORRECTION_SHIFTS = {"leptonID": 0.08, "tracking": 0.012, "trigger": 0.009, "momentumScale": 0.005, "luminosity": 0.006}


def _yields(histograms):
    """The processors' counting histogram: channel, region, variation, one ``count`` bin."""
    return book(histograms, "yields", count_axis())


def _signal_meta(process):
    """As the runner writes it: the generated sigma x BR includes the forced sub-decays (phi -> K+ K-)."""
    sigma = 2 * SIGMA_TAUTAU_NB * BR_REF * forced_sub_branching_fraction(process) * gamma_star_share(process, "belle2")
    return {"kind": "signal", "process": process, "cross_section_nb": sigma, "parameters": {}}


def _background_meta():
    return {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}}


def set_signal(h, dataset, channel, region, s):
    """Signal yield ``s`` (nominal) and its <syst>Up / Down slices shifted by CORRECTION_SHIFTS."""
    set_bins(h, dataset, channel, region, s, (0.005 * s) ** 2)
    for syst, rel in CORRECTION_SHIFTS.items():
        for suffix, sign in (("Up", 1), ("Down", -1)):
            set_bins(h, dataset, channel, region, s * (1 + sign * rel), (0.005 * s) ** 2, variation=syst + suffix)


def tau3mu_output(results_dir, n_b=2.0, n_c=10.0, n_d=40.0, n_a=1.0, efficiency=0.20):
    """Data in the ABCD regions (A = SR_pass observed), signal at BR_REF with ``efficiency``."""
    lumi = 424.0
    histograms = {}
    h = _yields(histograms)
    s = 2 * lumi * SIGMA_TAUTAU_NB * 1e6 * BR_REF * efficiency
    set_signal(h, "sig_tau3mu", "3mu", "SR_pass", s)
    for region, n in (("SR_pass", 0.3), ("outer_pass", 1.0), ("SR_fail", 5.0), ("outer_fail", 20.0), ("far", 50.0)):
        set_bins(h, "tautau", "3mu", region, n, n / 10)
    for region, n in (("SR_pass", n_a), ("outer_pass", n_b), ("SR_fail", n_c), ("outer_fail", n_d)):
        set_bins(h, "data", "3mu", region, n, n)
    datasets = {"sig_tau3mu": _signal_meta("sig_tau3mu"), "tautau": _background_meta(), "data": {"kind": "data", "parameters": {}}}
    return write_run_output(results_dir, "tau3mu", "belle2", lumi, datasets, histograms)


# taulphi's area fraction SR / (SR + RSB) (the runner's sr_area_fraction; processors/taulphi.py Box.sr_fraction)
TAULPHI_AREA = {"ephi": 0.05486, "muphi": 0.08009}


def taulphi_output(results_dir, n_rsb=None, efficiency=None):
    """Simulated background with r_MC = 0.23 / 0.12; data in RSB (the paper's 1 / 3) and SR (2 / 0), the
    same before the BDT (the YAML's per-process estimate: (N_SR + N_RSB) x area fraction); the m_de plane."""
    lumi = 190.0
    n_rsb = n_rsb or {"ephi": 1.0, "muphi": 3.0}
    efficiency = efficiency or {"ephi": 0.061, "muphi": 0.065}
    r_mc = {"ephi": 0.23, "muphi": 0.12}
    n_sr = {"ephi": 2.0, "muphi": 0.0}
    histograms = {}
    h = _yields(histograms)
    datasets = {"tautau": _background_meta(), "uds": _background_meta(), "data": {"kind": "data", "parameters": {}}}
    for ch, sig in (("ephi", "sig_tauephi"), ("muphi", "sig_taumuphi")):
        datasets[sig] = _signal_meta(sig)
        # efficiency in the paper's definition: selected over produced tau -> l phi, BR(phi -> K+ K-) included
        s = 2 * lumi * SIGMA_TAUTAU_NB * 1e6 * BR_REF * efficiency[ch]
        set_signal(h, sig, ch, "SR", s)
        for name in ("tautau", "uds"):  # MC: RSB 10 per dataset, SR r_MC x that
            set_bins(h, name, ch, "RSB", 10.0, 0.5)
            set_bins(h, name, ch, "SR", 10.0 * r_mc[ch], 0.1)
            set_bins(h, name, ch, "SR_presel", 100.0, 5.0)
        for region, n in (("RSB", n_rsb[ch]), ("SR", n_sr[ch])):
            if n > 0:
                set_bins(h, "data", ch, region, n, n)
                set_bins(h, "data", ch, f"{region}_presel", n, n)
    plane = book(histograms, "m_de", hist.axis.Regular(1, 1.60, 1.95, name="m"), hist.axis.Regular(1, -0.5, 0.3, name="de"),
                 systematics=False)
    for name in datasets:
        plane.of(name)
    return write_run_output(results_dir, "taulphi", "belle2", lumi, datasets, histograms, {"sr_area_fraction": TAULPHI_AREA})


def _by_limit(document):
    return {e["limit"]: e for e in document["limits"]}


def _assert_good(entry):
    br = entry["physics"]["observed"]
    assert entry["physics"]["quantity"] == "branching_fraction" and entry["cl"] == 0.90
    assert math.isfinite(br) and br > 0
    assert all(math.isfinite(v) and v > 0 for v in entry["physics"]["expected"])
    assert entry["calculator"] == "toybased" and entry["method"] == "exact Poisson CLs"


def test_tau3mu_abcd_limit_written(tmp_path):
    tau3mu_output(tmp_path)
    run_search_limits("tau3mu", tmp_path, make_plots=False)
    doc = json.loads((tmp_path / "tau3mu" / "limits.json").read_text())
    entry = _by_limit(doc)["3mu"]
    _assert_good(entry)
    # the YAML's estimate: the BDT efficiency factorised, (N_A + N_C) x N_B / (N_B + N_D); the
    # paper's plain ABCD N_B x N_C / N_D recorded beside it as the cross-check (stats/factorised.py)
    assert entry["background_estimate"] == ["factorised"]
    assert entry["background_events"] == pytest.approx((1.0 + 10.0) * 2.0 / (2.0 + 40.0))
    plain = next(e for e in entry["background_estimates"] if e["estimate"] == "transfer_factor")
    assert not plain["used"] and plain["value"] == pytest.approx(2.0 * 10.0 / 40.0)
    assert entry["observed_events"] == pytest.approx(1.0)
    # BR = s / (2 eps N_tautau), N_tautau = L sigma_tautau
    assert entry["normalisation"]["efficiency"] == pytest.approx(0.20)
    n_tautau = 424.0 * SIGMA_TAUTAU_NB * 1e6
    assert entry["physics"]["observed"] == pytest.approx(entry["signal_events"]["observed"] / (2 * 0.20 * n_tautau))
    assert entry["published"]["observed"] == 1.9e-8
    # the corrections layer's variations enter as histosys with the Up / Down signal yields
    workspace = json.loads((tmp_path / "tau3mu" / "workspace.json").read_text())
    signal = next(smp for smp in workspace["channels"][0]["samples"] if smp["name"] == "signal")
    histosys = {m["name"]: m["data"] for m in signal["modifiers"] if m["type"] == "histosys"}
    assert set(histosys) == set(CORRECTION_SHIFTS)
    nominal = sum(signal["data"])
    for syst, rel in CORRECTION_SHIFTS.items():
        assert sum(histosys[syst]["hi_data"]) == pytest.approx(nominal * (1 + rel))
        assert sum(histosys[syst]["lo_data"]) == pytest.approx(nominal * (1 - rel))


def test_taulphi_rsb_times_rmc_limits_written(tmp_path):
    taulphi_output(tmp_path)
    run_search_limits("taulphi", tmp_path, Settings(background_estimate="transfer_factor"), make_plots=False)
    doc = json.loads((tmp_path / "taulphi" / "limits.json").read_text())
    limits = _by_limit(doc)
    assert set(limits) == {"ephi", "muphi"}
    for ch, (n_rsb, r_mc, published) in {"ephi": (1.0, 0.23, 2.3e-7), "muphi": (3.0, 0.12, 9.7e-8)}.items():
        _assert_good(limits[ch])
        assert limits[ch]["background_events"] == pytest.approx(n_rsb * r_mc)
        # the YAML's own estimate beside it: the data window (SR + RSB) x the area fraction x the BDT efficiency,
        # all n window events passing: the Beta-posterior mean (n + 1) / (n + 2) (stats/mc_bound.py fill_empty_fraction)
        per_process = next(e for e in limits[ch]["background_estimates"] if e["estimate"] == "factorised")
        n = n_rsb + {"ephi": 2.0, "muphi": 0.0}[ch]
        assert not per_process["used"]
        assert per_process["value"] == pytest.approx(n * TAULPHI_AREA[ch] * (n + 1) / (n + 2))
        assert limits[ch]["published"]["observed"] == published
    # the limit is on BR(tau -> l phi): the reference divides BR(phi -> K+ K-) out of the generated
    # sigma x BR, and the efficiency is the paper's (6.1 / 6.5 %, phi -> K+ K- included)
    for ch, eff in (("ephi", 0.061), ("muphi", 0.065)):
        assert limits[ch]["normalisation"]["reference_value"] == pytest.approx(BR_REF)
        assert limits[ch]["normalisation"]["efficiency"] == pytest.approx(eff)
        n_tautau = 190.0 * SIGMA_TAUTAU_NB * 1e6
        assert limits[ch]["physics"]["observed"] == pytest.approx(limits[ch]["signal_events"]["observed"] / (2 * eff * n_tautau))


def _reference(results_dir, search, signal):
    config = load_stats_config(search)
    run = load_run_output(results_dir, search)
    return reference_value(config, signal, run, hypotheses(config, run, signal)[0])


def test_reference_value_divides_out_forced_sub_decays(tmp_path):
    """sig_taumuphi forces phi -> K+ K- (0.491): its sigma x BR / (2 sigma_tautau) is BR x 0.491, the
    reference BR divides it out; sig_tau3mu forces nothing and keeps sigma / (2 sigma_tautau)."""
    assert forced_sub_branching_fraction("sig_taumuphi") == pytest.approx(0.491)
    assert forced_sub_branching_fraction("sig_tau3mu") == 1.0
    taulphi_output(tmp_path)
    tau3mu_output(tmp_path)
    for signal in ("taumuphi", "tauephi"):
        assert _reference(tmp_path, "taulphi", signal) == pytest.approx(BR_REF)
    assert _reference(tmp_path, "tau3mu", "tau3mu") == pytest.approx(BR_REF)
    # a run output without the process of a signal dataset cannot be normalised: a clear error
    path = tmp_path / "taulphi" / "metadata.json"
    meta = json.loads(path.read_text())
    del meta["datasets"]["sig_taumuphi"]["process"]
    path.write_text(json.dumps(meta))
    with pytest.raises(StatsError, match="no 'process'"):
        _reference(tmp_path, "taulphi", "taumuphi")


def test_larger_background_gives_weaker_limit(tmp_path):
    def tau3mu_expected(n_b):
        tau3mu_output(tmp_path / f"t{n_b}", n_b=n_b)
        return _by_limit(compute_search_limits("tau3mu", tmp_path / f"t{n_b}").document)["3mu"]

    low, high = tau3mu_expected(2.0), tau3mu_expected(40.0)
    assert high["background_events"] > low["background_events"]
    assert high["physics"]["expected"][2] > low["physics"]["expected"][2]

    def taulphi_expected(n):
        taulphi_output(tmp_path / f"p{n}", n_rsb={"ephi": n, "muphi": n})
        return _by_limit(compute_search_limits("taulphi", tmp_path / f"p{n}").document)

    low, high = taulphi_expected(1.0), taulphi_expected(30.0)
    for ch in ("ephi", "muphi"):
        assert high[ch]["background_events"] > low[ch]["background_events"]
        assert high[ch]["physics"]["expected"][2] > low[ch]["physics"]["expected"][2]


def test_limit_all_handles_both_searches(tmp_path):
    tau3mu_output(tmp_path)
    taulphi_output(tmp_path)
    rows = limit_all(tmp_path, searches=["tau3mu", "taulphi"])
    assert not [r for r in rows if "error" in r]
    assert {(r["search"], r["channel"]) for r in rows} == {("tau3mu", "3mu"), ("taulphi", "ephi"), ("taulphi", "muphi")}
    for search in ("tau3mu", "taulphi"):
        assert (tmp_path / search / "limits.json").is_file()


def test_empty_sideband_needs_no_transfer_factor(tmp_path):
    # small samples: nothing in the sidebands nor the control regions -> zero background, no error
    tau3mu_output(tmp_path, n_b=0.0, n_c=0.0, n_d=0.0, n_a=0.0)
    entry = _by_limit(compute_search_limits("tau3mu", tmp_path).document)["3mu"]
    _assert_good(entry)
    assert entry["background_events"] == 0.0


def test_transfer_factor_from_data_needs_control_regions():
    assert TransferFactor(from_data=True, regions=["SR_fail", "outer_fail"]).regions == ["SR_fail", "outer_fail"]
    for bad in ({"from_data": True}, {"value": 0.2, "regions": ["a", "b"]}, {"value": 0.2, "from_data": True}):
        with pytest.raises((ValueError, ConfigError)):
            TransferFactor(**bad)


def test_a_forced_sub_decay_must_state_its_branching_fraction():
    """A process whose extra_pythia switches a decay table off (forces a sub-decay, e.g. K*0 -> K+ pi-)
    needs sub_branching_fraction, or its limits would be on BR x BR(sub-decay) without anyone noticing."""
    import pydantic
    import yaml

    from belle_rare.configs.loader import config_path
    from belle_rare.configs.processes import Catalogue

    data = yaml.safe_load(config_path("processes.yaml").read_text())
    kstar = data["processes"]["sig_kstartautau"]
    assert "313:onMode = off" in kstar["extra_pythia"]  # the shipped signal forces K*0 -> K+ pi-
    kstar.pop("sub_branching_fraction")
    with pytest.raises(pydantic.ValidationError, match="sig_kstartautau.sub_branching_fraction"):
        Catalogue.model_validate(data)
    kstar["sub_branching_fraction"] = 0.666  # BR(K*0 -> K+ pi-) = 2/3 (isospin)
    assert Catalogue.model_validate(data).forced_sub_branching_fraction("sig_kstartautau") == pytest.approx(0.666)
