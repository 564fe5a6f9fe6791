"""Btag: the other B is tagged, Mbc / deltaE of correct tags, weights = configured efficiencies, fakes."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector import toy_truth

N = 20000


def _bb(name, b_pdg, signal, seed, n=N):
    rng = np.random.default_rng(seed)
    truth = toy_truth.upsilon4s_to_bb(n, b_pdg, rng, signal=signal, experiment=name)
    return truth, simulate_detector(truth, load_detector(name), rng)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_correct_tags_peak_at_the_b_mass(name):
    _, reco = _bb(name, 521, "b", seed=31)
    btag = reco["Btag"]
    assert np.all(ak.to_numpy(ak.num(btag)) == 1)
    tag = btag[:, 0]
    cfg = load_detector(name).tagging
    correct = tag[tag.isSignal == 1]
    assert abs(len(correct) / N - (1 - cfg.misreconstructed_fraction)) < 0.015
    mbc = ak.to_numpy(correct.Mbc)
    assert abs(np.median(mbc) - pdgtab.mass(521)) < 0.001
    lo, hi = np.percentile(mbc, [16, 84])
    assert 0.0015 < (hi - lo) / 2 < 0.006  # a few MeV: beam-energy spread + tag momentum resolution
    delta_e = ak.to_numpy(correct.deltaE)
    assert abs(np.median(delta_e)) < 0.005
    assert abs(np.std(delta_e) / cfg.energy_resolution - 1) < 0.1
    # misreconstructed: broad Mbc inside the stored range, flat deltaE
    wrong = tag[tag.isSignal == 0]
    mbc_wrong = ak.to_numpy(wrong.Mbc)
    assert mbc_wrong.min() >= cfg.mbc_min and np.percentile(mbc_wrong, 16) < 5.25
    de_wrong = ak.to_numpy(wrong.deltaE)
    assert de_wrong.min() >= cfg.delta_e_range.low and de_wrong.max() <= cfg.delta_e_range.high
    assert np.median(ak.to_numpy(correct.sigProb)) > np.median(ak.to_numpy(wrong.sigProb))
    # four-momentum consistent with Mbc (mass ~ m_B for correct tags)
    mass = np.sqrt(np.maximum(ak.to_numpy(correct.E) ** 2 - ak.to_numpy(correct.px) ** 2
                              - ak.to_numpy(correct.py) ** 2 - ak.to_numpy(correct.pz) ** 2, 0))
    assert abs(np.median(mass) - pdgtab.mass(521)) < 0.01


@pytest.mark.parametrize("name", ["belle", "belle2"])
@pytest.mark.parametrize("b_pdg", [521, 511])
def test_weights_are_the_configured_efficiencies(name, b_pdg):
    _, reco = _bb(name, b_pdg, "b", seed=32, n=2000)
    tag = reco["Btag"][:, 0]
    cfg = load_detector(name).tagging
    charged = b_pdg == 521
    correct = cfg.correct_efficiency.charged if charged else cfg.correct_efficiency.neutral
    factor = cfg.data_mc_factor.charged if charged else cfg.data_mc_factor.neutral
    f = cfg.misreconstructed_fraction
    is_signal = ak.to_numpy(tag.isSignal) == 1
    expected = correct * factor * np.where(is_signal, 1 / (1 - f), cfg.misreconstructed_per_correct / f)
    np.testing.assert_allclose(ak.to_numpy(tag.weight), expected, rtol=1e-6)
    # the weighted correctly-reconstructed yield per B Bbar event is the configured efficiency,
    # the misreconstructed one misreconstructed_per_correct times it
    weight = ak.to_numpy(tag.weight)
    correct_yield = np.sum(weight[is_signal]) / len(tag)
    assert abs(correct_yield / (correct * factor) - 1) < 0.06
    wrong_yield = np.sum(weight[~is_signal]) / len(tag)
    assert abs(wrong_yield / (correct * factor * cfg.misreconstructed_per_correct) - 1) < 0.06
    assert np.all(ak.to_numpy(tag.charge) == (-1 if charged else 0))  # the anti-B is the tag


@pytest.mark.parametrize("signal", ["b", "daughter"])
def test_the_other_b_is_tagged(signal):
    _, reco = _bb("belle2", 521, signal, seed=33, n=2000)
    tag = reco["Btag"][:, 0]
    assert np.all(ak.to_numpy(tag.mcIndex) == 2)
    assert np.all(ak.to_numpy(tag.flavour) == -1)


def test_generic_bb_tags_either_b():
    _, reco = _bb("belle2", 511, "none", seed=34, n=4000)
    tag = reco["Btag"][:, 0]
    index = ak.to_numpy(tag.mcIndex)
    assert set(np.unique(index)) == {1, 2}
    assert abs(np.mean(index == 1) - 0.5) < 0.04
    np.testing.assert_array_equal(ak.to_numpy(tag.flavour), np.where(index == 1, 1, -1))


def test_continuum_gets_fake_tags_only_with_enough_tracks():
    rng = np.random.default_rng(35)
    params = load_detector("belle2")
    n = 4000
    one_track = toy_truth.particle_gun(211, np.full(n, 1.0), np.full(n, np.pi / 2), np.zeros(n))
    reco = simulate_detector(one_track, params, rng)
    n_tracks = ak.to_numpy(ak.num(reco["Track"]))
    has_tag = ak.to_numpy(ak.num(reco["Btag"])) == 1
    np.testing.assert_array_equal(has_tag, n_tracks >= params.tagging.fake_min_tracks)
    busy = toy_truth.random_events(n, 20, 5, rng)
    reco = simulate_detector(busy, params, rng)
    tags = ak.flatten(reco["Btag"])
    assert len(tags) > 0.9 * n
    np.testing.assert_allclose(ak.to_numpy(tags.weight), params.tagging.fake_rate_per_event, rtol=1e-6)
    assert np.all(ak.to_numpy(tags.isSignal) == 0) and np.all(ak.to_numpy(tags.mcIndex) == -1)
    mbc = ak.to_numpy(tags.Mbc)
    assert mbc.min() >= params.tagging.mbc_min and np.median(mbc) < 5.27


# ------------------------------------------------------------------------------ constituents
# Small generated B Bbar samples (Pythia generic B decays, ~0.4 s per 1000 events) so that the
# tag B has real descendants; one per experiment / process, shared by the tests below.


@pytest.fixture(scope="module")
def generated():
    from belle_rare.simulation.production import Chunk, Request, make_generator

    samples = {}
    for experiment, process in (("belle2", "charged"), ("belle", "mixed"), ("belle", "sig_kstartautau")):
        req = Request(experiment, process, 1500, 7, None)  # type: ignore[arg-type]
        gen = make_generator(req, Chunk(0, 1500, 7, 0))
        truth = gen.generate(1500)
        gen.close()
        reco = simulate_detector(truth, load_detector(experiment), np.random.default_rng(41))
        samples[(experiment, process)] = (truth, reco)
    return samples


def _ancestry(truth, reco):
    """Per Track / Photon row (flat): event, flat row of its Upsilon(4S) B (-1 if none); per event the tag's B row."""
    from belle_rare.simulation.detector.flat import FlatTruth
    from belle_rare.simulation.detector.tagging import b_ancestor, b_pair_rows

    flat = FlatTruth.from_truth(truth)
    is_b, _ = b_pair_rows(flat)
    n = flat.n_events
    out = {}
    for name in ("Track", "Photon"):
        coll = reco[name]
        event = np.repeat(np.arange(n), ak.to_numpy(ak.num(coll)))
        mc = ak.to_numpy(ak.flatten(coll.mcIndex)).astype(np.int64)
        anc = np.full(len(mc), -1, dtype=np.int64)
        has = mc >= 0
        anc[has] = b_ancestor(flat, flat.global_index(event[has], mc[has]), is_b)
        out[name] = (event, anc)
    btag = reco["Btag"]
    has_tag = ak.to_numpy(ak.num(btag)) == 1
    tag_row = np.full(n, -1, dtype=np.int64)
    tag_index = ak.to_numpy(ak.fill_none(ak.firsts(btag.mcIndex), -1)).astype(np.int64)
    ok = has_tag & (tag_index >= 0)
    tag_row[ok] = flat.global_index(np.flatnonzero(ok), tag_index[ok])
    correct = np.zeros(n, dtype=bool)
    correct[has_tag] = ak.to_numpy(ak.firsts(btag.isSignal))[has_tag] == 1
    return out, tag_row, correct


