"""Filtered and biased production (issue 11, item 3): filters, weights, bookkeeping and closure.

The closure tests produce tiny samples of one physics process plainly and filtered / biased and
check that the rate per generated event of a reconstructed selection agrees (benchmarks/bench_filters.py
has the large version with CPU-time gains).
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from belle_rare.analyses.datasets import load_datasets
from belle_rare.configs.processes import BhabhaCentralEnhancement, GeneratorFilter, TauDecayEnhancement, load_catalogue
from belle_rare.core.errors import UserError
from belle_rare.simulation.generators.biased_decays import (
    bhabha_central_weights, central_fraction, channel_probabilities, tau_channels, tau_decay_weights,
)
from belle_rare.simulation.manifest import NB_TO_INV_FB
from belle_rare.simulation.production import Chunk, Request, make_generator, passes_filter, produce
from belle_rare.simulation.truth import make_truth


def _truth(events: list[list[tuple[int, float, float, float]]]) -> ak.Array:
    """Truth records of final-state particles given as (pdg, px, py, pz) per event."""
    from belle_rare.simulation.generators.pythia import _mass

    cols = {k: [] for k in ("pdg", "status", "mother", "px", "py", "pz", "E", "mass", "x", "y", "z", "t")}
    for ev in events:
        masses = [0.0 if pdg == 22 else _mass(abs(pdg)) for pdg, *_ in ev]
        cols["pdg"].append([p[0] for p in ev])
        cols["status"].append([1] * len(ev))
        cols["mother"].append([-1] * len(ev))
        for k, i in (("px", 1), ("py", 2), ("pz", 3)):
            cols[k].append([p[i] for p in ev])
        cols["E"].append([float(np.sqrt(px**2 + py**2 + pz**2 + m**2)) for (_, px, py, pz), m in zip(ev, masses)])
        cols["mass"].append(masses)
        for k in "xyzt":
            cols[k].append([0.0] * len(ev))
    beam = np.tile([11.0, 0.0, 0.0, 3.0], (len(events), 1))
    return make_truth({k: ak.Array(v) for k, v in cols.items()}, beam)


def test_passes_filter_requirements():
    """Photon energy and angle, charged count / pT / angle and the K+K- pair window each cut where stated."""
    spec = GeneratorFilter(min_photon_energy=0.4, photon_theta_deg=(30, 131), min_charged=2, charged_pt_min=0.05, charged_theta_deg=(16, 151))
    two_pions = [(211, 0.5, 0.0, 0.1), (-211, -0.5, 0.0, 0.1)]
    events = [
        two_pions + [(22, 0.6, 0.0, 0.0)],          # central 0.6 GeV photon: pass
        two_pions + [(22, 0.3, 0.0, 0.0)],          # too soft
        two_pions + [(22, 0.05, 0.0, 0.6)],         # forward (5 deg)
        [(211, 0.5, 0.0, 0.1), (22, 0.6, 0.0, 0.0)],  # one charged only
        [(211, 0.5, 0.0, 0.1), (-211, 0.01, 0.0, 0.1), (22, 0.6, 0.0, 0.0)],  # second track below pT
        two_pions + [(130, 0.6, 0.0, 0.0)],         # a K_L showers too: pass
    ]
    assert passes_filter(_truth(events), spec).tolist() == [True, False, False, False, False, True]
    # phi -> K+ K- at rest: M = 1.0195 GeV; p = 0.127 GeV each
    pk = 0.1270
    pair = GeneratorFilter(min_charged=2, track_pair_mass={"hypothesis": 321, "window": (1.005, 1.035)})
    events = [[(321, pk, 0.0, 0.0), (-321, -pk, 0.0, 0.0)], [(321, pk, 0.0, 0.0), (321, -pk, 0.0, 0.0)], [(321, 0.5, 0.0, 0.0), (-321, -0.5, 0.0, 0.0)]]
    assert passes_filter(_truth(events), pair).tolist() == [True, False, False]


def test_zprime_filter_keeps_two_hard_tracks_and_no_third():
    """zprime's filter: >= 2 charged with pT > 0.05 GeV in the CDC, at most 2 with pT > 0.3 GeV there."""
    spec = load_catalogue().search_filters["zprime"]
    mu = [(13, 1.0, 0.0, 0.3), (-13, -1.0, 0.2, -0.4)]
    events = [
        mu,                                  # two muons: kept
        mu + [(211, 0.5, 0.0, 0.0)],         # a third hard track in the CDC: dropped
        mu + [(211, 0.1, 0.0, 0.0)],         # a soft third track: kept (it may be lost)
        mu + [(211, 0.05, 0.0, 2.0)],        # a third particle in the forward dead region (1.4 deg): kept
        [(13, 1.0, 0.0, 0.3)],               # one charged: dropped
    ]
    assert passes_filter(_truth(events), spec).tolist() == [True, False, True, True, False]
    cfg = __import__("belle_rare.processors.registry", fromlist=["get_search"]).get_search("zprime").load_config()
    lo, hi = (np.degrees(np.arccos(c)) for c in (cfg.tracks.cos_theta[1], cfg.tracks.cos_theta[0]))
    assert spec.charged_theta_deg[0] < lo and spec.charged_theta_deg[1] > hi


