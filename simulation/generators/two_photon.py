"""e+e- -> e+e- l+l- through two quasi-real photons (equivalent-photon approximation).

No installed generator covers this at B-factory energies: Pythia's photon-photon machinery needs
W_gg >= 5 GeV (``Photon:Wmin`` has that minimum), while the lepton pairs that matter here have
W of 0.5-3 GeV. So this small generator does the multiperipheral (two-photon) diagram only:

* each beam lepton radiates a photon with energy fraction x from the Weizsaecker-Williams
  spectrum (Budnev et al., Phys. Rep. 15 (1975) 181; the form of Frixione et al., PLB 319 (1993) 339)
      f(x) = alpha / (2 pi) [ (1 + (1 - x)^2) / x ln(Q2max / Q2min) - 2 m_e^2 x (1 / Q2min - 1 / Q2max) ],
  Q2min = m_e^2 x^2 / (1 - x), with the virtuality cut off at Q2max = ``q2_max_over_w2`` x W^2
  (the approximation holds for Q^2 << W^2); Q^2 is sampled from the leading 1 / Q^2 term;
* the photons fuse into l+ l- with the lowest-order QED (Breit-Wheeler) cross section, the lepton
  angle in the gamma-gamma frame drawn from its d sigma / d cos(theta*);
* the scattered beam leptons keep the energy (1 - x) E and the angle their photon's Q^2 gives.

Bremsstrahlung and conversion diagrams and the identical-particle interference of e+e- e+e- are
left out. With Q2max = W^2 / 4 and W > 0.5 GeV the e+e- mu+mu- cross section comes out at 18.5 nb
(the Belle II Physics Book's complete lowest-order value: 18.9 nb); see ``tests/test_two_photon.py``.
"""

from __future__ import annotations

import numpy as np
import particle
from scipy.constants import fine_structure as ALPHA

from belle_rare.simulation.generators.isr import ELECTRON_MASS
from belle_rare.simulation.generators.phase_space import boost, decay_two_body
from belle_rare.simulation.generators.unweighting import hit_or_miss

LEPTON_MASS = {11: ELECTRON_MASS, 13: particle.Particle.from_pdgid(13).mass / 1000.0}


def photon_flux(x: np.ndarray, q2_max: np.ndarray) -> np.ndarray:
    """Weizsaecker-Williams photon spectrum f(x) of an electron (per unit x), zero where Q2min >= Q2max."""
    x = np.asarray(x, dtype=float)
    q2_min = ELECTRON_MASS**2 * x**2 / (1.0 - x)
    ok = q2_max > q2_min
    q2_min = np.where(ok, q2_min, 1.0)
    q2_max = np.where(ok, q2_max, 1.0)
    f = ALPHA / (2 * np.pi) * ((1 + (1 - x) ** 2) / x * np.log(q2_max / q2_min)
                               - 2 * ELECTRON_MASS**2 * x * (1 / q2_min - 1 / q2_max))
    return np.where(ok, np.clip(f, 0.0, None), 0.0)


def sigma_gg(w2: np.ndarray, lepton_mass: float) -> np.ndarray:
    """Breit-Wheeler cross section gamma gamma -> l+ l- (GeV^-2) at invariant mass squared ``w2``."""
    w2 = np.asarray(w2, dtype=float)
    r = np.clip(4 * lepton_mass**2 / w2, 0.0, 1.0)
    beta = np.sqrt(1 - r)
    log = np.log((1 + beta) / np.where(beta < 1, 1 - beta, 1.0))
    return np.where(r < 1, 4 * np.pi * ALPHA**2 / w2 * ((1 + r - r * r / 2) * log - beta * (1 + r)), 0.0)


def dsigma_dcos(cos_theta: np.ndarray, w2: np.ndarray, lepton_mass: float) -> np.ndarray:
    """d sigma / d cos(theta*) of gamma gamma -> l+ l- (GeV^-2), theta* the l- angle to a photon in the pair frame.

    From the spin-averaged |M|^2 = 2 e^4 [b/a + a/b + 2r (1/a + 1/b) - r^2 (1/a + 1/b)^2] with
    a, b = 1 -+ beta cos(theta*) and r = 4 m^2 / W^2 (e+e- -> gamma gamma crossed, Peskin-Schroeder 5.105).
    """
    c = np.asarray(cos_theta, dtype=float)
    r = 4 * lepton_mass**2 / np.asarray(w2, dtype=float)
    beta = np.sqrt(np.clip(1 - r, 0.0, None))
    a, b = 1 - beta * c, 1 + beta * c
    inv = 1 / a + 1 / b
    shape = b / a + a / b + 2 * r * inv - r * r * inv**2
    return np.pi * ALPHA**2 * beta / w2 * shape


def sample_cos_theta(w2: np.ndarray, lepton_mass: float, rng: np.random.Generator) -> np.ndarray:
    """cos(theta*) from ``dsigma_dcos``: proposals ~ 1 / (1 - beta^2 c^2) (the collinear peaks), then hit-or-miss."""
    w2 = np.asarray(w2, dtype=float)
    r = 4 * lepton_mass**2 / w2
    beta = np.sqrt(1 - r)
    out = np.empty(len(w2))
    pending = np.arange(len(w2))
    while pending.size:
        b = beta[pending]
        u = rng.uniform(-1, 1, pending.size) * np.arctanh(b) / b
        c = np.tanh(b * u) / b
        # shape <= (4 + 4 r) / (1 - beta^2 c^2): accept with the ratio
        envelope = np.pi * ALPHA**2 * b / w2[pending] * (4 + 4 * r[pending]) / (1 - b * b * c * c)
        keep = rng.uniform(size=pending.size) * envelope < dsigma_dcos(c, w2[pending], lepton_mass)
        out[pending[keep]] = c[keep]
        pending = pending[~keep]
    return out


