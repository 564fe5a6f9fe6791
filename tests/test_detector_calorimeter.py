"""ECL and KLM response: resolution, regions and gaps, threshold, track-cluster matching, K_L, background."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import toy_truth
from belle_rare.simulation.detector.material import pair_cross_section_ratio

N = 20000


def _gun(pdg, momentum, theta_deg, name="belle2", seed=0, n=N):
    rng = np.random.default_rng(seed)
    truth = toy_truth.particle_gun(
        pdg, np.full(n, momentum), np.full(n, np.radians(theta_deg)), rng.uniform(-np.pi, np.pi, n), experiment=name
    )
    return simulate_detector(truth, load_detector(name), rng)


def _signal(collection):
    return ak.flatten(collection[collection.mcIndex == 0])


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_photon_energy_resolution_in_the_barrel(name):
    photons = _signal(_gun(22, 1.0, 90.0, name, seed=1)["Photon"])
    # photons converted in the material (material.py) leave e+- clusters instead: unconverted ones only
    photons = photons[photons.mcPDG == 22]
    cfg = load_detector(name).calorimeter
    r = cfg.energy_resolution
    expected = np.sqrt(r.noise**2 + r.stochastic**2 + r.constant**2)  # at E = 1 GeV
    energy = ak.to_numpy(photons.E)
    assert abs(np.std(energy - 1.0) / expected - 1) < 0.05
    unconverted = np.exp(-7.0 / 9.0 * sum(layer.thickness_x0 * pair_cross_section_ratio(np.array(1.0), layer.atomic_number)
                                           for layer in load_detector(name).material.layers))
    assert abs(len(energy) / N - cfg.photon_efficiency * unconverted) < 0.01
    assert np.all(ak.to_numpy(photons.clusterReg) == 2)
    assert abs(np.mean(ak.to_numpy(photons.clusterE9E21)) - 0.95) < 0.02
    # massless, pointing from the IP
    p = np.sqrt(ak.to_numpy(photons.px) ** 2 + ak.to_numpy(photons.py) ** 2 + ak.to_numpy(photons.pz) ** 2)
    np.testing.assert_allclose(p, energy, rtol=1e-5)


def test_regions_gaps_and_acceptance():
    cfg = load_detector("belle2").calorimeter
    for theta, region in ((20.0, 1), (90.0, 2), (140.0, 3), (31.8, 11), (129.7, 13)):
        photons = _signal(_gun(22, 1.0, theta, seed=2, n=4000)["Photon"])
        # photons converted in the material leave e+- / brems clusters that can cross a region boundary
        photons = photons[photons.mcPDG == 22]
        assert np.all(ak.to_numpy(photons.clusterReg) == region), theta
        if region in (11, 13):
            layers = [layer for layer in load_detector("belle2").material.layers
                      if layer.theta_range_deg.low <= theta <= layer.theta_range_deg.high]
            unconverted = np.exp(-7.0 / 9.0 * sum(
                layer.thickness_x0 * pair_cross_section_ratio(np.array(1.0), layer.atomic_number) for layer in layers
            ) / np.sin(np.radians(theta)))
            assert abs(len(photons) / 4000 - cfg.photon_efficiency * cfg.gap.efficiency * unconverted) < 0.03
            assert abs(np.median(ak.to_numpy(photons.E)) - cfg.gap.energy_scale) < 0.02
    for theta in (8.0, 160.0):
        assert len(_signal(_gun(22, 1.0, theta, seed=3, n=2000)["Photon"])) == 0


def test_cluster_threshold():
    cfg = load_detector("belle2").calorimeter
    photons = _signal(_gun(22, 0.5 * cfg.cluster_threshold, 90.0, seed=4, n=4000)["Photon"])
    assert len(photons) == 0


def test_track_clusters_by_species():
    reco = _gun(11, 2.0, 90.0, seed=5)
    electrons = _signal(reco["Track"])
    eop = ak.to_numpy(electrons.EoverP)
    assert 0.95 < np.median(eop) < 1.01
    np.testing.assert_allclose(ak.to_numpy(electrons.clusterE), eop * np.sqrt(
        ak.to_numpy(electrons.px) ** 2 + ak.to_numpy(electrons.py) ** 2 + ak.to_numpy(electrons.pz) ** 2), rtol=1e-4)
    # matched clusters do not appear as photons: the electron's photons are its brems photons (material.py),
    # P(k > k0) = sum t/ln2 (ln(E/k0) - Euler gamma) for the Bethe-Heitler spectrum of thin layers
    t = sum(layer.thickness_x0 for layer in load_detector("belle2").material.layers)
    k0 = load_detector("belle2").calorimeter.cluster_threshold
    brems = N * t / np.log(2.0) * (np.log(2.0 / k0) - np.euler_gamma) * load_detector("belle2").calorimeter.photon_efficiency
    assert abs(len(_signal(reco["Photon"])) / brems - 1) < 0.2
    muons = _signal(_gun(13, 2.0, 90.0, seed=6)["Track"])
    mip = load_detector("belle2").calorimeter.mip
    assert abs(np.median(ak.to_numpy(muons.clusterE)) - mip.mean) < 0.02
    assert np.median(ak.to_numpy(muons.EoverP)) < 0.2
    pions = _signal(_gun(211, 2.0, 90.0, seed=7)["Track"])
    showers = np.mean(ak.to_numpy(pions.clusterE) > 0.4)
    assert 0.3 < showers < 0.6
    # curlers below the barrel's reach leave no cluster
    slow = _signal(_gun(211, 0.2, 90.0, seed=8, n=4000)["Track"])
    assert np.all(ak.to_numpy(slow.clusterE) == 0)


def test_klong_clusters():
    params = load_detector("belle2")
    reco = _gun(130, 2.5, 90.0, seed=9)
    klm = _signal(reco["KLMCluster"])
    expected = params.klm.clusters.klong_efficiency(np.array([2.5]))[0]
    assert abs(len(klm) / N - expected) < 4 * np.sqrt(expected * (1 - expected) / N)
    assert np.all(ak.to_numpy(klm.mcPDG) == 130)
    layers = ak.to_numpy(klm.layers)
    assert np.all((layers >= 1) & (layers <= params.klm.n_layers))
    assert np.all(ak.to_numpy(klm.innermostLayer) + layers - 1 <= params.klm.n_layers)
    assert abs(np.median(ak.to_numpy(klm.theta)) - np.pi / 2) < 0.01
    ecl = _signal(reco["Photon"])
    assert abs(len(ecl) / N - params.calorimeter.klong.probability) < 0.03
    assert np.mean(ak.to_numpy(ecl.clusterE9E21)) < 0.8  # hadronic showers are wide


def test_beam_background_photons():
    params = load_detector("belle2")
    reco = _gun(12, 1.0, 90.0, seed=10)
    photons = ak.flatten(reco["Photon"])
    cfg = params.beam_background.photons
    assert np.all(ak.to_numpy(photons.mcIndex) == -1) and np.all(ak.to_numpy(photons.mcPDG) == 0)
    # a few low-energy clusters fall below threshold after smearing, none are lost otherwise
    assert 0.85 * cfg.mean < len(photons) / N < 1.01 * cfg.mean
    region = ak.to_numpy(photons.clusterReg)
    assert np.mean((region == 1) | (region == 3)) > 0.7
    timing = np.abs(ak.to_numpy(photons.clusterTiming))
    assert np.median(timing) > 10 * params.calorimeter.timing.resolution.constant
