"""The two-photon (equivalent-photon) generator against analytic QED and the Physics Book's cross section."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.constants import fine_structure as ALPHA

from belle_rare.simulation.generators import two_photon as tp
from belle_rare.simulation.generators.bhabha import HBARC2_GEV2_NB

SQRT_S = 10.58
MU, E = tp.LEPTON_MASS[13], tp.LEPTON_MASS[11]


@pytest.mark.parametrize("mass", [MU, E])
@pytest.mark.parametrize("w2", [0.25, 1.0, 9.0])
def test_angular_distribution_integrates_to_breit_wheeler(mass, w2):
    total, _ = integrate.quad(lambda c: float(tp.dsigma_dcos(c, w2, mass)), -1, 1, points=[-0.9999, 0.9999], limit=500)
    assert total == pytest.approx(float(tp.sigma_gg(w2, mass)), rel=1e-6)


def test_breit_wheeler_high_energy_limit():
    # W >> m: sigma -> 4 pi alpha^2 / W^2 (ln(W^2 / m^2) - 1)
    w2 = 100.0
    assert float(tp.sigma_gg(w2, E)) == pytest.approx(4 * np.pi * ALPHA**2 / w2 * (np.log(w2 / E**2) - 1), rel=1e-6)
    assert float(tp.sigma_gg(4 * MU**2 * 0.99, MU)) == 0.0  # below threshold


def test_sampled_angles_follow_the_cross_section():
    rng = np.random.default_rng(5)
    w2 = np.full(100_000, 0.5)
    c = tp.sample_cos_theta(w2, MU, rng)
    edges = np.linspace(-1, 1, 21)
    observed, _ = np.histogram(c, edges)
    expected = np.array([integrate.quad(lambda x: float(tp.dsigma_dcos(x, 0.5, MU)), a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
    expected *= len(c) / expected.sum()
    chi2 = np.sum((observed - expected) ** 2 / expected)
    assert chi2 < 45  # 19 degrees of freedom, p ~ 1e-3


def _epa_quadrature(mass: float, w_min: float, q2_over_w2: float) -> float:
    s = SQRT_S**2
    tau_min = w_min**2 / s

    def integrand(x2: float, x1: float) -> float:
        w2 = x1 * x2 * s
        q2 = q2_over_w2 * w2
        return float(tp.photon_flux(x1, q2) * tp.photon_flux(x2, q2) * tp.sigma_gg(w2, mass))

    value, _ = integrate.dblquad(integrand, tau_min, 1 - 1e-9, lambda x1: tau_min / x1, lambda x1: 1 - 1e-9, epsrel=1e-5)
    return value * HBARC2_GEV2_NB


def test_epa_cross_section_monte_carlo_matches_quadrature_and_the_physics_book():
    rng = np.random.default_rng(7)
    _, _, w = tp.sample_fractions(np.full(400_000, SQRT_S**2), 0.5, MU, 0.25, rng)
    mc = w.mean() * HBARC2_GEV2_NB
    mc_error = w.std() / np.sqrt(w.size) * HBARC2_GEV2_NB
    quad = _epa_quadrature(MU, 0.5, 0.25)
    assert mc == pytest.approx(quad, abs=4 * mc_error)
    # the complete lowest-order e+e- -> e+e- mu+mu- (W > 0.5 GeV, Belle II Physics Book Table 2): 18.9 nb
    assert quad == pytest.approx(18.9, rel=0.05)


def test_events_conserve_four_momentum_and_keep_the_pair_mass():
    rng = np.random.default_rng(3)
    sqrt_s = np.full(2000, SQRT_S)
    e_minus, e_plus, l_minus, l_plus = tp.sample_events(sqrt_s, 13, 0.5, 0.25, rng)
    total = e_minus + e_plus + l_minus + l_plus
    np.testing.assert_allclose(total, np.tile([0, 0, 0, SQRT_S], (2000, 1)), atol=1e-6)
    for p in (l_minus, l_plus):
        np.testing.assert_allclose(np.sqrt(p[:, 3] ** 2 - np.sum(p[:, :3] ** 2, axis=1)), MU, rtol=1e-4)
    pair = l_minus + l_plus
    w = np.sqrt(pair[:, 3] ** 2 - np.sum(pair[:, :3] ** 2, axis=1))
    assert np.median(w) < 2.0 and np.quantile(w, 0.01) > 0.3  # two-photon pairs are soft; W > 0.5 GeV before virtuality
    # the scattered beam leptons stay close to the beam line
    cos_e = e_minus[:, 2] / np.linalg.norm(e_minus[:, :3], axis=1)
    assert np.median(cos_e) > 0.999


def test_eemumu_sample_through_pythia_fsr_in_the_lab_frame():
    """The catalogue's eemumu: two muons and two beam electrons per event, the final state sums to the beams."""
    import awkward as ak

    from belle_rare.configs.experiment import load_experiment
    from tests.conftest import truth_sample

    exp = load_experiment("belle2")
    truth = truth_sample("eemumu", "belle2", events=500)
    final = truth.mc[truth.mc.status > 0]
    assert np.all(ak.to_numpy(ak.sum(final.pdg == 13, axis=1)) == 1)
    assert np.all(ak.to_numpy(ak.sum(final.pdg == -13, axis=1)) == 1)
    total = np.stack([ak.to_numpy(ak.sum(final[c], axis=1)) for c in ("px", "py", "pz", "E")], axis=1)
    assert total[:, 3].mean() == pytest.approx(exp.total_four_momentum[0], abs=1e-3)
    assert total[:, 2].mean() == pytest.approx(exp.total_four_momentum[3], abs=1e-3)
