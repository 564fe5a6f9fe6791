"""The tau -> 3 mu signal ellipse fitted on simulated signal, as the paper derives it (arXiv:2405.07386 sec. 3.2).

The rotation angle of the ellipse axes comes from "a linear fit to the profile distribution of
[M] versus [dE]" (the symbols are lost in our copy of the paper): we fit the mean M in bins of dE,
so the ellipse's dE axis follows the profile line.  This is the reading consistent with the
paper's widths (sigma_M 4.4-4.8 MeV, sigma_dE 10-15 MeV along the rotated axes need a small
tilt of the long dE axis); the profile of dE in bins of M has a slope of about 1.5 in our
simulation and would turn the long axis towards M.  The asymmetric widths are
bifurcated-Gaussian fits to the signal along the rotated axes.  The result has the field names
of ``signal_region`` in ``configs/searches/tau3mu.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from belle_rare.processors.resolution import fit_bifurcated_gaussian

# the fit uses the signal core: |M - median| and |dE - median| inside these windows (GeV)
CORE_HALF_WINDOW = {"m": 0.03, "de": 0.10}
# histogram bin width for the width fits, in units of the projection's robust width
BINS_PER_SIGMA = 4


@dataclass(frozen=True)
class EllipseFit:
    m_mean: float
    de_mean: float
    angle: float          # rad: axis u = (cos, sin), axis v = (-sin, cos) in the (M, dE) plane
    sigma_m_high: float   # along u
    sigma_m_low: float
    sigma_de_high: float  # along v = (-sin, cos)
    sigma_de_low: float
    slope: float          # d<M>/d(dE) of the profile
    slope_error: float
    n_events: float       # sum of weights used

    def as_config(self) -> dict[str, float]:
        """The fields of the config's ``signal_region`` that the fit determines."""
        return {k: round(float(v), 6) for k, v in asdict(self).items() if k not in ("slope", "slope_error", "n_events")}


def _robust_sigma(x: np.ndarray, w: np.ndarray) -> float:
    """Half the weighted 16-84 % interval: the core width, blind to the radiative tail."""
    order = np.argsort(x)
    cdf = np.cumsum(w[order]) / w.sum()
    lo, hi = np.interp([0.1587, 0.8413], cdf, x[order])
    return float(max(hi - lo, 1e-6) / 2)


def profile_slope(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_bins: int = 12) -> tuple[float, float, float]:
    """Linear fit ``<y> = a + b x`` to the profile of y in x bins over the central +-2 sigma_x.

    Returns (b, error on b, a). Bins hold the weighted mean of y and its error.
    """
    centre, sigma = float(np.median(x)), _robust_sigma(x, w)
    edges = np.linspace(centre - 2 * sigma, centre + 2 * sigma, n_bins + 1)
    inside = (x >= edges[0]) & (x < edges[-1])
    idx = np.digitize(x[inside], edges) - 1
    wi, mi, di = w[inside], x[inside], y[inside]

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values, minlength=n_bins)

    sum_w, count = per_bin(wi), np.bincount(idx, minlength=n_bins)
    filled = (sum_w > 0) & (count >= 5)
    if filled.sum() < 3:
        raise ValueError(f"too few populated profile bins ({int(filled.sum())}) for the profile slope")
    sum_w = sum_w[filled]
    xs = per_bin(wi * mi)[filled] / sum_w
    ys = per_bin(wi * di)[filled] / sum_w
    var = per_bin(wi * di**2)[filled] / sum_w - ys**2
    n_eff = sum_w**2 / per_bin(wi**2)[filled]
    es = np.sqrt(np.clip(var, 1e-12, None) / n_eff)
    (b, a), cov = np.polyfit(xs, ys, 1, w=1 / es, cov="unscaled")
    return float(b), float(np.sqrt(cov[0, 0])), float(a)


def _bifurcated(x: np.ndarray, w: np.ndarray, centre: float, sigma: float, half_window: float) -> tuple[float, float, float]:
    width = sigma / BINS_PER_SIGMA
    n = max(int(np.ceil(2 * half_window / width)), 10)
    counts, edges = np.histogram(x, bins=n, range=(centre - half_window, centre + half_window), weights=w)
    variances, _ = np.histogram(x, bins=edges, weights=w**2)
    fit = fit_bifurcated_gaussian(0.5 * (edges[1:] + edges[:-1]), counts, np.where(variances > 0, variances, w.max() ** 2))
    return fit.mean, fit.sigma_low, fit.sigma_high


def fit_signal_ellipse(m: np.ndarray, de: np.ndarray, weights: np.ndarray | None = None) -> EllipseFit:
    """Fit the rotated asymmetric signal ellipse to signal candidates (M, dE) in GeV."""
    m, de = np.asarray(m, float), np.asarray(de, float)
    w = np.ones_like(m) if weights is None else np.asarray(weights, float)
    ok = np.isfinite(m) & np.isfinite(de) & (w > 0)
    m, de, w = m[ok], de[ok], w[ok]
    if len(m) < 50:
        raise ValueError(f"{len(m)} signal candidates: too few to fit the signal ellipse (need at least 50)")
    m0, de0 = float(np.median(m)), float(np.median(de))
    core = (abs(m - m0) < CORE_HALF_WINDOW["m"]) & (abs(de - de0) < CORE_HALF_WINDOW["de"])
    m, de, w = m[core], de[core], w[core]
    m_mean, _, _ = _bifurcated(m, w, m0, _robust_sigma(m, w), CORE_HALF_WINDOW["m"])
    de_mean, _, _ = _bifurcated(de, w, de0, _robust_sigma(de, w), CORE_HALF_WINDOW["de"])
    slope, slope_err, _ = profile_slope(de, m, w)
    angle = -float(np.arctan(slope))  # v = (-sin, cos) points along (slope, 1)
    c, s = np.cos(angle), np.sin(angle)
    u = c * (m - m_mean) + s * (de - de_mean)
    v = -s * (m - m_mean) + c * (de - de_mean)
    _, su_lo, su_hi = _bifurcated(u, w, 0.0, _robust_sigma(u, w), CORE_HALF_WINDOW["m"])
    _, sv_lo, sv_hi = _bifurcated(v, w, 0.0, _robust_sigma(v, w), CORE_HALF_WINDOW["de"])
    return EllipseFit(m_mean=m_mean, de_mean=de_mean, angle=angle, sigma_m_high=su_hi, sigma_m_low=su_lo,
                      sigma_de_high=sv_hi, sigma_de_low=sv_lo, slope=slope, slope_error=slope_err, n_events=float(w.sum()))