def test_filter_config_errors():
    with pytest.raises(ValueError, match="at least one requirement"):
        GeneratorFilter()
    with pytest.raises(ValueError, match="go together"):
        GeneratorFilter(min_photon_energy=0.5)
    cat = load_catalogue()
    assert set(cat.search_filters) == {"tau3mu", "taulgamma", "taulphi", "taulphi_bb", "zprime", "zprime_recoil"}


def test_search_filters_are_looser_than_the_selections():
    """The filters' cuts sit outside the searches' own cuts (configs/searches/*.yaml)."""
    from belle_rare.processors.registry import get_search

    f = load_catalogue().search_filters
    lg = get_search("taulgamma").load_config()
    assert f["taulgamma"].min_photon_energy < lg.photons.signal_e_min
    lo, hi = (np.degrees(np.arccos(c)) for c in (lg.photons.signal_cos_theta[1], lg.photons.signal_cos_theta[0]))
    assert f["taulgamma"].photon_theta_deg[0] < lo and f["taulgamma"].photon_theta_deg[1] > hi
    assert f["taulgamma"].charged_pt_min < lg.tracks.pt_min and f["taulgamma"].min_charged <= lg.tracks.n_tracks
    for name in ("tau3mu", "taulphi"):
        cfg = get_search(name).load_config()
        lo, hi = (np.degrees(np.arccos(c)) for c in (cfg.tracks.cos_theta[1], cfg.tracks.cos_theta[0]))
        assert f[name].charged_theta_deg[0] < lo and f[name].charged_theta_deg[1] > hi
        assert f[name].charged_pt_min < cfg.roe.track_pt_min
    phi = get_search("taulphi").load_config().kaons.phi_mass_window
    assert f["taulphi"].track_pair_mass.window[0] < phi[0] and f["taulphi"].track_pair_mass.window[1] > phi[1]


def test_channel_probabilities_and_bhabha_weights_average_to_one():
    table = load_catalogue().tau_decays
    enh = TauDecayEnhancement(factor=4.0, channels=[[16, -20213]])
    b, q = channel_probabilities(table, enh)
    assert np.isclose(np.sum(q * b / q), 1.0) and np.isclose(q[5], 4 * b[5] / (1 + 3 * b[5]))
    bias = BhabhaCentralEnhancement(factor=10.0, cos_theta_max=0.85)
    f = central_fraction(10.58, -0.985, 0.985, 0.85)
    assert 0.0 < f < 0.2
    # biased probabilities of inside / outside times their weights sum to 1
    z = 10 * f + 1 - f
    w_in, w_out = bhabha_central_weights(np.array([0.0, 0.95]), f, bias)
    assert np.isclose(10 * f / z * w_in + (1 - f) / z * w_out, 1.0)


