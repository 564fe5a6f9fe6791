"""Material in front of the CDC: conversion radii and probability, brems energy loss, truth links, V0s."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import toy_truth
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.material import (
    ELECTRON_MASS,
    convert_photons,
    pair_cross_section_ratio,
    pair_energy_fraction,
    radiate_electrons,
)
from belle_rare.simulation.detector.params import Material, MaterialLayer, Range

N = 200_000


def _gun(pdg: int, n: int, energy: float, theta: float, rng: np.random.Generator) -> Particles:
    """``n`` particles (one per event) from the origin with energy ``energy`` at polar angle ``theta``."""
    mass = 0.0 if pdg == 22 else ELECTRON_MASS
    p = np.sqrt(energy**2 - mass**2)
    phi = rng.uniform(-np.pi, np.pi, n)
    zero = np.zeros(n)
    return Particles(
        event=np.arange(n), mc_index=np.zeros(n, np.int32), mc_pdg=np.full(n, pdg, np.int32),
        pdg=np.full(n, pdg, np.int32), mother=np.full(n, -1, np.int32),
        charge=np.full(n, 0.0 if pdg == 22 else -1.0), mass=np.full(n, mass),
        px=p * np.sin(theta) * np.cos(phi), py=p * np.sin(theta) * np.sin(phi), pz=np.full(n, p * np.cos(theta)),
        E=np.full(n, energy), x=zero, y=zero.copy(), z=zero.copy(), background=np.zeros(n, bool),
    )


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_conversions_sit_on_the_layers_with_the_bethe_heitler_probability(name):
    cfg = load_detector(name).material
    rng = np.random.default_rng(1)
    # 20 GeV: the high-energy limit of the pair cross section
    out = convert_photons(_gun(22, N, 20.0, np.pi / 2, rng), cfg, rng)
    electrons = np.abs(out.pdg) == 11
    n_conv = int(electrons.sum()) // 2
    assert np.sum(out.pdg == 22) == N - n_conv  # converted photons are gone, two electrons each

    # total probability at 90 deg: 1 - exp(-7/9 sum t/X0); ~ 7/9 sum t/X0 for thin layers (PDG)
    t = np.array([layer.thickness_x0 for layer in cfg.layers])
    expected = 1.0 - np.exp(-7.0 / 9.0 * t.sum())
    assert abs(expected - 7.0 / 9.0 * t.sum()) < 0.03 * expected
    sigma = np.sqrt(N * expected * (1 - expected))
    assert abs(n_conv - N * expected) < 4 * sigma

    # vertex radii: exactly at the layer radii, each layer with its own share
    radius = np.hypot(out.x[electrons], out.y[electrons])
    radii = np.array([layer.radius for layer in cfg.layers])
    nearest = np.abs(radius[:, None] - radii[None, :]).argmin(axis=1)
    assert np.allclose(radius, radii[nearest], atol=1e-6)
    per_layer = np.bincount(nearest, minlength=len(radii)) / 2
    survive = np.exp(-7.0 / 9.0 * np.concatenate([[0.0], np.cumsum(t)[:-1]]))
    share = N * survive * (1.0 - np.exp(-7.0 / 9.0 * t))
    assert np.all(np.abs(per_layer - share) < 4 * np.sqrt(share) + 1)

    # the pair carries the photon's energy and direction; truth points at the photon
    by_event = np.bincount(out.event[electrons], weights=out.E[electrons], minlength=N)
    assert np.allclose(by_event[by_event > 0], 20.0)
    assert np.all(out.mother[electrons] == 0) and np.all(out.mc_index[electrons] == 0)
    assert set(np.unique(out.mc_pdg[electrons])) == {-11, 11}
    assert np.all(out.charge[electrons] == -np.sign(out.pdg[electrons]))


def test_conversions_grow_with_the_path_length():
    cfg = load_detector("belle2").material
    rng = np.random.default_rng(2)
    n90 = np.sum(np.abs(convert_photons(_gun(22, N, 20.0, np.pi / 2, rng), cfg, rng).pdg) == 11)
    n45 = np.sum(np.abs(convert_photons(_gun(22, N, 20.0, np.pi / 4, rng), cfg, rng).pdg) == 11)
    assert n45 / n90 == pytest.approx(np.sqrt(2.0), rel=0.05)  # t / sin(theta)


def test_soft_photons_convert_less():
    """R(E) = sigma(E)/sigma(high E) from Geant4's parametrised Bethe-Heitler cross section."""
    assert pair_cross_section_ratio(np.array(20.0), 14) == pytest.approx(1.0, abs=0.01)
    assert pair_cross_section_ratio(np.array(1.0), 14) == pytest.approx(0.96, abs=0.01)
    assert pair_cross_section_ratio(np.array(0.1), 14) == pytest.approx(0.72, abs=0.02)
    assert np.all(np.diff(pair_cross_section_ratio(np.geomspace(0.002, 5.0, 50), 4)) > 0)
    layer = MaterialLayer(name="si", radius=5.0, thickness_x0=0.05, theta_range_deg=Range(low=1.0, high=179.0),
                          atomic_number=14)
    cfg = Material(layers=[layer], brems_photon_min_energy=0.0)
    rng = np.random.default_rng(6)
    n_conv = np.sum(np.abs(convert_photons(_gun(22, N, 0.1, np.pi / 2, rng), cfg, rng).pdg) == 11) / 2
    expected = N * (1.0 - np.exp(-7.0 / 9.0 * 0.05 * pair_cross_section_ratio(np.array(0.1), 14)))
    assert abs(n_conv - expected) < 4 * np.sqrt(expected)
    assert n_conv < 0.8 * N * (1.0 - np.exp(-7.0 / 9.0 * 0.05))