def _fractions(tau: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)


def sample_fractions(s: np.ndarray, w_min: float, lepton_mass: float, q2_max_over_w2: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proposals (x1, x2) and their weights f(x1) f(x2) sigma_gg / q (GeV^-2; mean = the EPA cross section).

    tau = x1 x2 = W^2 / s from q(tau) ~ 1 / tau^2 (sigma_gg falls like 1 / W^2 and f(x) like 1 / x),
    y = ln(x1 / x2) / 2 uniform in its range; dx1 dx2 = dtau dy.
    """
    s = np.asarray(s, dtype=float)
    tau_min = max(w_min**2, 4 * lepton_mass**2) / s
    z = 1 / tau_min - 1  # normalisation of 1 / tau^2 on [tau_min, 1]
    tau = 1 / (1 / tau_min - rng.uniform(size=s.size) * z)
    half_range = -np.log(tau) / 2
    y = rng.uniform(-1, 1, s.size) * half_range
    x1, x2 = _fractions(tau, y)
    q2_max = q2_max_over_w2 * tau * s
    weight = photon_flux(x1, q2_max) * photon_flux(x2, q2_max) * sigma_gg(tau * s, lepton_mass) * z * tau**2 * 2 * half_range
    return x1, x2, weight


def _scattered(energy: np.ndarray, x: np.ndarray, q2: np.ndarray, phi: np.ndarray, sign: float) -> np.ndarray:
    """The beam lepton (along ``sign`` x z) after radiating a photon of fraction x and virtuality Q^2."""
    m2 = ELECTRON_MASS**2
    e_out = (1 - x) * energy
    p_in, p_out = np.sqrt(energy**2 - m2), np.sqrt(np.clip(e_out**2 - m2, 0.0, None))
    cos = np.clip((energy * e_out - m2 - q2 / 2) / (p_in * p_out), -1.0, 1.0)
    sin = np.sqrt(1 - cos * cos)
    return np.column_stack([p_out * sin * np.cos(phi), p_out * sin * np.sin(phi), sign * p_out * cos, e_out])


def _axis_frame(axis: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors at polar angle theta about ``axis`` (n, 3), azimuth phi."""
    a = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    helper = np.where(np.abs(a[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(a, e1)
    sin = np.sqrt(np.clip(1 - cos_theta**2, 0.0, None))
    return cos_theta[:, None] * a + sin[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def sample_events(sqrt_s: np.ndarray, lepton: int, w_min: float, q2_max_over_w2: float, rng: np.random.Generator,
                  tries_per_round: int = 16) -> tuple[np.ndarray, ...]:
    """Unweighted (e-, e+, l-, l+) four-momenta ``(n, 4)`` in the CM frame of each ``sqrt_s`` (e- beam along +z)."""
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    m = LEPTON_MASS[lepton]
    pilot = sample_fractions(np.full(200_000, sqrt_s.max() ** 2), w_min, m, q2_max_over_w2, rng)[2]
    w_max = 1.5 * float(pilot.max())
    n = sqrt_s.size

    def propose(idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        a, b, w = sample_fractions(sqrt_s[idx] ** 2, w_min, m, q2_max_over_w2, rng)
        return w, [a, b]

    x1, x2 = hit_or_miss(n, propose, w_max, rng, [(), ()], tries_per_round)
    energy = sqrt_s / 2
    q2_max = q2_max_over_w2 * x1 * x2 * sqrt_s**2
    q2 = []
    for x in (x1, x2):  # the two photons: Q^2 log-uniform in [Q2min, Q2max]
        q2_min = ELECTRON_MASS**2 * x**2 / (1 - x)
        q2.append(q2_min * (q2_max / q2_min) ** rng.uniform(size=n))
    e_minus = _scattered(energy, x1, q2[0], rng.uniform(0, 2 * np.pi, n), +1.0)
    e_plus = _scattered(energy, x2, q2[1], rng.uniform(0, 2 * np.pi, n), -1.0)
    p_in = np.sqrt(energy**2 - ELECTRON_MASS**2)
    beam_minus = np.column_stack([np.zeros(n), np.zeros(n), p_in, energy])
    beam_plus = np.column_stack([np.zeros(n), np.zeros(n), -p_in, energy])
    photon1 = beam_minus - e_minus
    pair = photon1 + beam_plus - e_plus
    w2 = np.clip(pair[:, 3] ** 2 - np.sum(pair[:, :3] ** 2, axis=1), 4 * m * m * 1.0001, None)
    # the l- angle is measured from photon 1 in the pair rest frame
    to_rest = np.column_stack([-pair[:, :3], pair[:, 3]])
    axis = boost(photon1, to_rest)[:, :3]
    direction = _axis_frame(axis, sample_cos_theta(w2, m, rng), rng.uniform(0, 2 * np.pi, n))
    l_minus, l_plus = decay_two_body(np.sqrt(w2), m, m, direction)
    return e_minus, e_plus, boost(l_minus, pair), boost(l_plus, pair)