def test_bhabha_central_sampling_matches_the_biased_density():
    """The biased cos theta* sampler puts k F / (k F + 1 - F) of the events inside the central region."""
    from belle_rare.simulation.generators.bhabha import sample_cos_theta

    rng = np.random.default_rng(3)
    c = sample_cos_theta(200_000, 10.58, -0.985, 0.985, rng, central_enhancement=(0.85, 10.0))
    f = central_fraction(10.58, -0.985, 0.985, 0.85)
    expected = 10 * f / (10 * f + 1 - f)
    inside = np.mean(np.abs(c) < 0.85)
    assert abs(inside - expected) < 4 * np.sqrt(expected * (1 - expected) / c.size)
    w = bhabha_central_weights(c, f, BhabhaCentralEnhancement(factor=10.0, cos_theta_max=0.85))
    assert abs(np.mean(w) - 1) < 4 * np.std(w) / np.sqrt(c.size)


def test_enhanced_tau_channels_are_generated_and_weighted_back():
    """tautau_3prong: every tau decay is recognised; the enhanced channels come out at the biased
    probability q and, weighted, at the true branching fraction b; the weights average to 1."""
    catalogue = load_catalogue()
    enh = catalogue.get("tautau_3prong").tau_decay_enhancement
    gen = make_generator(Request("belle2", "tautau_3prong", 4000, 1, Path(".")), Chunk(0, 4000, 17, 0))
    try:
        truth = gen.generate(4000)
    finally:
        gen.close()
    event, channel = tau_channels(truth.mc, catalogue.tau_decays)
    assert np.all(channel >= 0) and len(channel) == 2 * len(truth)
    b, q = channel_probabilities(catalogue.tau_decays, enh)
    enhanced = np.array([sorted(p) in [sorted(c) for c in enh.channels] for _, _, p in catalogue.tau_decays])
    is_enh = enhanced[channel]
    n = len(channel)
    assert abs(np.mean(is_enh) - q[enhanced].sum()) < 4 * np.sqrt(0.25 / n)
    w = ak.to_numpy(truth.weight)
    np.testing.assert_allclose(w, tau_decay_weights(truth.mc, catalogue.tau_decays, enh))
    assert abs(np.mean(w) - 1.0) < 4 * np.std(w) / np.sqrt(len(w))
    # weighted share of taus in the enhanced channels = their true branching fraction (per-tau weights)
    per_tau = b[channel] / q[channel]
    weighted = np.sum(per_tau * is_enh) / np.sum(per_tau)
    assert abs(weighted - b[enhanced].sum()) < 0.03


def test_filtered_production_accounts_for_every_event(tmp_path):
    """--filter: files hold the requested accepted events, the manifest the generated ones, and
    the dataset scale is sigma x L / generated."""
    req = Request("belle2", "tautau", 500, 4, tmp_path, events_per_file=250,
                  generator_filter=load_catalogue().search_filters["tau3mu"], filter_name="tau3mu")
    m = produce(req, progress=False)
    assert m["dataset"] == "tautau_filter_tau3mu" and m["filter"]["search"] == "tau3mu"
    assert m["events"] == 500 == sum(f["entries"] for f in m["files"])
    assert m["generated_events"] == sum(f["generated"] for f in m["files"]) == m["events"] + m["rejected_events"]
    assert np.isclose(m["filter_efficiency"], 500 / m["generated_events"])
    assert np.isclose(m["filter_efficiency_error"], np.sqrt(m["filter_efficiency"] * (1 - m["filter_efficiency"]) / m["generated_events"]))
    assert 0.1 < m["filter_efficiency"] < 0.5  # tau pairs with a 3-prong decay in the acceptance
    for f in m["files"]:
        assert uproot.open(tmp_path / f["path"])["tree"].num_entries == f["entries"] == 250
    ds = load_datasets(tmp_path, "belle2")["tautau_filter_tau3mu"]
    assert np.isclose(ds.scale(100.0, 500), m["cross_section_nb"] * NB_TO_INV_FB * 100.0 / m["generated_events"])
    # the same seed gives the same files
    again = produce(Request("belle2", "tautau", 500, 4, tmp_path / "again", events_per_file=250,
                            generator_filter=req.generator_filter, filter_name="tau3mu"), progress=False)
    assert again["generated_events"] == m["generated_events"]


