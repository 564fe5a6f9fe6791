"""Vectorised bump-hunt limits: a signal peak over a smooth background at many mass hypotheses at once.

For bkscalar (issue 13): at every hypothesis (mass m, resolution sigma(m)) the binned reduced-mass
spectrum in a window of +-``half_width`` sigma is fitted with

    nu_i = s f_i + a u_i + c d_i,    u_i = w_i (1 + x_i) / 2,   d_i = w_i (1 - x_i) / 2,

f_i the Gaussian peak's fraction in bin i, x_i in [-1, 1] the bin centre across the window and w_i the
bin width over the window's: a straight-line background written as two non-negative templates (so the
expected counts stay positive, and the same model is a pyhf workspace with three free normfactors, which
is how the benchmark checks it: ``benchmarks/bench_peak_scan.py``). Limits: 95 % CL one-sided CLs with
the asymptotic qtilde test statistic, as pyhf's ``AsymptoticCalculator`` computes it (POI bounded below
by 0; Asimov data at s = 0 with the background profiled on the observed data); expected bands -2..+2
sigma in pyhf's order. Every fit is a projected Newton iteration on (H, K) arrays -- H hypotheses with K
window bins each (padded and masked) -- and the limit a vectorised bisection, so no Python loop runs
over hypotheses. Simplifications: a Gaussian peak (the paper's double-sided Crystal Ball parameters are
not public) and a linear background per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf, ndtr, xlogy

from belle_rare.stats.fast_scan import BAND_SIGMAS, FastLimits

#: Newton steps of a fit from a cold start, of a warm-started one, and root-finding steps per limit (against
#: 12 / 60; an unconverged background fit overstates q, so warm fits get 4 steps: 2 left a near-edge
#: hypothesis at a third of its limit; benchmarks/bench_peak_scan.py checks against pyhf)
NEWTON_STEPS = 12
WARM_STEPS = 4
ROOT_STEPS = 10
_TINY = 1e-12


@dataclass(frozen=True)
class Windows:
    """The fit windows of H hypotheses, K bins each (padded): observed counts ``n``, templates ``f``
    (signal), ``u``, ``d`` (background), and ``mask`` of the real bins; all (H, K)."""

    n: np.ndarray
    f: np.ndarray
    u: np.ndarray
    d: np.ndarray
    mask: np.ndarray

    @property
    def templates(self) -> np.ndarray:
        """(H, K, 3): signal, background-up, background-down."""
        return np.stack([self.f, self.u, self.d], axis=-1)


def windows(edges: np.ndarray, counts: np.ndarray, masses: np.ndarray, sigmas: np.ndarray, half_width: float = 5.0) -> Windows:
    """Fit windows of the spectrum (``counts`` in bins ``edges``) around each mass, +-``half_width`` sigma
    (at least 5 bins, clipped to the histogram)."""
    edges, counts = np.asarray(edges, float), np.asarray(counts, float)
    masses, sigmas = np.asarray(masses, float), np.asarray(sigmas, float)
    width = edges[1] - edges[0]
    lo = np.clip(np.floor((masses - half_width * sigmas - edges[0]) / width), 0, len(counts) - 5).astype(int)
    hi = np.clip(np.ceil((masses + half_width * sigmas - edges[0]) / width), lo + 5, len(counts)).astype(int)
    k = int((hi - lo).max())
    index = lo[:, None] + np.arange(k)[None, :]
    mask = index < hi[:, None]
    index = np.minimum(index, len(counts) - 1)
    n = np.where(mask, counts[index], 0.0)
    left, right = edges[index], edges[index + 1]
    z = lambda e: (e - masses[:, None]) / (np.sqrt(2.0) * sigmas[:, None])  # noqa: E731
    f = np.where(mask, 0.5 * (erf(z(right)) - erf(z(left))), 0.0)
    w_lo, w_hi = edges[lo], edges[hi]
    x = np.clip(2.0 * (0.5 * (left + right) - w_lo[:, None]) / (w_hi - w_lo)[:, None] - 1.0, -1.0, 1.0)
    share = np.where(mask, (right - left) / (w_hi - w_lo)[:, None], 0.0)
    return Windows(n, f, share * (1.0 + x) / 2.0, share * (1.0 - x) / 2.0, mask)


def _nll(theta: np.ndarray, n: np.ndarray, t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    nu = np.maximum(np.einsum("hkj,hj->hk", t, theta), _TINY)
    return np.sum(np.where(mask, nu - xlogy(n, nu), 0.0), axis=1)


def _fit(theta: np.ndarray, free: np.ndarray, n: np.ndarray, t: np.ndarray, mask: np.ndarray,
         lower: np.ndarray, steps: int | None = None) -> np.ndarray:
    """Minimise the Poisson NLL over the ``free`` parameters (bool, (3,)) from ``theta`` (H, 3), each >= its
    ``lower`` bound (3,): projected Newton steps (a parameter at its bound whose gradient points outward
    stays there). Starts are warm (the previous fit of the same data), so few steps are needed."""
    theta = theta.copy()
    idx = np.flatnonzero(free)
    tf = t[:, :, idx]
    for _ in range(NEWTON_STEPS if steps is None else steps):
        nu = np.maximum(np.einsum("hkj,hj->hk", t, theta), _TINY)
        r = np.where(mask, n / nu, 0.0)
        grad = np.einsum("hkj,hk->hj", tf, np.where(mask, 1.0 - r, 0.0))
        hess = np.einsum("hkj,hkl,hk->hjl", tf, tf, np.where(mask, r / nu, 0.0))
        # a ridge relative to the curvature: a window whose counts sit in one bin (sparse MC spectra) has a
        # rank-1 Hessian of size ~1e20; the ridge keeps it solvable and changes regular fits by 1e-9
        hess = hess + (1e-9 + 1e-9 * np.trace(hess, axis1=1, axis2=2))[:, None, None] * np.eye(len(idx))
        # parameters at their bound with the gradient pushing outward are held: Newton on the others only
        held = (theta[:, idx] <= lower[idx] + 1e-12) & (grad > 0)
        keep = ~held
        hess = hess * keep[:, :, None] * keep[:, None, :] + held[:, :, None] * np.eye(len(idx))
        step = -np.linalg.solve(hess, np.where(held, 0.0, grad)[:, :, None])[:, :, 0]
        theta[:, idx] = np.maximum(theta[:, idx] + step, lower[idx])
    return theta


@dataclass(frozen=True)
class Fits:
    """Per hypothesis: the free fit (s >= 0) and the background-only fit of the observed data, and the
    Asimov data at s = 0 built from the latter."""

    free: np.ndarray
    background_only: np.ndarray
    asimov: np.ndarray
    asimov_free: np.ndarray


_FREE_ALL = np.array([True, True, True])
_FREE_BKG = np.array([False, True, True])
_LOWER = np.array([0.0, 0.0, 0.0])


def _start(w: Windows) -> np.ndarray:
    """Background templates scaled to the window's counts, no signal."""
    total = np.maximum(np.sum(w.n, axis=1), 1.0)
    return np.stack([np.zeros(len(total)), total, total], axis=1)