def _flat(coll, field):
    return ak.to_numpy(ak.flatten(coll[field]))


def _curler_duplicates(tracks, event: np.ndarray) -> np.ndarray:
    """Per Track row: a curler duplicate -- a later row of the same particle with the charge and the
    momentum reversed (simulation/detector/curlers.py)."""
    mc, charge = _flat(tracks, "mcIndex").astype(np.int64), _flat(tracks, "charge")
    p = np.stack([_flat(tracks, c) for c in ("px", "py", "pz")], axis=1)
    order = np.lexsort((np.arange(len(mc)), mc, event))  # by event, particle, row
    out = np.zeros(len(mc), bool)
    for lag in range(1, 4):  # a particle has a few rows at most (a conversion's e+ e- and their duplicates)
        a, b = order[:-lag], order[lag:]  # b is the later row
        same = (event[a] == event[b]) & (mc[a] == mc[b]) & (mc[a] >= 0)
        cos = np.sum(p[a] * p[b], axis=1) / np.maximum(np.linalg.norm(p[a], axis=1) * np.linalg.norm(p[b], axis=1), 1e-12)
        out[b[same & (charge[a] == -charge[b]) & (cos < -0.99)]] = True
    return out


@pytest.mark.parametrize("key", [("belle2", "charged"), ("belle", "mixed")])
def test_correct_tags_use_exactly_the_tag_b_descendants(generated, key):
    truth, reco = generated[key]
    rows, tag_row, correct = _ancestry(truth, reco)
    cfg = load_detector(key[0]).tagging.constituents
    # tracks: every flagged track of a correct tag descends from the tag B ...
    t_event, t_anc = rows["Track"]
    t_flag = _flat(reco["Track"], "inTag") == 1
    in_correct = correct[t_event]
    assert t_flag[in_correct].sum() > 500
    assert np.all(t_anc[t_flag & in_correct] == tag_row[t_event[t_flag & in_correct]])
    # ... and every usable tag-B track is flagged (correct tags drop photons only), except the curler
    # duplicates (Belle: a later row of the same particle, simulation/detector/curlers.py), added after the
    # tag and never in it
    usable = (np.abs(_flat(reco["Track"], "dr")) < cfg.track_max_dr) & (np.abs(_flat(reco["Track"], "dz")) < cfg.track_max_dz)
    own = in_correct & (t_anc == tag_row[t_event])
    duplicate = _curler_duplicates(reco["Track"], t_event)
    assert (key[0] == "belle") == bool(duplicate.any())
    assert np.all(t_flag[own & usable & ~duplicate])
    assert not np.any(t_flag[duplicate])
    # photons: flagged ones descend from the tag B and are true photons
    g_event, g_anc = rows["Photon"]
    g_flag = _flat(reco["Photon"], "inTag") == 1
    g_correct = correct[g_event]
    assert g_flag[g_correct].sum() > 300
    assert np.all(g_anc[g_flag & g_correct] == tag_row[g_event[g_flag & g_correct]])
    assert np.all(_flat(reco["Photon"], "mcPDG")[g_flag & g_correct] == 22)
    # and above the FEI / goodBelleGamma energy cut of their region
    energy, region = _flat(reco["Photon"], "E"), _flat(reco["Photon"], "clusterReg")
    cut = np.select([region == 1, region == 2, region == 3],
                    [cfg.photon_min_energy.forward, cfg.photon_min_energy.barrel, cfg.photon_min_energy.backward], np.inf)
    assert np.all(energy[g_flag] > cut[g_flag])