def test_filter_cap_and_unknown_filter(tmp_path):
    spec = load_catalogue().search_filters["taulgamma"]
    m = produce(Request("belle", "ee", 50, 2, tmp_path, generator_filter=spec, filter_name="taulgamma", max_generated=200), progress=False)
    assert m["generated_events"] == 200 and m["events"] < 50  # the cap stops it (efficiency ~5 %)
    with pytest.raises(UserError, match="--filter"):
        produce(Request("belle", "ee", 50, 2, tmp_path, filter_name="nosuch"), progress=False)
    with pytest.raises(UserError, match="only for background"):
        produce(Request("belle", "sig_tauegamma", 50, 2, tmp_path, generator_filter=spec, filter_name="taulgamma"), progress=False)


def test_plain_and_filtered_samples_of_one_process_do_not_mix(tmp_path):
    for name, process in (("a", "ee"), ("b", "ee_central")):
        (tmp_path / f"belle_{name}.json").write_text(json.dumps({
            "dataset": name, "process": process, "kind": "background", "experiment": "belle", "events": 0, "files": [],
            "cross_section_nb": 300.0, "cross_section_source": "sigma(ee)"}))
    with pytest.raises(UserError, match="both samples of sigma"):
        load_datasets(tmp_path, "belle")


# ---------------------------------------------------------------------------------------- closure

def _good(ev):
    p = np.sqrt(ev.Track_px**2 + ev.Track_py**2 + ev.Track_pz**2)
    cos = ev.Track_pz / p
    return (abs(ev.Track_dr) < 1.0) & (abs(ev.Track_dz) < 3.0) & (cos > -0.866) & (cos < 0.956) & (np.hypot(ev.Track_px, ev.Track_py) > 0.1)


def _rate(manifest: dict, out: Path, select) -> tuple[float, float]:
    ev = ak.concatenate([uproot.open(out / f["path"])["tree"].arrays() for f in manifest["files"]])
    w = ak.to_numpy(ev["__weight__"]).astype(float)
    sel = select(ev)
    n = manifest["generated_events"]
    r = np.sum(w[sel]) / n
    return r, np.sqrt(max(np.sum(w[sel] ** 2) / n**2 - r**2 / n, 0.0))


def _four_tracks_zero_charge(ev):
    """>= 4 good tracks, zero charge, >= 3 of them not electrons: conversion e+e- pairs, which the
    generator filter cannot see, are what the search's muon ID removes."""
    good = _good(ev)
    q = ev.Track_charge[good]
    hadrons = ak.sum(good & (ev.Track_electronID < 0.5), axis=1)
    return ak.to_numpy((ak.num(q) >= 4) & (ak.sum(q, axis=1) == 0) & (hadrons >= 3))


def test_closure_tau3mu_filter_and_3prong_bias(tmp_path):
    """Rate of >= 4 good tracks with zero charge (3 not electrons) per generated tau pair: plain tautau,
    tautau filtered for tau3mu and tautau_3prong (weighted) agree within their statistical errors."""
    spec = load_catalogue().search_filters["tau3mu"]
    plain = produce(Request("belle2", "tautau", 3000, 21, tmp_path / "p"), progress=False)
    filt = produce(Request("belle2", "tautau", 1000, 22, tmp_path / "f", generator_filter=spec, filter_name="tau3mu"), progress=False)
    biased = produce(Request("belle2", "tautau_3prong", 2000, 23, tmp_path / "b"), progress=False)
    r0, e0 = _rate(plain, tmp_path / "p", _four_tracks_zero_charge)
    r1, e1 = _rate(filt, tmp_path / "f", _four_tracks_zero_charge)
    r2, e2 = _rate(biased, tmp_path / "b", _four_tracks_zero_charge)
    assert r0 > 0.1 and e0 > 0  # both sides have statistics
    assert abs(r1 - r0) < 3.5 * np.hypot(e0, e1), (r0, e0, r1, e1)
    assert abs(r2 - r0) < 3.5 * np.hypot(e0, e2), (r0, e0, r2, e2)
    # the biased sample's weighted rate is more precise per generated event than the plain one
    assert e2 * np.sqrt(biased["generated_events"]) < e0 * np.sqrt(plain["generated_events"])