def fit_all(w: Windows) -> Fits:
    t = w.templates
    start = _start(w)
    bkg = _fit(start, _FREE_BKG, w.n, t, w.mask, _LOWER)
    free = _fit(bkg, _FREE_ALL, w.n, t, w.mask, _LOWER)
    asimov = np.where(w.mask, np.einsum("hkj,hj->hk", t, bkg), 0.0)
    return Fits(free, bkg, asimov, bkg.copy())


def qtilde(s: np.ndarray, n: np.ndarray, w: Windows, free: np.ndarray, start: np.ndarray,
           steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(qtilde(s), the conditional fit) for data ``n`` (H, K) given its free fit ``free`` (H, 3; s_hat >= 0);
    the background fit starts from ``start`` (H, 3)."""
    t = w.templates
    cond = start.copy()
    cond[:, 0] = s
    cond = _fit(cond, _FREE_BKG, n, t, w.mask, _LOWER, steps)
    q = 2.0 * (_nll(cond, n, t, w.mask) - _nll(free, n, t, w.mask))
    return np.where(free[:, 0] > s, 0.0, np.maximum(q, 0.0)), cond


def cls(s: np.ndarray, w: Windows, fits: Fits) -> tuple[np.ndarray, np.ndarray]:
    """Observed CLs (H,) and expected CLs (5, H) at signal yields ``s`` (H,), asymptotic qtilde (pyhf)."""
    q = qtilde(s, w.n, w, fits.free, fits.background_only)[0]
    q_a = qtilde(s, fits.asimov, w, fits.asimov_free, fits.background_only)[0]
    sq, sq_a = np.sqrt(q), np.sqrt(q_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(sq <= sq_a, sq - sq_a, (q - q_a) / (2.0 * sq_a))
        cls_obs = ndtr(-(tt + sq_a)) / ndtr(-tt)
        k = np.asarray(BAND_SIGMAS, dtype=float)[::-1][:, None]
        cls_exp = ndtr(-(k + sq_a)) / ndtr(-k)
    return cls_obs, cls_exp


def _cls_curves(s: np.ndarray, w: Windows, fits: Fits, starts: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """log CLs (6, H) at the yields ``s`` (6, H): row 0 observed (q and q_A), rows 1-5 the expected bands
    -2..+2 sigma (q_A only). ``starts`` holds each curve's last conditional fits (updated: warm starts)."""
    out = np.empty_like(s)
    q, starts["obs"] = qtilde(s[0], w.n, w, fits.free, starts["obs"], steps)
    q_a, starts["obs_a"] = qtilde(s[0], fits.asimov, w, fits.asimov_free, starts["obs_a"], steps)
    sq, sq_a = np.sqrt(q), np.sqrt(q_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(sq <= sq_a, sq - sq_a, (q - q_a) / (2.0 * sq_a))
        out[0] = np.log(np.maximum(ndtr(-(tt + sq_a)), 1e-300)) - np.log(np.maximum(ndtr(-tt), 1e-300))
    bands = np.asarray(BAND_SIGMAS, dtype=float)[::-1]
    for r in range(1, 6):  # the five band curves (not hypotheses): a fixed, small loop
        q_a, starts[r] = qtilde(s[r], fits.asimov, w, fits.asimov_free, starts[r], steps)
        out[r] = np.log(np.maximum(ndtr(-(bands[r - 1] + np.sqrt(q_a))), 1e-300)) - np.log(ndtr(-bands[r - 1]))
    return out


def upper_limits(w: Windows, cl: float = 0.95, iterations: int = ROOT_STEPS, fits: Fits | None = None) -> FastLimits:
    """Observed and expected (-2..+2 sigma) upper limits on the signal yield s of every hypothesis.

    Each of the six curves log CLs(s) - log(1 - cl) is solved by the Illinois variant of regula falsi on a
    bracket [0, s_max] (CLs(0) = 1), all hypotheses at once, with warm-started background fits (``fits``:
    the free and background-only fits of ``w`` if already made)."""
    fits = fit_all(w) if fits is None else fits
    target = np.log(1.0 - cl)
    h = len(w.n)
    total = np.sum(w.n, axis=1)
    lo = np.zeros((6, h))
    hi = np.tile(10.0 * np.sqrt(total + 1.0) + 10.0 + fits.free[:, 0], (6, 1))
    starts: dict = {k: fits.background_only.copy() for k in ("obs", "obs_a", 1, 2, 3, 4, 5)}
    f_lo = np.zeros((6, h)) - target  # log CLs(0) = 0
    f_hi = _cls_curves(hi, w, fits, starts, NEWTON_STEPS) - target
    side = np.zeros((6, h))
    x = lo
    for _ in range(iterations):
        with np.errstate(divide="ignore", invalid="ignore"):  # f_hi == f_lo takes the midpoint
            x = np.where(f_hi != f_lo, hi - f_hi * (hi - lo) / (f_hi - f_lo), 0.5 * (lo + hi))
        x = np.clip(x, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        fx = _cls_curves(x, w, fits, starts, WARM_STEPS) - target
        right = fx < 0  # excluded: the root is below x
        # Illinois: halve the stale end's value when the same side moves twice
        f_lo = np.where(right & (side == 1), 0.5 * f_lo, f_lo)
        f_hi = np.where(~right & (side == -1), 0.5 * f_hi, f_hi)
        hi, f_hi = np.where(right, x, hi), np.where(right, fx, f_hi)
        lo, f_lo = np.where(right, lo, x), np.where(right, f_lo, fx)
        side = np.where(right, 1, -1)
    return FastLimits(x[0], x[1:], "peak scan, asymptotic qtilde")


def pyhf_spec(w: Windows, h: int, poi_max: float = 1000.0) -> dict:
    """The same model of hypothesis ``h`` as a pyhf workspace (three free normfactors: ``mu`` on the peak,
    ``a`` and ``c`` on the background templates), for full-fit cross-checks of the fast path."""
    m = w.mask[h]
    big = float(100.0 * (w.n[h].sum() + 10.0))
    sample = lambda name, data, par: {"name": name, "data": [float(v) for v in data[h][m]],  # noqa: E731
                                      "modifiers": [{"name": par, "type": "normfactor", "data": None}]}
    start = float(max(w.n[h].sum(), 1.0))
    return {
        "channels": [{"name": "window", "samples": [sample("signal", w.f, "mu"), sample("bkg_up", w.u, "a"),
                                                    sample("bkg_down", w.d, "c")]}],
        "observations": [{"name": "window", "data": [float(v) for v in w.n[h][m]]}],
        "measurements": [{"name": "scan", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, poi_max]]},
            {"name": "a", "bounds": [[0.0, big]], "inits": [start]},
            {"name": "c", "bounds": [[0.0, big]], "inits": [start]}]}}],
        "version": "1.0.0",
    }