@pytest.mark.parametrize("key", [("belle2", "charged"), ("belle", "mixed")])
def test_split_off_like_clusters_of_the_tag_b_are_never_tag_photons(generated, key):
    """Clusters whose true species is not a photon (unmatched hadrons, K_L, split-offs) stay in the ROE."""
    truth, reco = generated[key]
    rows, tag_row, correct = _ancestry(truth, reco)
    g_event, g_anc = rows["Photon"]
    g_flag = _flat(reco["Photon"], "inTag") == 1
    hadronic = (_flat(reco["Photon"], "mcPDG") != 22) & correct[g_event] & (g_anc == tag_row[g_event])
    hadronic &= _flat(reco["Photon"], "E") > 0.2  # well above every precut: only the species keeps them out
    assert hadronic.sum() > 20  # the sample has such clusters from the tag B ...
    assert not np.any(g_flag[hadronic])  # ... and none is used by a correct tag


@pytest.mark.parametrize("key", [("belle2", "charged"), ("belle", "mixed")])
def test_partial_tags_miss_one_photon_at_the_configured_rate(generated, key):
    truth, reco = generated[key]
    rows, tag_row, correct = _ancestry(truth, reco)
    cfg = load_detector(key[0]).tagging.constituents
    g_event, g_anc = rows["Photon"]
    energy, region = _flat(reco["Photon"], "E"), _flat(reco["Photon"], "clusterReg")
    cut = np.select([region == 1, region == 2, region == 3],
                    [cfg.photon_min_energy.forward, cfg.photon_min_energy.barrel, cfg.photon_min_energy.backward], np.inf)
    own = correct[g_event] & (g_anc == tag_row[g_event]) & (_flat(reco["Photon"], "mcPDG") == 22) & (energy > cut)
    missed = own & (_flat(reco["Photon"], "inTag") == 0)
    n = len(tag_row)
    n_missed = np.bincount(g_event[missed], minlength=n)
    with_photon = np.bincount(g_event[own], minlength=n) > 0
    assert n_missed.max() <= 1  # at most one (the softest) photon per tag
    rate = n_missed[with_photon].mean()
    assert abs(rate - cfg.partial_fraction) < 4 * np.sqrt(cfg.partial_fraction / with_photon.sum()) + 0.01
    # the missed one is the softest own usable photon of its tag
    softest = np.full(n, np.inf)
    np.minimum.at(softest, g_event[own], energy[own])
    np.testing.assert_allclose(energy[missed], softest[g_event[missed]])


