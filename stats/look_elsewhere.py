"""Global significance of the largest local excess of a mass scan (the look-elsewhere effect).

Gross and Vitells (Eur. Phys. J. C 70 (2010) 525, arXiv:1005.1891): for a one-sided test (signal >= 0)
whose local significance Z(m) is, under the background-only hypothesis, a smooth Gaussian process in m,

    P(max_m Z > u) ~= P(Z > u) + <N_up(u)>,      <N_up(u)> = N_0 exp(-u^2 / 2),

with N_up(u) the number of upcrossings of the level u. That bound overshoots once <N_up> is not small
(0.64 against the toys' 0.43 at u = 3 over 760 hypotheses), so ``global_p_value`` treats the upcrossings
as Poisson: P(max Z > u) ~= 1 - (1 - P(Z > u)) exp(-<N_up(u)>), the same at small p. ``N_0`` comes from one of two places:

* **Rice's formula** (``rice_calibration``): a Gaussian peak of width sigma fitted over a flat background
  has, between hypotheses Delta m apart, the correlation of two unit-normalised Gaussians,
  rho(Delta) = exp(-Delta^2 / (4 sigma^2)), so -rho''(0) = 1 / (2 sigma^2) and
  N_0 = (1 / 2 pi) int dm sqrt(-rho''(0)) = (1 / 2 pi) int dm / (sqrt(2) sigma(m)).
  ("An effective number of trials ~ range / resolution", made exact for this peak shape.) Profiling a
  background in a window of +-5 sigma decorrelates neighbours a little more, so the toys give more.
* **Toys** (``calibrate`` / ``toy_calibration``): the mean number of upcrossings of a low level u_0 in
  background-only pseudo-spectra run through the same fast scan (``stats.peak_scan``), N_0 = <N(u_0)>
  exp(u_0^2 / 2). The formula then extrapolates to the observed Z, where toys would be too costly.

Independent spectra (channels) add their N_0 (``Calibration.__add__``). ``tests/test_look_elsewhere.py``
checks P(max Z > u) of the formula against the toys' own maxima.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

#: default level u_0 of the toy calibration: low enough for many upcrossings per toy, high enough that
#: the asymptotic form holds (Gross-Vitells use ~0.5-1)
CALIBRATION_LEVEL = 1.0


@dataclass(frozen=True)
class Calibration:
    """Expected upcrossings at level 0, N_0 (and its statistical error), and how it was obtained."""

    n0: float
    n0_error: float
    method: str

    def upcrossings(self, level: float | np.ndarray) -> np.ndarray:
        """<N_up(u)> = N_0 exp(-u^2 / 2)."""
        return self.n0 * np.exp(-0.5 * np.asarray(level, float) ** 2)

    def __add__(self, other: "Calibration") -> "Calibration":
        methods = self.method if self.method == other.method else f"{self.method} + {other.method}"
        return Calibration(self.n0 + other.n0, float(np.hypot(self.n0_error, other.n0_error)), methods)

    def to_dict(self) -> dict:
        return {"n0": self.n0, "n0_error": self.n0_error, "method": self.method}


def rice_calibration(masses: np.ndarray, resolution: np.ndarray) -> Calibration:
    """N_0 of a Gaussian-peak scan from Rice's formula: (1 / 2 pi) int dm / (sqrt(2) sigma(m)) over the
    scanned masses (sorted), sigma(m) the peak width at each."""
    masses, resolution = np.asarray(masses, float), np.asarray(resolution, float)
    if len(masses) < 2:
        return Calibration(0.0, 0.0, "Rice (Gaussian peak)")
    length = float(np.trapezoid(1.0 / (np.sqrt(2.0) * resolution), masses))
    return Calibration(length / (2.0 * np.pi), 0.0, "Rice (Gaussian peak)")


def count_upcrossings(z: np.ndarray, level: float) -> np.ndarray:
    """Upcrossings of ``level`` along the last axis (hypotheses ordered in mass); NaN never crosses."""
    z = np.asarray(z, float)
    below, above = z[..., :-1] < level, z[..., 1:] >= level
    return np.sum(below & above, axis=-1)


def calibrate(toy_z: np.ndarray, level: float = CALIBRATION_LEVEL) -> Calibration:
    """N_0 from background-only toys: ``toy_z`` (toys, hypotheses ordered in mass) of local significances;
    N_0 = <N_up(level)> exp(level^2 / 2), with the error of the mean."""
    counts = count_upcrossings(np.atleast_2d(toy_z), level).astype(float)
    scale = np.exp(0.5 * level**2)
    error = float(np.std(counts, ddof=1) / np.sqrt(len(counts))) if len(counts) > 1 else float("nan")
    return Calibration(float(np.mean(counts) * scale), float(error * scale), f"toys ({len(counts)}, level {level:g})")


def toy_calibration(edges: np.ndarray, background: np.ndarray, masses: np.ndarray, sigmas: np.ndarray,
                    n_toys: int = 100, seed: int = 0, level: float = CALIBRATION_LEVEL) -> tuple[Calibration, np.ndarray]:
    """Toy calibration of a peak scan (``stats.peak_scan``) of a spectrum with expected background counts
    ``background`` in bins ``edges``: Poisson pseudo-spectra (seeded), each scanned at ``masses`` with
    widths ``sigmas``. Returns the calibration and the toys' local significances (toys, hypotheses)."""
    from belle_rare.stats.peak_scan import fit_all, local_significance, windows

    rng = np.random.default_rng(seed)
    order = np.argsort(masses)
    masses, sigmas = np.asarray(masses, float)[order], np.asarray(sigmas, float)[order]
    toys = rng.poisson(np.asarray(background, float), size=(n_toys, len(background)))
    z = np.empty((n_toys, len(masses)))
    for t in range(n_toys):  # one vectorised scan per pseudo-spectrum
        w = windows(edges, toys[t], masses, sigmas)
        z[t] = local_significance(w, fit_all(w))
    return calibrate(z, level), z


def global_p_value(z_local: float | np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """P(max Z > z) ~= 1 - Phi(z) exp(-N_0 exp(-z^2 / 2)) (Gross-Vitells with Poisson upcrossings;
    ``calibration`` None: the local p-value Phi(-z))."""
    z = np.asarray(z_local, float)
    if calibration is None:
        return ndtr(-z)
    return -np.expm1(np.log(ndtr(z)) - calibration.upcrossings(z))


def significance_of(p: float | np.ndarray) -> np.ndarray:
    """One-sided Z of a p-value, Phi^-1(1 - p), floored at 0."""
    return np.maximum(-ndtri(np.clip(np.asarray(p, float), 1e-300, 1.0)), 0.0)


def global_significance(z_local: float | np.ndarray, calibration: Calibration) -> np.ndarray:
    """Global Z of a local Z under ``calibration``."""
    return significance_of(global_p_value(z_local, calibration))
