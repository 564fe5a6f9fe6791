"""Signal-peak shapes: a bifurcated (asymmetric) Gaussian fitted to a histogram, as the papers do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class BifurcatedGaussian:
    mean: float
    sigma_low: float
    sigma_high: float
    mean_err: float
    sigma_low_err: float
    sigma_high_err: float

    @property
    def sigma(self) -> float:
        """The average of the two widths (the papers' ellipse uses it)."""
        return 0.5 * (self.sigma_low + self.sigma_high)


def bifurcated_gaussian(x: np.ndarray, norm: float, mean: float, sigma_low: float, sigma_high: float) -> np.ndarray:
    sigma = np.where(x < mean, sigma_low, sigma_high)
    return norm * np.exp(-0.5 * ((x - mean) / sigma) ** 2)


def fit_bifurcated_gaussian(centres: np.ndarray, counts: np.ndarray, variances: np.ndarray | None = None) -> BifurcatedGaussian:
    """Least-squares fit to binned ``counts``; ``variances`` default to the counts (Poisson)."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() <= 0:
        raise ValueError("no entries to fit")
    var = np.where((variances if variances is not None else counts) > 0, variances if variances is not None else counts, 1.0)
    mean0 = float(np.average(centres, weights=np.clip(counts, 0, None)))
    rms0 = float(np.sqrt(np.average((centres - mean0) ** 2, weights=np.clip(counts, 0, None)))) or float(np.diff(centres[:2])[0])
    p0 = [counts.max(), centres[np.argmax(counts)], rms0 / 2, rms0 / 2]
    bounds = ([0, centres[0], 1e-9, 1e-9], [np.inf, centres[-1], np.inf, np.inf])
    popt, pcov = curve_fit(bifurcated_gaussian, centres, counts, p0=p0, sigma=np.sqrt(var), bounds=bounds, maxfev=20000)
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return BifurcatedGaussian(popt[1], popt[2], popt[3], err[1], err[2], err[3])


def gaussian_core(x: np.ndarray, centre: float, width: float, iterations: int = 5) -> tuple[float, float, float]:
    """(mean, sigma, sigma error) of a Gaussian fitted to the histogram of ``x`` (40 bins) within
    +-2 sigma of the mean, starting from ``centre`` +- 2 ``width`` and iterated: the core of a peak
    with radiative tails (the zprime recoil-mass resolution)."""
    mean, sigma, err = centre, width, float("nan")
    for _ in range(iterations):
        edges = np.linspace(mean - 2 * sigma, mean + 2 * sigma, 41)
        counts, _ = np.histogram(x, edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        popt, pcov = curve_fit(lambda t, a, m, s: a * np.exp(-0.5 * ((t - m) / s) ** 2), mid, counts,
                               p0=(max(counts.max(), 1), mean, sigma), sigma=np.sqrt(np.maximum(counts, 1.0)), maxfev=20000)
        mean, sigma, err = float(popt[1]), abs(float(popt[2])), float(np.sqrt(pcov[2, 2]))
    return mean, sigma, err
