"""The tau -> l gamma background estimate of the paper: a fit to the (M_bc, dE/sqrt(s)) sidebands,
integrated over the signal ellipse (Belle, JHEP 10 (2021) 019, sec. 3, eqs. 3.2-3.4, fig. 5).

Model (eq. 3.2): B(M_bc, dE) = B(M_bc) x B(dE), B(M_bc) constant ("no peak, rather flat"; a
linear term is an option), B(dE) a sum of a Landau and an exponential (the paper's tau tau
shape) or of a Landau and a Gaussian (its mu mu gamma / e e gamma shape). The fit region is the
paper's M_bc sideband (``sideband_mbc`` of configs/searches/taulgamma.yaml) over the whole dE
range of the plane histogram; the expected background in the ellipse is the fitted density
integrated over the ellipse, with the uncertainty from the fit covariance.

Weighted simulation. One simulated event weighs 10^4-10^8 events depending on the process, so
the processes are never pooled into one likelihood: every background dataset is fitted on its
own, in its own *scaled counts* n_i = y_i / s_d with s_d = sum(w^2) / sum(w) over the dataset's
fit region (Bohm & Zech, NIM A 748 (2014) 1: the scaled Poisson distribution). Within a dataset
the weights are one luminosity weight times O(1) corrections, so n_i are (nearly) the simulated
event counts and their Poisson likelihood is right; the dataset's ellipse yield is s_d x (fitted
scaled yield) and its variance s_d^2 x the fit's. Datasets add, independently.

The fit is binned in the histogram's fine bins (2.5 MeV x 0.001 in M_bc x dE/sqrt(s)), which at
this granularity is the unbinned fit. With a product model the 2-D Poisson likelihood factorises
exactly into the dE projection (shape and normalisation) and the M_bc projection (the M_bc slope,
a multinomial; nothing to fit when B(M_bc) is flat), so the fit runs on the two projections.

Low statistics. A dataset with fewer than ``min_events`` scaled counts in the fit region cannot
fix a shape: it keeps its plain simulated count in the ellipse, and the Monte Carlo statistical
bound (:mod:`stats.mc_bound`) where that count is zero. A channel where no dataset reaches
``min_events`` (``make run``'s samples) is the plain count with the bound: ``fallback`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, special, stats

from belle_rare.stats.mc_bound import McBound, mc_bound

Shape = Literal["landau_exponential", "landau_gaussian", "exponential"]
MbcShape = Literal["flat", "linear"]
SHAPES: tuple[str, ...] = ("landau_exponential", "landau_gaussian", "exponential")
# ellipse integral: dE points across the ellipse (midpoint rule on a smooth density, < 1e-5 relative)
ELLIPSE_POINTS = 801


@dataclass(frozen=True)
class PlaneGeometry:
    """The signal ellipse (centre and half-axes: n_sigma x the averaged widths, eq. 2.6) and the M_bc
    sideband windows of one channel."""

    mbc_mean: float
    de_mean: float
    mbc_half_axis: float
    de_half_axis: float
    sideband_mbc: tuple[tuple[float, float], ...]

    def contains(self, mbc: np.ndarray, de: np.ndarray) -> np.ndarray:
        return ((mbc - self.mbc_mean) / self.mbc_half_axis) ** 2 + ((de - self.de_mean) / self.de_half_axis) ** 2 < 1.0

    def in_sideband(self, mbc: np.ndarray) -> np.ndarray:
        mbc = np.asarray(mbc)
        return np.logical_or.reduce([(mbc >= lo) & (mbc <= hi) for lo, hi in self.sideband_mbc])

    @property
    def area(self) -> float:
        return math.pi * self.mbc_half_axis * self.de_half_axis


@dataclass(frozen=True)
class Plane:
    """A weighted (M_bc, dE) histogram: values and variances (shape n_mbc x n_de) and the bin edges."""

    values: np.ndarray
    variances: np.ndarray
    mbc_edges: np.ndarray
    de_edges: np.ndarray

    @property
    def mbc_centres(self) -> np.ndarray:
        return 0.5 * (self.mbc_edges[1:] + self.mbc_edges[:-1])

    @property
    def de_centres(self) -> np.ndarray:
        return 0.5 * (self.de_edges[1:] + self.de_edges[:-1])


# ---------------------------------------------------------------------------------------------
# the dE shapes: bin integrals, normalised over the histogram's dE range


def _landau_cdf(x: np.ndarray, mpv: float, width: float) -> np.ndarray:
    """CDF of the Landau with its long tail towards *low* dE (the lepton-photon pair of a background
    event misses the neutrinos' energy): x -> -x of the standard Landau (scipy: loc, scale)."""
    return stats.landau.sf(-x, loc=-mpv, scale=width)


def _exp_cdf(x: np.ndarray, slope: float, x0: float) -> np.ndarray:
    """An antiderivative of exp(slope (x - x0)) (x0: the range centre, against overflow)."""
    u = x - x0
    if abs(slope) < 1e-8:
        return u
    return np.expm1(slope * u) / slope


def _params_of(shape: Shape, theta: np.ndarray) -> dict[str, float]:
    """Physical parameters from the unconstrained ones (the fit's coordinates)."""
    if shape == "exponential":
        return {"slope": float(theta[0])}
    out = {"mpv": float(theta[0]), "width": float(np.exp(theta[1])), "fraction": float(special.expit(theta[2]))}
    if shape == "landau_exponential":
        out["slope"] = float(theta[3])
    else:
        out.update(mean=float(theta[3]), sigma=float(np.exp(theta[4])))
    return out


def bin_probabilities(shape: Shape, theta: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The dE shape's probability in each bin of ``edges`` (normalised over [edges[0], edges[-1]])."""
    x0 = 0.5 * (edges[0] + edges[-1])
    p = _params_of(shape, theta)

    def normalised(cdf: np.ndarray) -> np.ndarray:
        d = np.diff(cdf)
        total = cdf[-1] - cdf[0]
        return d / total if total > 0 else np.full(len(d), 1.0 / len(d))

    if shape == "exponential":
        return normalised(_exp_cdf(edges, p["slope"], x0))
    first = normalised(_landau_cdf(edges, p["mpv"], p["width"]))
    if shape == "landau_exponential":
        second = normalised(_exp_cdf(edges, p["slope"], x0))
    else:
        second = normalised(stats.norm.cdf(edges, p["mean"], p["sigma"]))
    return p["fraction"] * first + (1.0 - p["fraction"]) * second


def _n_shape_parameters(shape: Shape) -> int:
    return {"exponential": 1, "landau_exponential": 4, "landau_gaussian": 5}[shape]


# ---------------------------------------------------------------------------------------------
# one dataset's fit


@dataclass
class ComponentFit:
    """The sideband fit of one background dataset (scaled counts, see the module doc)."""

    dataset: str
    shape: Shape
    mbc_shape: MbcShape
    scale: float  # s_d = sum w^2 / sum w: the weight of one scaled count
    fit_events: float  # scaled counts in the fit region
    theta: np.ndarray  # [log N_fit, dE shape parameters..., (M_bc slope)]
    covariance: np.ndarray
    ellipse: float  # expected yield in the ellipse (weighted)
    ellipse_uncertainty: float
    converged: bool  # a positive-definite covariance at the minimum (BFGS's own flag trips on precision loss)
    message: str = ""
    model: "_Model | None" = field(default=None, repr=False)

    def bin_yields(self, mbc_edges: np.ndarray, de_edges: np.ndarray) -> np.ndarray:
        """The fitted (weighted) yield in each bin of a grid inside the fitted plane (n_mbc x n_de)."""
        m = self.model
        full = m.plane.de_edges
        n_shape = _n_shape_parameters(self.shape)
        probs = bin_probabilities(self.shape, self.theta[1 : 1 + n_shape], np.concatenate([[full[0]], de_edges, [full[-1]]]))[1:-1]
        a = m._slope(self.theta)
        q = m._mbc_integral(mbc_edges[:-1], mbc_edges[1:], a) / m.sideband_mbc_integral(a)
        return self.scale * float(np.exp(self.theta[0])) * np.outer(q, probs)

    @property
    def parameters(self) -> dict[str, float]:
        n_shape = _n_shape_parameters(self.shape)
        out = {"fit_region_yield": float(np.exp(self.theta[0])) * self.scale,
               **_params_of(self.shape, self.theta[1 : 1 + n_shape])}
        if self.mbc_shape == "linear":
            out["mbc_slope"] = float(self.theta[-1])
        return out

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "shape": self.shape, "mbc_shape": self.mbc_shape, "weight_per_count": self.scale,
                "fit_region_events": self.fit_events, "ellipse": self.ellipse, "ellipse_uncertainty": self.ellipse_uncertainty,
                "converged": self.converged, "parameters": self.parameters}


class _Model:
    """The product model of one dataset on a plane: likelihood on the sideband projections and the
    ellipse integral, in the unconstrained coordinates theta = [log N_fit, shape..., (slope)]."""

    def __init__(self, plane: Plane, geometry: PlaneGeometry, shape: Shape, mbc_shape: MbcShape):
        self.plane, self.geometry, self.shape, self.mbc_shape = plane, geometry, shape, mbc_shape
        self.sb_bins = geometry.in_sideband(plane.mbc_centres)
        self.m_lo, self.m_hi = float(plane.mbc_edges[0]), float(plane.mbc_edges[-1])
        self.m_c, self.m_half = 0.5 * (self.m_lo + self.m_hi), 0.5 * (self.m_hi - self.m_lo)
        self.n_shape = _n_shape_parameters(shape)

    # M_bc: q(m) proportional to 1 + a (m - m_c), |a| < 1 / m_half (positive on the plane)
    def _slope(self, theta: np.ndarray) -> float:
        return float(np.tanh(theta[-1]) / self.m_half) if self.mbc_shape == "linear" else 0.0

    def _mbc_integral(self, lo: np.ndarray, hi: np.ndarray, a: float) -> np.ndarray:
        return (hi - lo) + 0.5 * a * ((hi - self.m_c) ** 2 - (lo - self.m_c) ** 2)

    def mbc_bin_fractions(self, a: float) -> np.ndarray:
        """Each sideband M_bc bin's share of the sideband (the M_bc multinomial)."""
        e = self.plane.mbc_edges
        q = self._mbc_integral(e[:-1], e[1:], a)[self.sb_bins]
        return q / q.sum()

    def sideband_mbc_integral(self, a: float) -> float:
        e = self.plane.mbc_edges
        return float(self._mbc_integral(e[:-1], e[1:], a)[self.sb_bins].sum())

    def nll(self, theta: np.ndarray, n_de: np.ndarray, n_mbc: np.ndarray) -> float:
        p = bin_probabilities(self.shape, theta[1 : 1 + self.n_shape], self.plane.de_edges)
        nu = np.exp(theta[0]) * p
        out = float(nu.sum() - np.sum(n_de * np.log(np.clip(nu, 1e-300, None))))
        if self.mbc_shape == "linear":
            out -= float(np.sum(n_mbc * np.log(np.clip(self.mbc_bin_fractions(self._slope(theta)), 1e-300, None))))
        return out

    def ellipse_yield(self, theta: np.ndarray) -> float:
        """N_fit x (density integrated over the ellipse) / (density integrated over the fit region)."""
        g = self.geometry
        a = self._slope(theta)
        edges = self.plane.de_edges
        lo, hi = g.de_mean - g.de_half_axis, g.de_mean + g.de_half_axis
        x = np.linspace(lo, hi, ELLIPSE_POINTS + 1)
        # the dE density on the ellipse's dE span, in units of the normalised shape (bin integrals / width)
        probs = bin_probabilities(self.shape, theta[1 : 1 + self.n_shape], np.concatenate([[edges[0]], x, [edges[-1]]]))[1:-1]
        mid = 0.5 * (x[1:] + x[:-1])
        chord = 2.0 * g.mbc_half_axis * np.sqrt(np.clip(1.0 - ((mid - g.de_mean) / g.de_half_axis) ** 2, 0.0, None))
        # the M_bc integral along each chord (symmetric about mbc_mean): chord x (1 + a (mbc_mean - m_c))
        inside = float(np.sum(probs * chord * (1.0 + a * (g.mbc_mean - self.m_c))))
        return float(np.exp(theta[0])) * inside / self.sideband_mbc_integral(a)


def _hessian(f, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x``."""
    n = len(x)
    h = np.zeros((n, n))
    f0 = f(x)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = steps[i]
        h[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / steps[i] ** 2
        for j in range(i + 1, n):
            ej = np.zeros(n)
            ej[j] = steps[j]
            h[i, j] = h[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * steps[i] * steps[j])
    return h


def _starts(shape: Shape, de: np.ndarray, n_de: np.ndarray) -> list[np.ndarray]:
    """Starting points of the dE shape parameters from the data's mode and spread."""
    total = n_de.sum()
    mean = float(np.sum(de * n_de) / total)
    sd = float(np.sqrt(max(np.sum((de - mean) ** 2 * n_de) / total, 1e-8)))
    smooth = np.convolve(n_de, np.ones(5) / 5, mode="same")
    mode = float(de[np.argmax(smooth)])
    if shape == "exponential":
        return [np.array([0.0]), np.array([1.0 / sd]), np.array([-1.0 / sd])]
    out = []
    for frac in (0.0, 2.0):
        base = [mode, math.log(max(sd / 4, 1e-4)), frac]
        tail = [1.0 / sd] if shape == "landau_exponential" else [mean, math.log(sd)]
        out.append(np.array(base + tail))
    return out


def fit_component(dataset: str, plane: Plane, geometry: PlaneGeometry, shape: Shape = "landau_exponential",
                  mbc_shape: MbcShape = "flat") -> ComponentFit:
    """Fit one dataset's sideband (scaled counts) and integrate the fit over the ellipse."""
    sb = geometry.in_sideband(plane.mbc_centres)
    values, variances = plane.values[sb], plane.variances[sb]
    total, total_var = float(values.sum()), float(variances.sum())
    if total <= 0 or total_var <= 0:
        raise ValueError(f"{dataset}: no simulated event in the sideband")
    scale = total_var / total
    n_de = values.sum(axis=0) / scale
    n_mbc = values.sum(axis=1) / scale
    model = _Model(plane, geometry, shape, mbc_shape)

    def objective(theta: np.ndarray) -> float:
        return model.nll(theta, n_de, n_mbc)

    best = None
    for start in _starts(shape, plane.de_centres, n_de):
        theta0 = np.concatenate([[math.log(n_de.sum())], start, [0.0] if mbc_shape == "linear" else []])
        res = optimize.minimize(objective, theta0, method="BFGS")
        if best is None or res.fun < best.fun:
            best = res
    theta = best.x
    steps = np.maximum(1e-4 * np.abs(theta), 1e-4)
    hess = _hessian(objective, theta, steps)
    try:
        cov = np.linalg.inv(hess)
        ok = bool(np.all(np.diag(cov) > 0))
    except np.linalg.LinAlgError:
        cov, ok = np.full((len(theta), len(theta)), np.nan), False
    b = model.ellipse_yield(theta)
    if not (np.all(np.isfinite(theta)) and math.isfinite(b)):
        raise ValueError(f"{dataset}: the sideband fit did not converge ({best.message})")
    grad = np.array([(model.ellipse_yield(theta + e) - model.ellipse_yield(theta - e)) / (2 * s)
                     for e, s in zip(np.diag(steps), steps)])
    var_b = float(grad @ cov @ grad) if ok else float("nan")
    if not (var_b > 0):  # a degenerate direction (e.g. an unused mixture component): Poisson on the yield
        var_b, ok = b * b / max(n_de.sum(), 1.0), False
    return ComponentFit(dataset, shape, mbc_shape, scale, float(n_de.sum()), theta, cov, scale * b, scale * math.sqrt(var_b),
                        converged=ok, message=str(best.message), model=model)


def fitted_curve(fit: ComponentFit, plane: Plane, geometry: PlaneGeometry) -> np.ndarray:
    """The fitted sideband dE projection (weighted yield per dE bin of ``plane``), for plots."""
    n_shape = _n_shape_parameters(fit.shape)
    return fit.scale * float(np.exp(fit.theta[0])) * bin_probabilities(fit.shape, fit.theta[1 : 1 + n_shape], plane.de_edges)


# ---------------------------------------------------------------------------------------------
# a channel: every background dataset


@dataclass
class SidebandEstimate:
    """Expected background in the ellipse: fitted datasets + plain counts of the others (+ MC bound)."""

    fits: list[ComponentFit]
    counted: dict[str, tuple[float, float]]  # dataset -> (ellipse yield, variance), too few events to fit
    bound: McBound | None
    min_events: float
    notes: list[str] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        """No dataset could be fitted: the estimate is the plain count with the MC bound."""
        return not self.fits

    @property
    def fitted(self) -> float:
        return float(sum(f.ellipse for f in self.fits))

    @property
    def counted_value(self) -> float:
        return float(sum(v for v, _ in self.counted.values()))

    @property
    def value(self) -> float:
        return self.fitted + self.counted_value + (self.bound.mean if self.bound else 0.0)

    @property
    def fit_and_count_variance(self) -> float:
        return float(sum(f.ellipse_uncertainty**2 for f in self.fits) + sum(var for _, var in self.counted.values()))

    @property
    def uncertainty(self) -> float:
        return math.sqrt(self.fit_and_count_variance + (self.bound.variance if self.bound else 0.0))

    def as_dict(self) -> dict:
        return {"value": self.value, "uncertainty": self.uncertainty, "fallback": self.fallback,
                "fitted": self.fitted, "fitted_uncertainty": math.sqrt(sum(f.ellipse_uncertainty**2 for f in self.fits)),
                "counted": {d: {"value": v, "uncertainty": math.sqrt(var)} for d, (v, var) in sorted(self.counted.items())},
                "from_mc_bound": self.bound is not None, "mc_bound": self.bound.as_dict() if self.bound else None,
                "min_events": self.min_events, "fits": [f.as_dict() for f in self.fits]}


def estimate_background(planes: dict[str, Plane], ellipse_counts: dict[str, tuple[float, float]], geometry: PlaneGeometry,
                        datasets: dict[str, dict], shapes: dict[str, Shape] | None = None, default_shape: Shape = "landau_exponential",
                        mbc_shape: MbcShape = "flat", min_events: float = 20.0) -> SidebandEstimate:
    """The sideband estimate of one channel.

    ``planes``: each background dataset's plane after all cuts but the ellipse (both regions);
    ``ellipse_counts``: its (yield, variance) in the ellipse, the plain count; ``datasets``: the run
    metadata (weights per event for the MC bound); ``shapes``: dE shape per dataset (else ``default_shape``).
    """
    shapes = shapes or {}
    fits, counted, notes = [], {}, []
    for name in sorted(set(planes) | set(ellipse_counts)):
        plane = planes.get(name)
        n_fit = 0.0
        if plane is not None:
            sb = geometry.in_sideband(plane.mbc_centres)
            y, var = float(plane.values[sb].sum()), float(plane.variances[sb].sum())
            n_fit = y * y / var if var > 0 else 0.0  # scaled (effective) counts
        if n_fit >= min_events:
            try:
                fit = fit_component(name, plane, geometry, shapes.get(name, default_shape), mbc_shape)
                fits.append(fit)
                if not fit.converged:
                    notes.append(f"{name}: no positive-definite covariance at the minimum: the ellipse yield's "
                                 f"uncertainty is its Poisson one from the {fit.fit_events:.0f} sideband events")
                continue
            except ValueError as err:
                notes.append(f"{name}: sideband fit failed ({err}): plain count in the ellipse")
        counted[name] = ellipse_counts.get(name, (0.0, 0.0))
    bound = mc_bound("signal", {d: v for d, (v, _) in counted.items()}, datasets)
    counted = {d: c for d, c in counted.items() if c[0] > 0}
    return SidebandEstimate(fits, counted, bound, min_events, notes)
