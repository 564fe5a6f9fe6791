"""Collinear initial-state radiation in the leading-log structure-function approximation.

The fraction x of the beam energy carried away by ISR photons follows f(x) = beta x^(beta - 1)
(the soft-photon-exponentiated leading term of the electron structure function, Kuraev-Fadin),
with beta = (2 alpha / pi) (ln(s / m_e^2) - 1). One photon along either beam carries it.
"""

from __future__ import annotations

import math

import numpy as np
import particle
from scipy.constants import fine_structure

ELECTRON_MASS = particle.Particle.from_pdgid(11).mass / 1000.0


def isr_beta(sqrt_s: float) -> float:
    """Leading-log ISR exponent for e+e- at ``sqrt_s`` (GeV)."""
    return 2.0 * fine_structure / math.pi * (math.log(sqrt_s**2 / ELECTRON_MASS**2) - 1.0)


def sample_isr(
    total: np.ndarray, her: np.ndarray, ler: np.ndarray, x_max: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One collinear ISR photon per event.

    ``total``, ``her``, ``ler``: ``(n, 4)`` (px, py, pz, E) lab four-momenta of the beams.
    Returns the photon four-momenta ``(n, 4)`` and the four-momentum of the hard system
    (``total - photon``). ``x_max`` caps the energy fraction so the hard system stays above threshold.
    """
    n = len(total)
    sqrt_s = float(np.sqrt(np.mean(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1))))
    x = rng.uniform(size=n) ** (1.0 / isr_beta(sqrt_s))
    x = np.minimum(x, x_max)
    from_electron = rng.uniform(size=n) < 0.5
    photon = np.where(from_electron[:, None], her, ler) * x[:, None]
    return photon, total - photon