@pytest.mark.parametrize("key", [("belle2", "charged"), ("belle", "mixed")])
def test_misreconstructed_tags_take_real_objects_of_both_b(generated, key):
    truth, reco = generated[key]
    rows, tag_row, correct = _ancestry(truth, reco)
    has_tag = ak.to_numpy(ak.num(reco["Btag"])) == 1
    wrong = has_tag & ~correct
    for name in ("Track", "Photon"):
        event, anc = rows[name]
        flag = _flat(reco[name], "inTag") == 1
        in_wrong = flag & wrong[event]
        own = anc == tag_row[event]
        other_b = (anc >= 0) & ~own
        assert in_wrong.sum() > 300
        assert 0.4 < (in_wrong & own).sum() / in_wrong.sum() < 0.95
        assert (in_wrong & other_b).sum() > 30  # signal-side objects lost to the tag


@pytest.mark.parametrize("key", [("belle2", "charged"), ("belle", "mixed")])
def test_counts_and_rest_of_event_are_consistent(generated, key):
    _, reco = generated[key]
    btag, tracks, photons = reco["Btag"], reco["Track"], reco["Photon"]
    for coll in (tracks, photons):
        flags = _flat(coll, "inTag")
        assert flags.dtype == np.int32 and set(np.unique(flags)) <= {0, 1}
    n_tag_tracks = ak.to_numpy(ak.sum(tracks.inTag, axis=1))
    n_tag_photons = ak.to_numpy(ak.sum(photons.inTag, axis=1))
    has_tag = ak.to_numpy(ak.num(btag)) == 1
    np.testing.assert_array_equal(n_tag_tracks[has_tag], ak.to_numpy(btag.nTracks[has_tag][:, 0]))
    np.testing.assert_array_equal(n_tag_photons[has_tag], ak.to_numpy(btag.nPhotons[has_tag][:, 0]))
    assert np.all(n_tag_tracks[~has_tag] == 0) and np.all(n_tag_photons[~has_tag] == 0)
    # ROE = everything not flagged: a partition of each event's tracks and photons
    roe_tracks = tracks[tracks.inTag == 0]
    np.testing.assert_array_equal(ak.to_numpy(ak.num(roe_tracks)) + n_tag_tracks, ak.to_numpy(ak.num(tracks)))
    roe_photons = photons[photons.inTag == 0]
    np.testing.assert_array_equal(ak.to_numpy(ak.num(roe_photons)) + n_tag_photons, ak.to_numpy(ak.num(photons)))
    # misreconstructed tags carry their charge in their tracks (balanced where the event allows)
    charge_sum = ak.to_numpy(ak.sum(tracks.charge * tracks.inTag, axis=1))
    wrong = has_tag & (ak.to_numpy(ak.fill_none(ak.firsts(btag.isSignal), 1)) == 0)
    tag_charge = ak.to_numpy(ak.fill_none(ak.firsts(btag.charge), 0))
    assert np.mean(charge_sum[wrong] == tag_charge[wrong]) > 0.95
    assert np.all(np.abs(charge_sum[wrong]) <= 1)


