"""Final-state radiation in tau decays (simulation/generators/decay_fsr.py) against analytic expectations
and against BaBar's radiative leptonic tau decay branching fractions."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.core import fourvector as fv
from belle_rare.simulation.detector.toy_truth import nominal_beams
from belle_rare.simulation.generators.decay_fsr import (
    emission_probability,
    radiate_tau_decays,
    radiator_strength,
)
from belle_rare.simulation.truth import MC_FIELDS, flat_mc, make_truth

M_TAU, M_MU, M_E = 1.77686, 0.1056584, 0.000511
# BaBar, PRD 91 (2015) 051103(R): photon above 10 MeV in the tau rest frame
BABAR_E = 1.847e-2 / 0.1782  # B(tau -> e gamma nu nu) / B(tau -> e nu nu) (PDG 17.82 %)
BABAR_MU = 3.69e-3 / 0.1739  # B(tau -> mu gamma nu nu) / B(tau -> mu nu nu) (PDG 17.39 %)


def _isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    c = 2 * rng.random(n) - 1
    phi = 2 * np.pi * rng.random(n)
    s = np.sqrt(1 - c * c)
    return np.stack([s * np.cos(phi), s * np.sin(phi), c], axis=1)


def _two_body(n: int, m1: float, m2: float, mother: float, rng) -> tuple[np.ndarray, np.ndarray]:
    q = np.sqrt((mother**2 - (m1 + m2) ** 2) * (mother**2 - (m1 - m2) ** 2)) / (2 * mother)
    d = _isotropic(n, rng)
    a = np.concatenate([q * d, np.full((n, 1), np.sqrt(q * q + m1 * m1))], axis=1)
    b = np.concatenate([-q * d, np.full((n, 1), np.sqrt(q * q + m2 * m2))], axis=1)
    return a, b


def _boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.stack(fv.boost(p[:, 0], p[:, 1], p[:, 2], p[:, 3], beta[:, 0], beta[:, 1], beta[:, 2]), axis=1)


def _tau_truth(daughters: list[tuple[int, float, np.ndarray]], rng, tau_momentum: float = 5.0) -> ak.Array:
    """Events [tau-, daughters...]: each daughter (pdg, mass, rest-frame p (n, 4)); the tau flies with
    ``tau_momentum`` GeV in a random direction (lab = any frame here)."""
    n = len(daughters[0][2])
    d = _isotropic(n, rng)
    beta = -(tau_momentum / np.hypot(tau_momentum, M_TAU)) * d  # frame moving with -v: the tau's motion
    tau = np.concatenate([tau_momentum * d, np.full((n, 1), np.hypot(tau_momentum, M_TAU))], axis=1)
    parts = [(15, M_TAU, tau, 2, -1)] + [(pdg, m, _boost(p, beta), 1, 0) for pdg, m, p in daughters]
    k = len(parts)
    cols = {
        "pdg": np.stack([np.full(n, x[0]) for x in parts], 1), "mass": np.stack([np.full(n, x[1]) for x in parts], 1),
        "status": np.stack([np.full(n, x[3]) for x in parts], 1), "mother": np.stack([np.full(n, x[4]) for x in parts], 1),
        "px": np.stack([x[2][:, 0] for x in parts], 1), "py": np.stack([x[2][:, 1] for x in parts], 1),
        "pz": np.stack([x[2][:, 2] for x in parts], 1), "E": np.stack([x[2][:, 3] for x in parts], 1),
    }
    for f in ("x", "y", "z", "t"):
        cols[f] = np.zeros((n, k))
    mc = {f: ak.unflatten(cols[f].reshape(-1), np.full(n, k)) for f in MC_FIELDS}
    return make_truth(mc, nominal_beams("belle", n), np.zeros(n, np.int32))


def _l_gamma(lepton: int, mass: float, n: int, rng) -> ak.Array:
    lep, gam = _two_body(n, mass, 0.0, M_TAU, rng)
    return _tau_truth([(lepton, mass, lep), (22, 0.0, gam)], rng)


def _leptonic(lepton: int, mass: float, n: int, rng) -> ak.Array:
    """tau- -> l- nu nu with the unpolarised V-A (Michel, rho = 3/4) lepton spectrum, masses kept in the
    kinematics; the nu nu pair isotropic in its rest frame."""
    e_max = (M_TAU**2 + mass**2) / (2 * M_TAU)
    energy = np.empty(0)
    while len(energy) < n:  # dGamma/dE ~ p E (3 M E - 4 E^2 - 2 m^2)  (massive Michel, rho = 3/4)
        e = mass + (e_max - mass) * rng.random(4 * n)
        p = np.sqrt(e * e - mass * mass)
        w = p * e * (3 * M_TAU * e - 4 * e * e - 2 * mass * mass)
        energy = np.concatenate([energy, e[rng.random(4 * n) * 0.25 * M_TAU**3 < w]])
    e = energy[:n]
    p = np.sqrt(e * e - mass * mass)
    d = _isotropic(n, rng)
    lep = np.concatenate([p[:, None] * d, e[:, None]], axis=1)
    nn = np.concatenate([-p[:, None] * d, (M_TAU - e)[:, None]], axis=1)
    m_nn = np.sqrt(np.maximum(nn[:, 3] ** 2 - p * p, 1e-12))
    q = m_nn / 2
    d2 = _isotropic(n, rng)
    nu1 = np.concatenate([q[:, None] * d2, q[:, None]], axis=1)
    nu2 = np.concatenate([-q[:, None] * d2, q[:, None]], axis=1)
    b = -nn[:, :3] / nn[:, 3:4]  # frame moving against the pair: back to the tau rest frame
    return _tau_truth([(lepton, mass, lep), (-12 if lepton == 11 else -14, 0.0, _boost(nu1, b)), (16, 0.0, _boost(nu2, b))], rng)


def _rest_photon_energy(truth: ak.Array) -> np.ndarray:
    """Per event, the energy of the appended photon in the tau rest frame (0 where none)."""
    offsets, mc = flat_mc(truth)
    first = offsets[:-1]
    count = np.diff(offsets)
    tau = np.stack([mc["px"][first], mc["py"][first], mc["pz"][first], mc["E"][first]], axis=1)
    out = np.zeros(len(count))
    has = (mc["pdg"][offsets[1:] - 1] == 22) & (mc["mother"][offsets[1:] - 1] == 0) & (count > 3)
    last = offsets[1:] - 1
    g = np.stack([mc["px"][last], mc["py"][last], mc["pz"][last], mc["E"][last]], axis=1)
    rest = _boost(g, tau[:, :3] / tau[:, 3:4])
    out[has] = rest[has, 3]
    return out


@pytest.mark.parametrize("lepton, mass", [(11, M_E), (13, M_MU)])
def test_four_momentum_and_masses_conserved(lepton: int, mass: float) -> None:
    rng = np.random.default_rng(1)
    truth = _l_gamma(lepton, mass, 3000, rng)
    out = radiate_tau_decays(truth, np.random.default_rng(2))
    offsets, mc = flat_mc(out)
    evt = np.repeat(np.arange(len(out)), np.diff(offsets))
    dau = mc["mother"] == 0
    total = np.zeros((len(out), 4))
    for i, f in enumerate(("px", "py", "pz", "E")):
        np.add.at(total[:, i], evt[dau], mc[f][dau])
    tau = np.stack([mc[f][offsets[:-1]] for f in ("px", "py", "pz", "E")], axis=1)
    np.testing.assert_allclose(total, tau, atol=1e-9)
    m2 = mc["E"] ** 2 - mc["px"] ** 2 - mc["py"] ** 2 - mc["pz"] ** 2
    np.testing.assert_allclose(np.sqrt(np.maximum(m2, 0)), mc["mass"], atol=1e-6)
    assert np.all(np.diff(offsets) >= 3) and np.any(np.diff(offsets) == 4)  # photons appended, nothing lost
    # the original rows keep their order and identity
    np.testing.assert_array_equal(ak.to_numpy(out.mc.pdg[:, :3]), ak.to_numpy(truth.mc.pdg))


@pytest.mark.parametrize("lepton, mass", [(11, M_E), (13, M_MU)])
def test_tau_to_l_gamma_spectrum_is_the_radiator(lepton: int, mass: float) -> None:
    """P(omega > x0 E_l) in tau -> l gamma equals 1 - exp(-(alpha/2pi)(L-2) int_x0^xmax (1 + (1-x)^2)/x)."""
    n = 40000
    out = radiate_tau_decays(_l_gamma(lepton, mass, n, np.random.default_rng(3)), np.random.default_rng(4))
    omega = _rest_photon_energy(out)
    e_l = (M_TAU**2 + mass**2) / (2 * M_TAU)
    beta = np.sqrt(1 - (mass / e_l) ** 2)
    x_max = min(1.0, (M_TAU**2 - mass**2) / (2 * M_TAU) / e_l)
    c = radiator_strength(np.array([beta]))
    for x0 in (0.01, 0.05, 0.2, 0.5):
        expected = float(emission_probability(c, np.array([x0]), np.array([x_max]))[0])
        measured = float(np.mean(omega > x0 * e_l))
        err = np.sqrt(expected * (1 - expected) / n)
        assert abs(measured - expected) < 4 * err + 1e-4, (x0, measured, expected)
    # by hand: the e radiates above 1 % of its energy in 12 % of the decays ((alpha / 2 pi) 14.3 x 7.7),
    # the mu in 3 % (L - 2 = 3.7 instead of 14.3)
    lo, hi = (0.11, 0.13) if lepton == 11 else (0.025, 0.037)
    assert lo < float(np.mean(omega > 0.01 * e_l)) < hi


def test_photon_angle_is_eikonal() -> None:
    """The photon-lepton angle (tau rest frame, emission side) follows beta^2 sin^2 / (1 - beta cos)^2:
    for the muon of tau -> mu gamma, the fraction with cos > 0.9 of that distribution."""
    n = 60000
    rng = np.random.default_rng(5)
    lep, gam = _two_body(n, M_MU, 0.0, M_TAU, rng)
    truth = _tau_truth([(13, M_MU, lep), (22, 0.0, gam)], rng, tau_momentum=1e-9)  # tau at rest
    out = radiate_tau_decays(truth, np.random.default_rng(6), k_min=0.001)
    offsets, mc = flat_mc(out)
    has = np.diff(offsets) == 4
    first = offsets[:-1][has]
    ph = np.stack([mc[f][first + 3] for f in ("px", "py", "pz")], axis=1)
    mu = np.stack([mc[f][first + 1] for f in ("px", "py", "pz")], axis=1) + ph  # the muon before emission (soft limit)
    soft = mc["E"][first + 3] < 0.02  # recoil negligible: the muon direction is the pre-emission one
    cos = np.sum(ph * mu, axis=1) / np.linalg.norm(ph, axis=1) / np.linalg.norm(mu, axis=1)
    beta = np.sqrt(1 - (M_MU / ((M_TAU**2 + M_MU**2) / (2 * M_TAU))) ** 2)
    grid = np.linspace(-1, 1, 200001)
    f = (1 - grid**2) / (1 - beta * grid) ** 2
    expected = np.trapz(f[grid > 0.9], grid[grid > 0.9]) / np.trapz(f, grid)
    measured = float(np.mean(cos[soft] > 0.9))
    err = np.sqrt(expected * (1 - expected) / soft.sum())
    assert abs(measured - expected) < 4 * err, (measured, expected)


@pytest.mark.parametrize("lepton, mass, babar, tolerance", [(11, M_E, BABAR_E, 0.06), (13, M_MU, BABAR_MU, 0.25)])
def test_radiative_leptonic_rate_against_babar(lepton: int, mass: float, babar: float, tolerance: float) -> None:
    """tau -> l nu nu (V-A spectrum): the fraction with a photon above 10 MeV (tau rest frame) against
    BaBar's B(tau -> l gamma nu nu) / B(tau -> l nu nu). The leading log reproduces the electron within
    BaBar's 3 % error and is 16 % high for the muon (not ultra-relativistic: L - 2 = 1.7-3.7), hence the
    looser tolerance there."""
    n = 40000
    out = radiate_tau_decays(_leptonic(lepton, mass, n, np.random.default_rng(7)), np.random.default_rng(8))
    measured = float(np.mean(_rest_photon_energy(out) > 0.010))
    assert abs(measured / babar - 1) < tolerance, (measured, babar)


def test_decays_with_unstable_daughters_and_other_taus_untouched() -> None:
    """A tau whose daughter decays further (tau -> mu phi, phi -> K K) does not radiate; hadronic decays
    (no lepton) do not either; and the result is a deterministic function of the rng's seed."""
    rng = np.random.default_rng(9)
    mu, pi = _two_body(2000, M_MU, 0.13957, M_TAU, rng)
    truth = _tau_truth([(13, M_MU, mu), (211, 0.13957, pi)], rng)
    status = ak.to_numpy(ak.flatten(truth.mc.status)).copy()
    status[2::3] = -2  # the pion "decays"
    mc = {f: truth.mc[f] for f in MC_FIELDS}
    mc["status"] = ak.unflatten(status, 3)
    unstable = make_truth(mc, nominal_beams("belle", 2000))
    out = radiate_tau_decays(unstable, np.random.default_rng(10))
    assert ak.all(ak.num(out.mc.pdg) == 3)
    a = radiate_tau_decays(truth, np.random.default_rng(11))
    b = radiate_tau_decays(truth, np.random.default_rng(11))
    assert ak.all(a.mc.E == b.mc.E) and ak.sum(ak.num(a.mc.pdg) == 4) > 0


