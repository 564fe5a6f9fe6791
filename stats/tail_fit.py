"""A background's falling tail fitted below a window and extrapolated into it (taulphi's B B and charm).

A process none of whose simulated events reaches a narrow window can still have many events in a
looser region beside it; its expected count in the window is then read off a fit of its distribution
there, extrapolated across the gap -- the sideband-fit extrapolation of the papers' background
estimates, applied to simulation. Here: the candidates' dE (M in the window's mass range) in
``fit_range`` below the window, an exponential density ``g(x) = exp(a + b (x - x0))`` (x0 the fit
range's upper edge, so that a and b are nearly uncorrelated), fitted by binned Poisson maximum
likelihood, integrated over the window's dE band.

Weighted simulation (luminosity scale, PID weights, biased production): the fit runs on effective
counts n_i = sumw_i / k, k = sum(sumw2) / sum(sumw) over the fit range (a scaled Poisson: exact
for equal weights, the usual approximation otherwise); the integral and its variance are scaled
back by k and k^2. The variance is the fit's (inverse expected Fisher information, delta method);
the model's is added separately by the caller (a second fit range: the difference of the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from belle_rare.stats.errors import StatsError

_SUBDIVISIONS = 16  # midpoints per bin of the numerical bin integrals (the density varies little across a bin)


@dataclass(frozen=True)
class ExponentialTail:
    """The fitted density in weighted events per unit of x: exp(a + b (x - x0)) x k; covariance of (a, b)."""

    a: float
    b: float
    x0: float
    k: float                    # weight per effective event
    covariance: np.ndarray      # of (a, b)
    effective_events: float     # sum of the effective counts in the fit range
    fit_range: tuple[float, float]

    def _integrals(self, lo: float, hi: float) -> tuple[float, float]:
        """(integral of exp(a + b u), integral of u exp(a + b u)) over [lo, hi] - x0, effective units."""
        x = lo + (np.arange(_SUBDIVISIONS * 8) + 0.5) * (hi - lo) / (_SUBDIVISIONS * 8)
        u = x - self.x0
        g = np.exp(self.a + self.b * u) * (hi - lo) / len(x)
        return float(g.sum()), float((u * g).sum())

    def integral(self, lo: float, hi: float) -> tuple[float, float]:
        """(expected weighted count in [lo, hi], its fit variance)."""
        i0, i1 = self._integrals(lo, hi)
        grad = np.array([i0, i1])
        return i0 * self.k, float(grad @ self.covariance @ grad) * self.k**2

    def as_dict(self) -> dict:
        return {"slope_per_gev": self.b, "fit_range": list(self.fit_range), "effective_events": self.effective_events,
                "weight_per_effective_event": self.k}


def fit_exponential_tail(edges: np.ndarray, sumw: np.ndarray, sumw2: np.ndarray,
                         fit_range: tuple[float, float]) -> ExponentialTail:
    """Binned Poisson ML fit of exp(a + b (x - x0)) to the bins of [edges] inside ``fit_range``
    (their edges must fall on bin edges up to 1e-9); StatsError with no positive bin there."""
    lo, hi = fit_range
    inside = (edges[:-1] >= lo - 1e-9) & (edges[1:] <= hi + 1e-9)
    w, w2 = np.asarray(sumw, float)[inside], np.asarray(sumw2, float)[inside]
    if not inside.any() or w.sum() <= 0 or w2.sum() <= 0:
        raise StatsError(f"tail fit: no event in the fit range [{lo}, {hi}]")
    k = w2.sum() / w.sum()
    n = np.clip(w / k, 0.0, None)
    bin_lo, bin_hi = edges[:-1][inside], edges[1:][inside]
    x0 = float(bin_hi.max())
    # midpoints of each bin's sub-intervals (bins x subdivisions) and their width
    t = (np.arange(_SUBDIVISIONS) + 0.5) / _SUBDIVISIONS
    u = bin_lo[:, None] + t[None, :] * (bin_hi - bin_lo)[:, None] - x0
    du = ((bin_hi - bin_lo) / _SUBDIVISIONS)[:, None]

    def mu_and_du(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.exp(theta[0] + theta[1] * u) * du
        return g.sum(axis=1), (u * g).sum(axis=1)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        mu, dmu_db = mu_and_du(theta)
        mu = np.maximum(mu, 1e-300)
        r = 1.0 - n / mu
        return float((mu - n * np.log(mu)).sum()), np.array([(r * mu).sum(), (r * dmu_db).sum()])

    width = hi - lo
    start = np.array([math.log(max(n.sum(), 1e-3) / width), 0.0])
    res = minimize(nll, start, jac=True, method="BFGS")
    theta = res.x
    mu, dmu_db = mu_and_du(theta)
    mu = np.maximum(mu, 1e-300)
    grads = np.stack([mu, dmu_db])  # d mu_i / d(a, b)
    fisher = (grads / mu) @ grads.T
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError as exc:
        raise StatsError(f"tail fit: singular fit in [{lo}, {hi}] ({n.sum():.3g} effective events)") from exc
    return ExponentialTail(float(theta[0]), float(theta[1]), x0, float(k), cov, float(n.sum()), (float(lo), float(hi)))