def test_correct_tags_leave_the_signal_side_in_the_rest_of_the_event(generated):
    """B0 -> K*0 tau tau: with a correct tag no signal-B track or photon is flagged; wrong tags steal some."""
    truth, reco = generated[("belle", "sig_kstartautau")]
    rows, tag_row, correct = _ancestry(truth, reco)
    has_tag = ak.to_numpy(ak.num(reco["Btag"])) == 1
    stolen_in_wrong = 0
    for name in ("Track", "Photon"):
        event, anc = rows[name]
        flag = _flat(reco[name], "inTag") == 1
        signal_side = (anc >= 0) & (anc != tag_row[event])
        assert signal_side[correct[event]].sum() > 500
        assert not np.any(flag & signal_side & correct[event])
        stolen_in_wrong += (flag & signal_side & has_tag[event] & ~correct[event]).sum()
    assert stolen_in_wrong > 50


def test_fake_tags_use_tracks_of_their_event():
    rng = np.random.default_rng(36)
    params = load_detector("belle2")
    busy = toy_truth.random_events(2000, 20, 5, rng)
    reco = simulate_detector(busy, params, rng)
    has_tag = ak.to_numpy(ak.num(reco["Btag"])) == 1
    n_tag_tracks = ak.to_numpy(ak.sum(reco["Track"].inTag, axis=1))
    cfg = params.tagging.constituents
    usable = (reco["Track"].dr < cfg.track_max_dr) & (abs(reco["Track"].dz) < cfg.track_max_dz)
    n_usable = ak.to_numpy(ak.sum(usable, axis=1))
    floor = np.minimum(n_usable, params.tagging.fake_min_tracks)
    # the floor holds unless charge balancing had to drop a track
    assert np.mean(n_tag_tracks[has_tag] >= floor[has_tag]) > 0.8
    assert np.all(n_tag_tracks[has_tag] <= n_usable[has_tag])
    assert np.mean(n_tag_tracks[has_tag] >= 2) > 0.9
    assert np.all(n_tag_tracks[~has_tag] == 0)


