"""pi0 -> gamma gamma and V0 (K_S, Lambda, displaced scalar, fakes) reconstruction."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from particle import Particle

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector import toy_truth

N = 20000


def _decays(name, parent, daughters, flight, seed, parent_mass=None, p_range=(0.3, 2.5)):
    rng = np.random.default_rng(seed)
    truth = toy_truth.two_body_decays(
        parent, daughters, rng.uniform(*p_range, N), np.arccos(rng.uniform(-0.6, 0.8, N)),
        rng.uniform(-np.pi, np.pi, N), flight, rng, experiment=name, parent_mass=parent_mass,
    )
    return truth, simulate_detector(truth, load_detector(name), rng)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_pi0_mass_peak(name):
    _, reco = _decays(name, 111, (22, 22), None, seed=21, p_range=(0.2, 2.0))
    pi0 = ak.flatten(reco["Pi0"])
    true = pi0[pi0.mcIsPi0 == 1]
    assert len(true) > 0.5 * N
    mass = ak.to_numpy(true.M)
    lo, hi = np.percentile(mass, [16, 84])
    assert abs(np.median(mass) - pdgtab.mass(111)) < 0.005
    assert 0.004 < (hi - lo) / 2 < 0.010
    window = load_detector(name).pi0.mass_window
    assert np.all((ak.to_numpy(pi0.M) > window.low) & (ak.to_numpy(pi0.M) < window.high))
    # photon indices point at the two photons of the decay
    photons = reco["Photon"]
    first = reco["Pi0"][reco["Pi0"].mcIsPi0 == 1]
    g1 = photons[first.gamma1Index]
    g2 = photons[first.gamma2Index]
    assert ak.all(g1.mcIndex != g2.mcIndex) and ak.all((g1.mcIndex > 0) & (g2.mcIndex > 0))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(g1.E + g2.E)), ak.to_numpy(ak.flatten(first.E)), rtol=1e-5)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_kshort_v0(name):
    rng = np.random.default_rng(22)
    ks_ctau = Particle.from_pdgid(310).ctau / 10.0  # mm -> cm; flight drawn with a typical beta*gamma ~ 1.5
    truth, reco = _decays(name, 310, (211, -211), rng.exponential(1.5 * ks_ctau, N), seed=23)
    v0 = reco["V0"]
    ks = v0[v0.mcPDG == 310]
    flat = ak.flatten(ks)
    assert 0.5 < len(flat) / N < 0.95
    assert np.all(ak.to_numpy(flat.mcIndex) == 0)
    mass = ak.to_numpy(flat.M)
    lo, hi = np.percentile(mass, [16, 84])
    assert abs(np.median(mass) - pdgtab.mass(310)) < 0.001
    assert 0.001 < (hi - lo) / 2 < 0.006
    # vertex near the true decay point
    has = ak.num(ks) > 0
    first = ks[has][:, 0]
    decay = truth.mc[has][:, 1]
    for c in "xyz":
        residual = ak.to_numpy(first[c] - decay[c])
        assert abs(np.median(residual)) < 0.005 and np.percentile(np.abs(residual), 68) < 0.1
    true_flight = np.sqrt(ak.to_numpy(decay.x) ** 2 + ak.to_numpy(decay.y) ** 2 + ak.to_numpy(decay.z) ** 2)
    assert np.median(np.abs(ak.to_numpy(first.flightDistance) - true_flight)) < 0.05
    # first daughter is the positive track
    tracks = reco["Track"][has]
    assert ak.all(tracks[first.trackIndex1[:, None]].charge == 1)
    assert ak.all(tracks[first.trackIndex2[:, None]].charge == -1)


def test_displaced_scalar_and_lambda_use_the_common_mother():
    _, reco = _decays("belle2", 9000025, (13, -13), np.full(N, 10.0), seed=24, parent_mass=1.0)
    v0 = ak.flatten(reco["V0"])
    assert np.sum(ak.to_numpy(v0.mcPDG) == 9000025) > 0.5 * N
    _, reco = _decays("belle2", 3122, (2212, -211), np.full(N, 5.0), seed=25)
    lam = ak.flatten(reco["V0"])
    lam = lam[lam.mcPDG == 3122]
    assert len(lam) > 0.5 * N
    assert np.all(ak.to_numpy(lam.M) < pdgtab.mass(3122))  # pi pi hypothesis


def test_prompt_pairs_are_not_v0_but_fakes_occur_at_the_configured_rate():
    _, reco = _decays("belle2", 113, (211, -211), None, seed=26)  # rho0, prompt
    v0 = ak.flatten(reco["V0"])
    # e+e- (photon-hypothesis) fits of prompt pairs are rare: the tracks must meet outside the beam pipe
    assert np.sum(ak.to_numpy(v0.hypothesis) == 22) < 0.002 * N
    v0 = v0[v0.hypothesis == 310]
    assert np.all(ak.to_numpy(v0.mcIndex) == -1) and np.all(ak.to_numpy(v0.mcPDG) == 0)
    rate = load_detector("belle2").v0.fake_rate_per_event
    assert 0.7 * rate < len(v0) / N < 1.1 * rate
    # fake vertices of prompt tracks sit near the IP, with poor p-values
    assert np.median(np.abs(ak.to_numpy(v0.flightDistance))) < 1.0
    assert np.median(ak.to_numpy(v0.pValue)) < 0.3
