"""Tracking response: resolution formula, acceptance, species, impact parameters, beam background."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector import toy_truth

N = 20000


def _tracks_of(reco, index=0):
    """Flat tracks matched to truth particle ``index`` (drops beam-background tracks)."""
    tracks = reco["Track"]
    return ak.flatten(tracks[tracks.mcIndex == index])


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_momentum_resolution_at_1_gev(name):
    rng = np.random.default_rng(11)
    params = load_detector(name)
    truth = toy_truth.particle_gun(211, np.full(N, 1.0), np.full(N, np.pi / 2), rng.uniform(-np.pi, np.pi, N), experiment=name)
    tracks = _tracks_of(simulate_detector(truth, params, rng))
    pt = np.hypot(ak.to_numpy(tracks.px), ak.to_numpy(tracks.py))
    res = params.tracking.momentum_resolution
    beta = 1.0 / np.sqrt(1.0 + pdgtab.mass(211) ** 2)
    expected = np.hypot(res.pt_term * 1.0, res.beta_term / beta)
    measured = np.std(pt - 1.0)
    assert abs(measured / expected - 1.0) < 0.05
    # E uses the pion hypothesis
    p = np.sqrt(ak.to_numpy(tracks.px) ** 2 + ak.to_numpy(tracks.py) ** 2 + ak.to_numpy(tracks.pz) ** 2)
    np.testing.assert_allclose(ak.to_numpy(tracks.E), np.sqrt(p**2 + pdgtab.mass(211) ** 2), rtol=1e-5)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_polar_acceptance_and_plateau_efficiency(name):
    rng = np.random.default_rng(12)
    params = load_detector(name)
    n = 4000
    for theta_deg, inside in ((10.0, False), (16.0, False), (30.0, True), (90.0, True), (145.0, True), (152.0, False), (165.0, False)):
        truth = toy_truth.particle_gun(-13, np.full(n, 1.5), np.full(n, np.radians(theta_deg)), rng.uniform(-np.pi, np.pi, n), experiment=name)
        found = len(_tracks_of(simulate_detector(truth, params, rng))) / n
        if inside:
            assert abs(found - params.tracking.efficiency) < 4 * np.sqrt(0.02 * 0.98 / n) + 0.005
        else:
            assert found == 0.0


def test_low_pt_turn_on_and_displaced_fall_off():
    rng = np.random.default_rng(13)
    params = load_detector("belle2")
    n = 4000
    truth = toy_truth.particle_gun(211, np.full(n, 0.03), np.full(n, np.pi / 2), np.zeros(n))
    assert len(_tracks_of(simulate_detector(truth, params, rng))) == 0  # below pt_min
    truth = toy_truth.particle_gun(211, np.full(n, 0.1), np.full(n, np.pi / 2), np.zeros(n))
    low = len(_tracks_of(simulate_detector(truth, params, rng))) / n
    assert 0.3 < low < params.tracking.efficiency - 0.05
    effs = []
    for radius in (1.0, 40.0, 79.0):
        vertex = np.tile([radius, 0.0, 0.0], (n, 1))
        truth = toy_truth.particle_gun(211, np.full(n, 1.0), np.full(n, np.pi / 2), np.zeros(n), vertex=vertex)
        effs.append(len(_tracks_of(simulate_detector(truth, params, rng))) / n)
    assert effs[0] > 0.95 and effs[0] > effs[1] > effs[2] and effs[2] < 0.05


def test_only_charged_final_state_particles_make_tracks():
    rng = np.random.default_rng(14)
    params = load_detector("belle2")
    n = 2000
    for pdg in (22, 130, 2112, 12, 111):
        truth = toy_truth.particle_gun(pdg, np.full(n, 1.0), np.full(n, np.pi / 2), rng.uniform(-np.pi, np.pi, n))
        tracks = _tracks_of(simulate_detector(truth, params, rng))
        # photons make tracks only through conversions in the material (material.py): e+- pairs, ~3 % of photons
        assert np.all(np.abs(ak.to_numpy(tracks.mcPDG)) == 11) and len(tracks) < 0.07 * n
        assert pdg == 22 or len(tracks) == 0
    for pdg in (11, -13, 211, -321, 2212):
        truth = toy_truth.particle_gun(pdg, np.full(n, 1.0), np.full(n, np.pi / 2), rng.uniform(-np.pi, np.pi, n))
        tracks = _tracks_of(simulate_detector(truth, params, rng))
        assert len(tracks) > 0.9 * n
        assert np.all(ak.to_numpy(tracks.mcPDG) == pdg)
        assert np.all(ak.to_numpy(tracks.charge) == int(pdgtab.properties(pdg)[1]))


def test_impact_parameters():
    rng = np.random.default_rng(15)
    params = load_detector("belle")
    # prompt 2 GeV tracks at 90 deg: dr spread = the resolution formula
    truth = toy_truth.particle_gun(211, np.full(N, 2.0), np.full(N, np.pi / 2), rng.uniform(-np.pi, np.pi, N))
    tracks = _tracks_of(simulate_detector(truth, params, rng))
    res = params.tracking.dr_resolution
    beta = 2.0 / np.hypot(2.0, pdgtab.mass(211))
    expected = np.hypot(res.constant, res.multiple_scattering / (2.0 * beta))
    assert abs(np.std(ak.to_numpy(tracks.dr)) / expected - 1) < 0.05
    # a track born 5 cm downstream along z has dz = 5 cm; one born 1 cm off-axis, perpendicular, dr = +-1 cm
    n = 2000
    vertex = np.tile([0.0, 1.0, 5.0], (n, 1))
    truth = toy_truth.particle_gun(211, np.full(n, 1.0), np.full(n, np.pi / 2), np.zeros(n), vertex=vertex)
    tracks = _tracks_of(simulate_detector(truth, params, rng))
    assert abs(np.median(ak.to_numpy(tracks.dz)) - 5.0) < 0.01
    assert abs(abs(np.median(ak.to_numpy(tracks.dr))) - 1.0) < 0.01
    hits = ak.to_numpy(tracks.nCDCHits)
    assert np.all(hits <= params.tracking.cdc.n_layers) and np.median(hits) > 0.8 * params.tracking.cdc.n_layers


def test_beam_background_tracks():
    rng = np.random.default_rng(16)
    params = load_detector("belle2")
    n = 20000
    truth = toy_truth.particle_gun(12, np.full(n, 1.0), np.full(n, np.pi / 2), np.zeros(n))  # a neutrino: no signal
    reco = simulate_detector(truth, params, rng)
    tracks = ak.flatten(reco["Track"])
    assert np.all(ak.to_numpy(tracks.mcIndex) == -1) and np.all(ak.to_numpy(tracks.mcPDG) == 0)
    cfg = params.beam_background.tracks
    assert abs(len(tracks) / n - cfg.mean) < 5 * np.sqrt(cfg.mean / n)
    assert np.median(np.abs(ak.to_numpy(tracks.dz))) > 0.3 * cfg.dz_sigma
    assert np.all(np.hypot(ak.to_numpy(tracks.px), ak.to_numpy(tracks.py)) > 0.5 * cfg.pt_min)