def local_significance(w: Windows, fits: Fits) -> np.ndarray:
    """Signed local significance Z (H,) of the best-fit peak at every hypothesis.

    An excess (s_hat > 0): Z = sqrt(q0), q0 = 2 (NLL(s = 0) - NLL(s_hat)) the likelihood ratio of the fits
    in ``fits``. A deficit (s_hat at its bound 0): the score test at s = 0 with the background profiled,
    Z = -(dNLL/ds) / sqrt(I_ss - I_sb I_bb^-1 I_bs) (expected information at the background-only fit),
    which is negative there and equals sqrt(q0) to leading order where both apply."""
    t, mask = w.templates, w.mask
    q0 = np.maximum(2.0 * (_nll(fits.background_only, w.n, t, mask) - _nll(fits.free, w.n, t, mask)), 0.0)
    nu = np.maximum(np.einsum("hkj,hj->hk", t, fits.background_only), _TINY)
    grad_s = np.sum(np.where(mask, w.f * (1.0 - w.n / nu), 0.0), axis=1)
    info = np.einsum("hkj,hkl,hk->hjl", t, t, np.where(mask, 1.0 / nu, 0.0))
    bb = info[:, 1:, 1:] + (1e-9 + 1e-9 * np.trace(info[:, 1:, 1:], axis1=1, axis2=2))[:, None, None] * np.eye(2)
    schur = info[:, 0, 0] - np.einsum("hj,hj->h", info[:, 0, 1:], np.linalg.solve(bb, info[:, 1:, 0:1])[:, :, 0])
    score = -grad_s / np.sqrt(np.maximum(schur, _TINY))
    return np.where(fits.free[:, 0] > 0.0, np.sqrt(q0), np.minimum(score, 0.0))