def test_closure_bhabha_central_bias(tmp_path):
    """Rate of exactly two good opposite-charge tracks per generated Bhabha: plain ee and the
    weighted ee_central agree; the biased one is the more precise per generated event."""
    def two_tracks(ev):
        q = ev.Track_charge[_good(ev)]
        return ak.to_numpy((ak.num(q) == 2) & (ak.sum(q, axis=1) == 0))

    plain = produce(Request("belle", "ee", 4000, 31, tmp_path / "p"), progress=False)
    biased = produce(Request("belle", "ee_central", 2000, 32, tmp_path / "b"), progress=False)
    r0, e0 = _rate(plain, tmp_path / "p", two_tracks)
    r1, e1 = _rate(biased, tmp_path / "b", two_tracks)
    assert r0 > 0.02 and e0 > 0
    assert abs(r1 - r0) < 3.5 * np.hypot(e0, e1), (r0, e0, r1, e1)
    assert e1 * np.sqrt(2000) < e0 * np.sqrt(4000)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--process", "tautau", "--events", "10", "--filter", "nosuch"], "--filter"),
        (["--process", "sig_tau3mu", "--events", "10", "--filter", "tau3mu"], "--filter"),
        (["--process", "tautau", "--events", "10", "--filter", "tau3mu", "--max-generated", "5"], "--max-generated"),
    ],
)
def test_cli_filter_errors_are_one_line(tmp_path, capsys, args, message):
    from belle_rare.analyses.cli import main

    out = tmp_path / "out"
    code = main(["generate", "--experiment", "belle2", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_filter_writes_the_manifest(tmp_path, capsys):
    from belle_rare.analyses.cli import main

    assert main(["generate", "--experiment", "belle2", "--process", "tautau", "--events", "100", "--filter", "tau3mu",
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "belle2_tautau_filter_tau3mu.json").read_text())
    assert m["events"] == 100 and m["generated_events"] > 100 and m["filter"]["search"] == "tau3mu"
    assert "filter 'tau3mu'" in capsys.readouterr().err


def test_demo_generates_every_plain_process_and_no_biased_variant():
    from belle_rare.analyses.demo import demo_processes
    from belle_rare.configs.processes import load_catalogue

    names = demo_processes()
    catalogue = load_catalogue().processes
    assert "tautau" in names and "ee" in names
    assert "tautau_3prong" not in names and "ee_central" not in names
    assert set(names) == {n for n, p in catalogue.items() if not p.biased and p.in_demo}
    # every background is in the demo (in_demo: false is for signal samples no demo search reads yet)
    assert all(p.in_demo for p in catalogue.values() if p.kind == "background" and not p.biased)


def test_a_rare_filter_generates_in_bounded_batches(monkeypatch):
    """A filter passing 1 in 2000 events: the batches stay at most MAX_FILTER_BATCH events (the first
    estimate here asks for 24,000; one batch of ~10^7 events for a 0.4 % filter took 23 GB), and every
    examined event is counted."""
    from belle_rare.simulation import production

    class Rare:
        """Fake generator: event i passes when i % 2000 == 0 (the filter is replaced below)."""

        def __init__(self):
            self.batches: list[int] = []
            self.first = 0

        def generate(self, n):
            self.batches.append(n)
            ids = np.arange(self.first, self.first + n)
            self.first += n
            return ak.Array({"id": ids})

    monkeypatch.setattr(production, "MAX_FILTER_BATCH", 5000)
    monkeypatch.setattr(production, "passes_filter", lambda truth, spec: ak.to_numpy(truth.id) % 2000 == 0)
    req = Request("belle2", "eemumu", 10, 1, Path("/tmp"), generator_filter=GeneratorFilter(min_charged=3),
                  filter_name="tau3mu", max_generated=10**6)
    gen = Rare()
    truth, generated = production.generate_until_accepted(gen, req, Chunk(0, 10, 1, 0))
    assert len(truth) == 10 and max(gen.batches) <= 5000
    assert generated == sum(gen.batches) >= 9 * 2000 + 1  # every examined event is written or rejected
