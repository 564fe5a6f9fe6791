"""Bhabha scattering e+e- -> e+e-, lowest-order QED (s- and t-channel photon exchange).

Pythia 8 has no t-channel Bhabha process, so this small generator samples the scattering angle
from the analytic differential cross section; radiation is added outside (ISR in ``isr.py``,
QED FSR by Pythia's shower). Electron masses are neglected in the matrix element.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate
from scipy.constants import fine_structure

# (hbar c)^2 in GeV^2 nb
HBARC2_GEV2_NB = 0.3893793721e6


def dsigma_dcos(cos_theta: np.ndarray, sqrt_s: float) -> np.ndarray:
    """dsigma/dcos(theta) in nb for the e- scattering angle theta in the CM frame (phi integrated)."""
    c = np.asarray(cos_theta, dtype=float)
    s = sqrt_s**2
    sin2_half = (1.0 - c) / 2.0
    cos2_half = (1.0 + c) / 2.0
    bracket = (1.0 + cos2_half**2) / sin2_half**2 - 2.0 * cos2_half**2 / sin2_half + (1.0 + c * c) / 2.0
    return 2.0 * np.pi * fine_structure**2 / (2.0 * s) * bracket * HBARC2_GEV2_NB


def cross_section(sqrt_s: float, cos_min: float, cos_max: float) -> float:
    """Integrated cross section (nb) for cos_min < cos(theta*) < cos_max, by quadrature."""
    value, _ = integrate.quad(lambda c: float(dsigma_dcos(c, sqrt_s)), cos_min, cos_max, limit=200)
    return value


def sample_cos_theta(
    n: int, sqrt_s: float, cos_min: float, cos_max: float, rng: np.random.Generator, grid: int = 20001,
    central_enhancement: tuple[float, float] | None = None,
) -> np.ndarray:
    """cos(theta*) of the e- from the differential cross section, by inverting its tabulated CDF.

    The grid is uniform in ln(1 - cos theta), where the t-channel pole makes the density steep.
    ``central_enhancement = (cos_theta_max, factor)`` multiplies the density by ``factor`` where
    |cos theta*| < cos_theta_max (biased production; the weights: biased_decays.bhabha_central_weights).
    """
    u = np.linspace(np.log(1.0 - cos_max), np.log(1.0 - cos_min), grid)
    c = 1.0 - np.exp(u)  # decreasing in u
    density = dsigma_dcos(c, sqrt_s) * np.exp(u)  # Jacobian |dc/du|
    if central_enhancement is not None:
        central, factor = central_enhancement
        # the step is resolved to one grid cell (5e-4 in ln(1 - cos)): far below any sample's precision
        density = density * np.where(np.abs(c) < central, factor, 1.0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(u))])
    cdf /= cdf[-1]
    return np.interp(rng.uniform(size=n), cdf, c)
