"""e+e- -> mu+ mu- Z', Z' -> invisible, with the Z' radiated off the muon line (L_mu - L_tau model).

No installed generator has this process. Events are sampled flat in three-body phase space and
unweighted with an approximate matrix element: the Born angular distribution (1 + cos^2 theta) of
the muon times the eikonal factor for emitting a vector of mass m_Z' off the final-state muons,

    |M|^2 ~ (1 + cos^2 theta_mu) [ 2 p1.p2 / (p1.k p2.k) - m_mu^2 / (p1.k)^2 - m_mu^2 / (p2.k)^2 ].

The recoil mass against the muon pair equals m_Z' exactly (before ISR/FSR and detector; an ISR photon,
at its first-order angle from ``isr.py``, takes part of the recoil and may itself reach the ECL).
"""

from __future__ import annotations

import numpy as np
import particle

from belle_rare.simulation.generators.phase_space import three_body
from belle_rare.simulation.generators.unweighting import hit_or_miss

MUON_MASS = particle.Particle.from_pdgid(13).mass / 1000.0


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, 3] * b[:, 3] - np.sum(a[:, :3] * b[:, :3], axis=1)


def matrix_element_weight(mu_minus: np.ndarray, mu_plus: np.ndarray, zprime: np.ndarray) -> np.ndarray:
    """Approximate |M|^2 (arbitrary normalisation), see the module docstring."""
    k1, k2 = _dot(mu_minus, zprime), _dot(mu_plus, zprime)
    eikonal = 2.0 * _dot(mu_minus, mu_plus) / (k1 * k2) - MUON_MASS**2 / k1**2 - MUON_MASS**2 / k2**2
    cos_theta = mu_minus[:, 2] / np.linalg.norm(mu_minus[:, :3], axis=1)
    return np.clip(eikonal, 0.0, None) * (1.0 + cos_theta**2)


def sample_events(
    sqrt_s: np.ndarray, mass: float, rng: np.random.Generator, tries_per_round: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unweighted (mu-, mu+, Z') four-momenta ``(n, 4)``, one event in the CM frame of each ``sqrt_s``.

    Hit-or-miss against the largest weight of a pilot sample at the highest ``sqrt_s`` (times a
    safety factor); each round tries ``tries_per_round`` candidates for every event still pending.
    """
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    n = len(sqrt_s)
    if not 0 < mass < float(np.min(sqrt_s)) - 2 * MUON_MASS:
        raise ValueError(f"--mass {mass} GeV: Z' must be lighter than sqrt(s) - 2 m_mu")
    pilot = three_body(np.full(200_000, sqrt_s.max()), MUON_MASS, MUON_MASS, mass, rng)
    w_max = 1.5 * float(np.max(pilot[3] * matrix_element_weight(*pilot[:3])))

    def propose(idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        mu1, mu2, zp, ps_weight = three_body(sqrt_s[idx], MUON_MASS, MUON_MASS, mass, rng)
        return ps_weight * matrix_element_weight(mu1, mu2, zp), [mu1, mu2, zp]

    mu_minus, mu_plus, zp = hit_or_miss(n, propose, w_max, rng, [(4,)] * 3, tries_per_round)
    return mu_minus, mu_plus, zp
