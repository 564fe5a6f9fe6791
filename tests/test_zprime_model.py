"""The L_mu - L_tau Z' model (simulation/generators/lmu_ltau.py): widths, the e+e- -> mu mu Z' matrix
element against analytic limits, and its cross section by two phase-space parametrisations and an
analytic massless-muon integral."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from belle_rare.simulation.generators import isr, lmu_ltau, zprime
from belle_rare.simulation.generators.phase_space import decay_two_body, isotropic_directions, three_body

SQRT_S = 10.58
ALPHA = 1 / 137.035999


def test_widths_and_invisible_branching_fractions_are_the_ufo_formulas():
    """NOTES-darksector B: vanilla BR(inv) 1 below 2 m_mu, 1/2 up to 2 m_tau, 0.45 / 0.38 / 0.34 / 0.335
    at 3.6 / 4 / 6 / 8 GeV; Gamma_tot / g'^2 = 0.053 / 0.28 / 0.63 GeV at 1 / 4 / 8 GeV."""
    br = lmu_ltau.invisible_branching_fraction
    assert br(0.15, "vanilla") == pytest.approx(1.0)
    assert br(1.0, "vanilla") == pytest.approx(0.5, abs=0.01)
    for mass, expected in ((3.6, 0.45), (4.0, 0.38), (6.0, 0.34), (8.0, 0.335)):
        assert float(br(mass, "vanilla")) == pytest.approx(expected, abs=0.006)
    for mass, expected in ((1.0, 0.053), (4.0, 0.28), (8.0, 0.63)):
        assert sum(lmu_ltau.partial_widths(mass).values()) == pytest.approx(expected, rel=0.03)
    assert br(8.0, "fully_invisible") == 1.0
    with pytest.raises(ValueError, match="vanilla or fully_invisible"):
        br(1.0, "dark")


def test_born_traces_give_the_qed_muon_pair_distribution():
    """The same tensors for e+e- -> mu+ mu-: e^4 [1 + cos^2 + (1 - beta^2) sin^2]."""
    rng = np.random.default_rng(1)
    n = 500
    p1, p2 = lmu_ltau.beams_cm(np.full(n, SQRT_S))
    c = rng.uniform(-1, 1, n)
    k1, k2 = decay_two_body(np.full(n, SQRT_S), lmu_ltau.MUON_MASS, lmu_ltau.MUON_MASS, isotropic_directions(n, rng, c))
    beta2 = 1 - 4 * lmu_ltau.MUON_MASS**2 / SQRT_S**2
    expected = (4 * math.pi * ALPHA) ** 2 * (1 + c**2 + (1 - beta2) * (1 - c**2))
    assert np.allclose(lmu_ltau.born_muon_pair_density(p1, p2, k1, k2, ALPHA), expected, rtol=1e-10)


@pytest.mark.parametrize("mass", [0.3, 3.0])
def test_ward_identity_holds_for_the_sum_of_the_two_diagrams(mass):
    """k_b O^{b a} sandwiched between the muon spinors vanishes (current conservation), which is what
    lets the Z' polarisation sum drop its k k / M^2 term; it fails if the diagrams' relative sign is wrong."""
    rng = np.random.default_rng(2)
    k1, k2, k, _ = three_body(np.full(300, SQRT_S), lmu_ltau.MUON_MASS, lmu_ltau.MUON_MASS, mass, rng)
    scale = np.abs(lmu_ltau.muon_tensor(k1, k2, k)).max(axis=(1, 2))
    assert np.all(lmu_ltau.ward_identity(k1, k2, k) < 1e-10 * scale)


def test_orientation_average_is_the_crossed_qqbar_to_two_vectors_formula(monkeypatch):
    """Averaged over the beam direction, L_{a a'} -> (4 s / 3)(-g_{a a'}), so -g_{a a'} H^{a a'} must be
    8 x the crossed q qbar -> V1 V2 density at every phase-space point (muon mass -> 0)."""
    monkeypatch.setattr(lmu_ltau, "MUON_MASS", 1e-5)
    rng = np.random.default_rng(3)
    for mass in (0.5, 3.0, 8.0):
        k1, k2, k, _ = three_body(np.full(400, SQRT_S), 1e-5, 1e-5, mass, rng)
        trace = -np.real(np.einsum("a,naa->n", lmu_ltau.METRIC, lmu_ltau.muon_tensor(k1, k2, k)))
        x1, x2 = 2 * k1[:, 3] / SQRT_S, 2 * k2[:, 3] / SQRT_S
        shape = lmu_ltau.massless_muon_density(np.full(400, SQRT_S**2), x1, x2, mass)
        assert np.allclose(trace / shape, 8.0, rtol=1e-6)