def test_pair_energy_sharing_is_bethe_heitler():
    x = pair_energy_fraction(np.random.default_rng(3).random(N))
    # dsigma/dx ~ 1 - 4/3 x (1 - x): symmetric, flatter than uniform at the ends; <x(1-x)> = (1/6 - 4/3/30) / (7/9)
    assert np.mean(x) == pytest.approx(0.5, abs=0.005)
    expected = (1.0 / 6.0 - 4.0 / 3.0 / 30.0) / (7.0 / 9.0)
    assert np.mean(x * (1 - x)) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("thickness", [0.005, 0.02])
def test_brems_mean_fractional_loss_is_t_over_x0(thickness):
    layer = MaterialLayer(name="slab", radius=5.0, thickness_x0=thickness, theta_range_deg=Range(low=1.0, high=179.0),
                          atomic_number=14)
    cfg = Material(layers=[layer], brems_photon_min_energy=0.0)
    rng = np.random.default_rng(4)
    out = radiate_electrons(_gun(11, N, 3.0, np.pi / 2, rng), cfg, 1.5, rng)
    electron = out.pdg == 11
    loss = 1.0 - out.E[electron] / 3.0
    # PDG: <dE/E> = t/X0 for thin layers (exactly 1 - exp(-t/X0) for the Bethe-Heitler distribution)
    assert np.mean(loss) == pytest.approx(1.0 - np.exp(-thickness), rel=0.03)
    assert np.mean(loss) == pytest.approx(thickness, rel=0.03)
    # energy is conserved into the photons; they start on the layer and carry the electron's truth
    photon = out.pdg == 22
    total = np.bincount(out.event, weights=out.E, minlength=N)
    assert np.allclose(total, 3.0, rtol=1e-9)
    assert np.allclose(np.hypot(out.x[photon], out.y[photon]), 5.0)
    assert np.all(out.mc_pdg[photon] == 11) and np.all(out.mc_index[photon] == 0) and np.all(out.mother[photon] == 0)
    # along the electron's direction at the layer: turned by its bending, 2 asin(5 cm / 2R), R(3 GeV) = 6.7 m
    e_of = np.flatnonzero(electron)[out.event[photon]]
    cos = (out.px[photon] * out.px[e_of] + out.py[photon] * out.py[e_of]) / (out.p[photon] * out.p[e_of])
    bend = 2.0 * np.arcsin(5.0 / (2.0 * 100.0 * 3.0 / (0.299792458 * 1.5)))
    assert np.allclose(np.arccos(np.clip(cos, -1, 1)), bend, atol=1e-4)


def test_photon_conversions_are_v0s_at_the_layer_radii():
    """Full response: converted photons give e+e- V0s (hypothesis 22, mcPDG 22) at the layer radii."""
    rng = np.random.default_rng(5)
    n = 40_000
    truth = toy_truth.particle_gun(22, rng.uniform(0.5, 3.0, n), np.arccos(rng.uniform(-0.5, 0.7, n)),
                                   rng.uniform(-np.pi, np.pi, n), experiment="belle2")
    reco = simulate_detector(truth, load_detector("belle2"), rng)
    v0 = ak.flatten(reco["V0"])
    conv = v0[(v0.hypothesis == 22) & (v0.mcPDG == 22)]
    assert len(conv) > 0.005 * n
    assert np.all(ak.to_numpy(conv.M) < 0.1)
    radius = np.hypot(ak.to_numpy(conv.x), ak.to_numpy(conv.y))
    radii = np.array([layer.radius for layer in load_detector("belle2").material.layers])
    # the radius histogram peaks at the layers: most vertices within 1 mm of a layer radius
    near = np.min(np.abs(radius[:, None] - radii[None, :]), axis=1) < 0.1
    assert np.mean(near) > 0.9
    # the converted photons are missing from the Photon collection; their electrons are tracks
    tracks = ak.flatten(reco["Track"])
    assert np.sum(np.abs(ak.to_numpy(tracks.mcPDG)) == 11) >= 2 * len(conv)