@dataclass(frozen=True)
class SpectrumScan:
    """One spectrum (``counts`` in bins ``edges``) to scan at ``masses`` with peak widths ``sigmas``; ``key``
    is carried to the result (e.g. channel and lifetime)."""

    key: tuple
    edges: np.ndarray
    counts: np.ndarray
    masses: np.ndarray
    sigmas: np.ndarray
    cl: float = 0.95
    half_width: float = 5.0


@dataclass(frozen=True)
class SpectrumResult:
    """Per hypothesis of a ``SpectrumScan``: limits on the signal yield (observed (H,), expected (5, H)
    -2..+2 sigma), the signed local significance and the fitted signal yield."""

    key: tuple
    observed: np.ndarray
    expected: np.ndarray
    local_significance: np.ndarray
    signal_yield: np.ndarray
    seconds: float


def scan_spectrum(task: SpectrumScan) -> SpectrumResult:
    """Every hypothesis of one spectrum at once (a top-level function: ``parallel_map`` ships it to
    processes or dask workers)."""
    import time

    start = time.perf_counter()
    w = windows(task.edges, task.counts, task.masses, task.sigmas, task.half_width)
    fits = fit_all(w)
    limits = upper_limits(w, task.cl, fits=fits)
    z = local_significance(w, fits)
    return SpectrumResult(task.key, limits.observed, limits.expected, z, fits.free[:, 0], time.perf_counter() - start)