def test_soft_limit_is_the_eikonal_factor_times_the_born():
    """A soft, nearly massless Z': |M|^2 -> g'^2 [2 k1.k2 / (k1.k k2.k) - m^2 / (k1.k)^2 - m^2 / (k2.k)^2] |M_Born|^2."""
    rng = np.random.default_rng(4)
    n = 400
    # a 2 MeV Z' of 1 MeV mass, the muons at their Born kinematics (sqrt(s) shared by the three)
    direction = isotropic_directions(n, rng)
    zp_energy, zp_mass = 2e-3, 1e-3
    k = np.column_stack([direction * math.sqrt(zp_energy**2 - zp_mass**2), np.full(n, zp_energy)])
    pair = np.column_stack([-k[:, :3], SQRT_S - k[:, 3]])
    m12 = np.sqrt(pair[:, 3] ** 2 - np.sum(pair[:, :3] ** 2, axis=1))
    from belle_rare.simulation.generators.phase_space import boost
    d1, d2 = decay_two_body(m12, lmu_ltau.MUON_MASS, lmu_ltau.MUON_MASS, isotropic_directions(n, rng))
    k1, k2 = boost(d1, pair), boost(d2, pair)
    p1, p2 = lmu_ltau.beams_cm(np.full(n, SQRT_S))
    full = lmu_ltau.matrix_element_squared(p1, p2, k1, k2, k, 1.0, ALPHA)
    dot = lambda a, b: a[:, 3] * b[:, 3] - np.sum(a[:, :3] * b[:, :3], axis=1)  # noqa: E731
    a1, a2 = dot(k1, k) + zp_mass**2 / 2, dot(k2, k) + zp_mass**2 / 2
    m2 = lmu_ltau.MUON_MASS**2
    eikonal = 2 * dot(k1, k2) / (a1 * a2) - m2 / a1**2 - m2 / a2**2
    born = lmu_ltau.born_muon_pair_density(p1, p2, k1, k2, ALPHA)
    assert np.allclose(full / (born * eikonal), 1.0, atol=0.01)


def _massless_cross_section(mass: float) -> float:
    """sigma_0 (alpha' / 2 pi) int F dx1 dx2 (alpha' = 1 / 4 pi), the Dalitz plot in t = s(1 - x1), s12."""
    s = SQRT_S**2
    sigma0 = 4 * math.pi * ALPHA**2 / (3 * s)

    def t_limits(s12: float) -> tuple[float, float]:
        # massless 1, 2 in their rest frame (each sqrt(s12)/2), the Z' recoiling: PDG Dalitz limits
        e2 = math.sqrt(s12) / 2
        e3 = (s - s12 - mass**2) / (2 * math.sqrt(s12))
        p3 = math.sqrt(max(e3**2 - mass**2, 0.0))
        return mass**2 + 2 * e2 * (e3 - p3), mass**2 + 2 * e2 * (e3 + p3)

    def inner(s12: float) -> float:
        lo, hi = t_limits(s12)
        return integrate.quad(lambda t: lmu_ltau.massless_muon_density(
            s, 1 - t / s, 1 - (s + mass**2 - s12 - t) / s, mass), lo, hi, limit=200)[0]

    total, _ = integrate.quad(inner, 0.0, (SQRT_S - mass) ** 2, limit=200)
    return sigma0 * (1 / (4 * math.pi)) / (2 * math.pi) * total / s**2 * lmu_ltau.GEV2_NB


@pytest.mark.parametrize("mass", [3.0, 6.0])
def test_cross_section_matches_the_massless_muon_integral(mass):
    """Where m_mu << M_Z' the full result must equal the analytic massless-muon double integral (to 1 %)."""
    sigma, error = lmu_ltau.cross_section(SQRT_S, mass, model="fully_invisible", alpha=ALPHA, points=100_000)
    assert error < 0.005 * sigma
    assert sigma == pytest.approx(_massless_cross_section(mass), rel=0.015)


@pytest.mark.parametrize("mass", [0.2, 3.0, 8.0])
def test_two_phase_space_parametrisations_give_one_cross_section(mass):
    """The log-Dalitz sampler (used at low mass) against the sequential three-body one (m12 uniform)."""
    rng = np.random.default_rng(5)
    n = 60_000
    log_dalitz = lmu_ltau.event_weights(np.full(n, SQRT_S), mass, 0.0, "fully_invisible", rng, ALPHA,
                                        phase_space=lmu_ltau.dalitz_log_phase_space)[3]
    sequential = lmu_ltau.event_weights(np.full(n, SQRT_S), mass, 0.0, "fully_invisible", rng, ALPHA,
                                        phase_space=lmu_ltau.sequential_phase_space)[3]
    error = math.hypot(log_dalitz.std(), sequential.std()) / math.sqrt(n)
    assert abs(log_dalitz.mean() - sequential.mean()) < 3.5 * error
    assert error < 0.02 * log_dalitz.mean()