def test_every_tau_pair_process_radiates() -> None:
    """Signals and backgrounds share their tag side: every tau-pair process (those with spin correlations)
    has the FSR on, so that a radiative tag decay is never a signal-only feature."""
    from belle_rare.configs.processes import load_catalogue

    cat = load_catalogue()
    pairs = {name for name, p in cat.processes.items() if p.tau_spin_correlations}
    assert {"tautau", "sig_taumugamma", "sig_tau3mu"} <= pairs
    assert all(cat.get(name).tau_decay_fsr for name in pairs)


def test_biased_weights_see_the_channel_before_the_photon() -> None:
    """tautau_mumu weights tau -> mu nu nu by its daughters; the FSR photon comes after the weights."""
    from belle_rare.configs.experiment import load_experiment
    from belle_rare.configs.processes import load_catalogue
    from belle_rare.simulation.generators.pythia import PythiaGenerator

    truth = PythiaGenerator(load_catalogue(), "tautau_mumu", load_experiment("belle2"), 3).generate(2000)
    w = ak.to_numpy(truth.weight)
    # 4 x enhanced: weights take three values (0, 1 or 2 taus to mu nu nu) and average to 1
    assert len(np.unique(np.round(w, 6))) == 3 and abs(w.mean() - 1) < 0.1
    offsets, mc = flat_mc(truth)
    assert np.any((mc["pdg"] == 22) & (mc["status"] == 91) & (np.abs(mc["pdg"][np.maximum(mc["mother"] + np.repeat(offsets[:-1], np.diff(offsets)), 0)]) == 15))
