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
    expected = correct * factor / (1 - cfg.misreconstructed_fraction)
    np.testing.assert_allclose(ak.to_numpy(tag.weight), expected, rtol=1e-6)
    # the weighted correctly-reconstructed yield per B Bbar event is the configured efficiency
    correct_yield = np.sum(ak.to_numpy(tag.weight) * ak.to_numpy(tag.isSignal)) / len(tag)
    assert abs(correct_yield / (correct * factor) - 1) < 0.06
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