def test_balance_charge_reaches_the_target_with_the_picked_multiplicity():
    from belle_rare.simulation.detector.tagging import balance_charge

    # event 0: picked + + + (target 0 -> 4 tracks: the two first +, and both -, the picked first)
    # event 1: picked + (target -1, no - in the pool: trimmed to |sum| <= 1, keeps the +)
    # event 2: picked + - - (target -1: already there)
    event = np.array([0, 0, 0, 0, 0, 1, 2, 2, 2, 2])
    charge = np.array([1, 1, 1, -1, -1, 1, 1, -1, -1, 1])
    picked = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 0], dtype=bool)
    key = np.array([0.1, 0.2, 0.3, 0.5, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    keep = balance_charge(event, charge, picked, key, np.array([0, -1, -1]), 3)
    np.testing.assert_array_equal(keep, [1, 1, 0, 1, 1, 1, 1, 1, 1, 0])


def test_belle_purity_reproduces_the_neurobayes_statements():
    """arXiv:1102.3876: ~25 % purity at full efficiency (the classical algorithm's purity, at about
    twice its efficiency) and nearly 90 % at about half the efficiency. Purity of the weighted tags
    in the K*0 tau tau signal window (ln o_NB > -7, |deltaE| < 0.06 GeV, 5.275 < Mbc < 5.290 GeV),
    B Bbar and continuum mixed by cross section (toy truth: the tag kinematics are parametric)."""
    from belle_rare.configs.experiment import load_experiment

    params = load_detector("belle")
    exp = load_experiment("belle")
    xs = exp.cross_sections_nb
    f_charged = exp.upsilon4s_charged_fraction
    n = 20000
    parts = []  # (sigProb, isSignal, weight x cross section / events) of candidates in the window
    for b_pdg, sigma in ((521, xs["upsilon4s"] * f_charged), (511, xs["upsilon4s"] * (1 - f_charged))):
        _, reco = _bb("belle", b_pdg, "none", seed=37 + b_pdg, n=n)
        parts.append((ak.flatten(reco["Btag"]), sigma / n))
    continuum = toy_truth.random_events(n, 20, 5, np.random.default_rng(38), experiment="belle")
    reco = simulate_detector(continuum, params, np.random.default_rng(39))
    parts.append((ak.flatten(reco["Btag"]), sum(xs[k] for k in ("uu", "dd", "ss", "cc")) / n))

    def yields(cut):
        good = bad = 0.0
        for tags, scale in parts:
            mbc, de, prob = (ak.to_numpy(tags[k]) for k in ("Mbc", "deltaE", "sigProb"))
            sel = (np.log(prob) > -7) & (np.abs(de) < 0.06) & (mbc > 5.275) & (mbc < 5.290) & (prob > cut)
            w = ak.to_numpy(tags.weight)[sel] * scale
            signal = ak.to_numpy(tags.isSignal)[sel] == 1
            good, bad = good + w[signal].sum(), bad + w[~signal].sum()
        return good, good / (good + bad)

    full, purity = yields(0.0)
    assert abs(purity - 0.25) < 0.06
    cuts = np.linspace(0.5, 0.95, 46)
    effs = np.array([yields(c)[0] for c in cuts])
    half = cuts[np.argmin(np.abs(effs - full / 2))]
    assert abs(yields(half)[1] - 0.90) < 0.05


def test_displaced_k_short_daughters_of_the_tag_b_are_used(generated):
    """The FEI takes K_S (and Lambda) daughters from the V0 lists: they pass although they fail |dr| < 2 cm."""
    truth, reco = generated[("belle2", "charged")]
    rows, tag_row, correct = _ancestry(truth, reco)
    event, anc = rows["Track"]
    mc = _flat(reco["Track"], "mcIndex").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(truth.mc)))])
    mother = ak.to_numpy(ak.flatten(truth.mc.mother))[np.where(mc >= 0, offsets[event] + mc, 0)]
    mother_pdg = ak.to_numpy(ak.flatten(truth.mc.pdg))[np.where(mother >= 0, offsets[event] + mother, 0)]
    from_ks = (mc >= 0) & (mother >= 0) & (np.abs(mother_pdg) == 310)
    from_v0 = (mc >= 0) & (mother >= 0) & np.isin(np.abs(mother_pdg), (310, 3122))
    far = np.abs(_flat(reco["Track"], "dr")) >= 2.0
    own = correct[event] & (anc == tag_row[event])
    assert (own & far & from_ks).sum() > 5
    assert np.all(_flat(reco["Track"], "inTag")[own & far & from_ks] == 1)
    assert np.all(_flat(reco["Track"], "inTag")[own & far & ~from_v0] == 0)  # other displaced tracks are not