def test_narrow_width_limit_and_a_wide_zprime():
    """Gamma -> 0 gives sigma(M) x BR(inv); Gamma = 0.1 M spreads the Z' mass but keeps sigma x BR
    within the sigma(m) variation over the width (sigma falls with m)."""
    narrow, err = lmu_ltau.cross_section(SQRT_S, 3.0, 0.0, "vanilla", alpha=ALPHA, points=30_000)
    almost, err2 = lmu_ltau.cross_section(SQRT_S, 3.0, 3e-3, "vanilla", alpha=ALPHA, points=30_000, seed=1)
    assert almost == pytest.approx(narrow, abs=4 * math.hypot(err, err2) + 0.01 * narrow)
    wide, _ = lmu_ltau.cross_section(SQRT_S, 3.0, 0.3, "fully_invisible", alpha=ALPHA, points=30_000)
    low, _ = lmu_ltau.cross_section(SQRT_S, 2.7, 0.0, "fully_invisible", alpha=ALPHA, points=30_000)
    high, _ = lmu_ltau.cross_section(SQRT_S, 3.3, 0.0, "fully_invisible", alpha=ALPHA, points=30_000)
    assert high < wide < low
    rng = np.random.default_rng(6)
    m_z, _ = lmu_ltau.zprime_masses(np.full(20_000, SQRT_S), 3.0, 0.3, "fully_invisible", rng)
    assert np.median(m_z) == pytest.approx(3.0, abs=0.02)
    # half the Cauchy in m^2 lies within |m^2 - M^2| < M Gamma
    assert np.mean(np.abs(m_z**2 - 9.0) < 0.9) == pytest.approx(0.5, abs=0.03)


def test_isr_cross_section_is_the_radiator_convolution():
    """sigma with ISR = int D(x) sigma_hat(s(1 - x)) dx, against scipy's quadrature of the same table."""
    model = zprime.ZprimeModel(mass=3.0, width=0.0, model="fully_invisible", coupling=1.0, alpha=ALPHA)
    sampler = zprime.ZprimeSampler(model, SQRT_S + 0.05, np.random.default_rng(7))
    beta = isr.isr_beta(SQRT_S)
    x_max = 0.9 * (1 - (3.0 + 2 * lmu_ltau.MUON_MASS) ** 2 / SQRT_S**2)
    reference = integrate.quad(lambda x: float(isr.radiator(x, beta) * sampler.sigma_hat(SQRT_S * math.sqrt(1 - x))),
                               0, x_max, points=[1e-8, 1e-4, 1e-2], limit=400)[0]
    assert sampler.cross_section_with_isr(SQRT_S, x_max) == pytest.approx(reference, rel=2e-3)
    born = float(sampler.sigma_hat(np.array(SQRT_S)))
    assert 0.85 < reference / born < 1.05  # ISR shifts sigma by a few per cent here


@pytest.mark.slow  # ~30 s: the wide Z's low-mass tail (sigma grows as m falls) lowers the hit-or-miss efficiency
def test_sampler_draws_the_zprime_mass_from_the_breit_wigner():
    """A wide Z' (Gamma = 0.1 M, the paper's second benchmark): unweighted events carry Z' masses spread
    around M (half of a Breit-Wigner in m^2 within |m^2 - M^2| < M Gamma, shifted by sigma(m) falling with m).
    (The narrow Z' has exactly M: tests/test_generators.py, test_zprime_recoil_mass_is_the_zprime_mass.)"""
    rng = np.random.default_rng(8)
    model = zprime.ZprimeModel(mass=3.0, width=0.3, model="fully_invisible", coupling=1.0, alpha=ALPHA)
    _, _, zp = zprime.ZprimeSampler(model, SQRT_S + 0.01, rng).sample(np.full(2000, SQRT_S), rng)
    m = np.sqrt(zp[:, 3] ** 2 - np.sum(zp[:, :3] ** 2, axis=1))
    assert np.median(m) == pytest.approx(3.0, abs=0.06)
    assert 0.4 < np.mean(np.abs(m**2 - 9.0) < 0.9) < 0.6


def test_cross_section_scales_as_the_coupling_squared_and_the_limit_inverts_it():
    """sigma x BR ~ g'^2 (same seed: the same phase-space points), so g'_UL = sqrt(sigma_UL / sigma(g' = 1))."""
    unit, _ = lmu_ltau.cross_section(SQRT_S, 2.0, model="vanilla", alpha=ALPHA, points=5_000)
    small, _ = lmu_ltau.cross_section(SQRT_S, 2.0, model="vanilla", coupling=0.01, alpha=ALPHA, points=5_000)
    assert small == pytest.approx(1e-4 * unit, rel=1e-12)
    assert lmu_ltau.coupling_limit(small, unit) == pytest.approx(0.01)


def test_a_zprime_process_needs_its_model_block():
    """The catalogue refuses a zprime-generator process without ``zprime_model`` (and the block elsewhere)."""
    from belle_rare.configs.processes import Catalogue, load_catalogue

    data = load_catalogue().model_dump()
    model = data["processes"]["sig_zprime"].pop("zprime_model")
    with pytest.raises(ValueError, match="processes.sig_zprime: needs .* or zprime_model"):
        Catalogue.model_validate(data)
    data["processes"]["sig_zprime"]["reference_cross_section_nb"] = 1e-5
    with pytest.raises(ValueError, match="processes.sig_zprime.zprime_model: required for the zprime generator"):
        Catalogue.model_validate(data)
    data["processes"]["mumu"]["zprime_model"] = model
    data["processes"]["sig_zprime"]["zprime_model"] = model
    with pytest.raises(ValueError, match="processes.mumu.zprime_model"):
        Catalogue.model_validate(data)
