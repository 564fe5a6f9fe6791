"""Vectorised CLs upper limits for many one-bin counting hypotheses at once.

Two methods, both evaluated on numpy arrays of hypotheses (no Python loop per point):

* :func:`asymptotic_limits` -- the closed-form version of what pyhf computes for a one-bin
  model with the ``qtilde`` test statistic and the asymptotic calculator. The background is
  either exact or carries a Poisson-constrained (``shapesys``-like, "on/off") uncertainty,
  with tau = (b / sigma_b)^2, which has an analytic conditional MLE (a quadratic). It
  reproduces pyhf's observed and expected CLs to the precision of pyhf's own minimiser.
* :func:`poisson_limits` -- the classic counting CLs with the event count as test statistic,
  CLs(s) = P(N <= n | s + b) / P(N <= n | b), i.e. the infinite-toy limit of a counting
  experiment. Gaussian uncertainties on the signal and background yields are averaged over
  (Cousins-Highland, truncated at zero) with Gauss-Hermite quadrature. Expected bands use the
  quantiles of the background-only count distribution, so they respect the n = 0 floor.

Both return limits on the number of signal events (the test is invariant under s -> mu * s,
so mu_up = s_up / s). Roots are found by vectorised regula falsi in log(s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import gammaincc, ndtr, pdtr, xlogy

# pyhf orders expected CLs by the background-only test-statistic quantile +2 .. -2 sigma, which
# gives limits from the -2 sigma to the +2 sigma band; we keep that order everywhere.
BAND_SIGMAS = (-2, -1, 0, 1, 2)
_MAX_ITERATIONS = 100
_LOG_TOLERANCE = 1e-10


@dataclass(frozen=True)
class FastLimits:
    """Limits on signal events for H hypotheses: observed (H,), expected (5, H) from -2 to +2 sigma."""

    observed: np.ndarray
    expected: np.ndarray
    method: str

    def scaled(self, signal_per_poi: np.ndarray | float) -> "FastLimits":
        """The same limits in units of a POI that multiplies ``signal_per_poi`` events."""
        s = np.asarray(signal_per_poi, dtype=float)
        return FastLimits(self.observed / s, self.expected / s, self.method)


# ---------------------------------------------------------------------------------------------
# asymptotic qtilde, one bin, matching pyhf's AsymptoticCalculator
# ---------------------------------------------------------------------------------------------


def _profile_gamma(x, n, m, b, tau):
    """Conditional MLE of the background scale gamma at signal x for n ~ P(x + gamma b), m ~ P(gamma tau).

    d lnL / d gamma = 0 is the quadratic A g^2 - B g - C = 0 with the single positive root below.
    """
    a = (b + tau) * b
    bb = b * (n + m) - (b + tau) * x
    c = m * x
    return (bb + np.sqrt(bb * bb + 4.0 * a * c)) / (2.0 * a)


def _loglike(x, gamma, n, m, b, tau):
    lam = x + gamma * b
    out = xlogy(n, lam) - lam
    if tau is not None:
        out = out + xlogy(m, gamma * tau) - gamma * tau
    return out


def _qtilde(x, n, m, b, tau):
    """The qtilde test statistic of pyhf (POI bounded below by 0) for signal yield x."""
    if tau is None:  # exact background
        xhat = np.maximum(n - b, 0.0)
        q = 2.0 * (_loglike(xhat, 1.0, n, m, b, None) - _loglike(x, 1.0, n, m, b, None))
    else:
        ghat_free = m / tau
        xhat = n - ghat_free * b
        neg = xhat < 0  # the unconstrained fit would go below the POI bound: refit at x = 0
        xhat = np.where(neg, 0.0, xhat)
        ghat = np.where(neg, _profile_gamma(0.0, n, m, b, tau), ghat_free)
        gcond = _profile_gamma(x, n, m, b, tau)
        q = 2.0 * (_loglike(xhat, ghat, n, m, b, tau) - _loglike(x, gcond, n, m, b, tau))
    return np.where(xhat > x, 0.0, np.maximum(q, 0.0))


def asymptotic_cls(
    x: np.ndarray, n: np.ndarray, b: np.ndarray, b_unc: np.ndarray | float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Observed CLs and expected CLs (5 rows, -2..+2 sigma) at signal yield(s) ``x``.

    ``b_unc`` is the absolute background uncertainty, modelled as pyhf's ``shapesys``
    (Poisson auxiliary measurement with tau = (b / b_unc)^2); ``None`` or 0 means exact.
    All arguments broadcast against each other.
    """
    x, n, b = (np.asarray(v, dtype=float) for v in (x, n, b))
    tau = _tau(b, b_unc)
    m = tau  # the observed auxiliary count
    q = _qtilde(x, n, m, b, tau)
    # Asimov data for mu' = 0 with the nuisance profiled on the observed data, as pyhf does
    if tau is None:
        n_a, m_a = b, None
    else:
        g0 = _profile_gamma(0.0, n, m, b, tau)
        n_a, m_a = g0 * b, g0 * tau
    q_a = _qtilde(x, n_a, m_a, b, tau)
    sq, sq_a = np.sqrt(q), np.sqrt(q_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sq <= sq_a, sq - sq_a, (q - q_a) / (2.0 * sq_a))
        cls_obs = ndtr(-(t + sq_a)) / ndtr(-t)
        k = np.asarray(BAND_SIGMAS, dtype=float)[::-1].reshape((5,) + (1,) * sq_a.ndim)
        cls_exp = ndtr(-(k + sq_a)) / ndtr(-k)
    return cls_obs, cls_exp


def _tau(b, b_unc):
    if b_unc is None:
        return None
    b_unc = np.asarray(b_unc, dtype=float)
    if np.all(b_unc == 0):
        return None
    if np.any(b_unc <= 0):
        raise ValueError("background uncertainties must be all positive or all zero")
    return (np.asarray(b, dtype=float) / b_unc) ** 2


# ---------------------------------------------------------------------------------------------
# exact Poisson CLs (number of events as test statistic), nuisances marginalised
# ---------------------------------------------------------------------------------------------


def _nuisance_nodes(rel_unc: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale factors (H, K) and weights (H, K) of a unit-mean Gaussian truncated at zero."""
    rel_unc = np.atleast_1d(np.asarray(rel_unc, dtype=float))
    if np.all(rel_unc == 0):
        return np.ones((rel_unc.size, 1)), np.ones((rel_unc.size, 1))
    z, w = hermegauss(order)
    factor = 1.0 + rel_unc[:, None] * z[None, :]
    weight = np.where(factor > 0, w[None, :], 0.0)
    weight = weight / weight.sum(axis=1, keepdims=True)
    return np.maximum(factor, 0.0), weight


def poisson_cls(
    x: np.ndarray,
    n: np.ndarray,
    b: np.ndarray,
    rel_b_unc: np.ndarray | float = 0.0,
    rel_s_unc: np.ndarray | float = 0.0,
    order: int = 16,
) -> np.ndarray:
    """CLs = P(N <= n | x + b) / P(N <= n | b) for arrays of H hypotheses (x, n, b of shape (H,)).

    The Gaussian signal and background uncertainties are independent, so the expected count
    x + b is Gaussian with sigma^2 = (x d_s)^2 + (b d_b)^2; it is averaged over with one
    Gauss-Hermite quadrature, truncated at zero. (Truncating the total rather than each term
    differs only for relative uncertainties of tens of percent.)
    """
    x, n, b = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, n, b)))
    rb = np.broadcast_to(np.asarray(rel_b_unc, dtype=float), x.shape)
    rs = np.broadcast_to(np.asarray(rel_s_unc, dtype=float), x.shape)
    fb, wb = _nuisance_nodes(rb, order)  # (H, K)
    clb = np.sum(wb * _poisson_cdf(n[:, None], b[:, None] * fb), axis=1)
    total = x + b
    rel_total = np.sqrt((x * rs) ** 2 + (b * rb) ** 2) / total
    ft, wt = _nuisance_nodes(rel_total, order)
    clsb = np.sum(wt * _poisson_cdf(n[:, None], total[:, None] * ft), axis=1)
    return clsb / clb


def _poisson_cdf(n: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """P(N <= n | lam) = Q(n + 1, lam); for a non-integer (Asimov) n its continuous extension."""
    return gammaincc(n + 1.0, lam)


def _max_count(b, rel_b_unc) -> int:
    """A count beyond every +2 sigma quantile of the background-only distribution."""
    high = float(np.max(np.asarray(b) * (1 + 3 * np.asarray(rel_b_unc))))
    return int(high + 10 * np.sqrt(high) + 10)


def _count_quantiles(b, rel_b_unc, order, max_n):
    """Smallest n with P(N <= n | b) >= Phi(k) for k = -2..2, under the marginalised background."""
    b = np.atleast_1d(b)
    fb, wb = _nuisance_nodes(np.broadcast_to(rel_b_unc, (b.size,)), order)
    ns = np.arange(max_n + 1, dtype=float)
    cdf = np.einsum("hk,hkn->hn", wb, pdtr(ns[None, None, :], (b[:, None] * fb)[:, :, None]))
    probs = ndtr(np.asarray(BAND_SIGMAS, dtype=float))
    # first n where the CDF reaches the quantile; searchsorted per row
    return np.stack([(cdf < p).sum(axis=1) for p in probs]).astype(float)  # (5, H)


def poisson_cls_curve(
    x: np.ndarray, n: float, b: float, rel_b_unc: float = 0.0, rel_s_unc: float = 0.0, order: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Observed CLs (G,) and expected CLs (5, G; -2..+2 sigma) of one counting experiment on a grid of x."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    n_exp = _count_quantiles(np.array([b]), rel_b_unc, order, _max_count(b, rel_b_unc))[:, 0]
    counts = np.concatenate([[n], n_exp])
    cls = np.stack([poisson_cls(x, np.full_like(x, c), np.full_like(x, b), rel_b_unc, rel_s_unc, order) for c in counts])
    return cls[0], cls[1:]


# ---------------------------------------------------------------------------------------------
# vectorised root finding
# ---------------------------------------------------------------------------------------------


def _solve(cls_of_x, alpha: float, shape: tuple[int, ...], guess: np.ndarray) -> np.ndarray:
    """x > 0 with cls_of_x(x) = alpha, elementwise, for CLs decreasing in x.

    The bracket [guess / 2, 2 guess] widens by factors of 2 until it holds the root; then the
    Illinois variant of regula falsi on log(CLs / alpha) against log(x), which is close to
    linear, so ~10 vectorised calls of ``cls_of_x`` on all points reach 1e-10 in log(x).
    """
    log_alpha = np.log(alpha)

    def g(t):
        with np.errstate(divide="ignore"):
            return np.log(cls_of_x(np.exp(t))) - log_alpha

    centre = np.log(np.broadcast_to(guess, shape).astype(float))
    a, b = centre - np.log(2.0), centre + np.log(2.0)
    fa, fb = g(a), g(b)
    for _ in range(200):
        low, high = ~(fa > 0), fb >= 0  # (NaN at the low end counts as "not yet bracketed")
        if not (low.any() or high.any()):
            break
        a = np.where(low, a - np.log(4.0), a)
        b = np.where(high, b + np.log(2.0), b)
        fa = np.where(low, g(a), fa)
        fb = np.where(high, g(b), fb)
    else:
        raise RuntimeError("no CLs crossing of alpha found: no upper limit")
    side = np.zeros(shape)
    for _ in range(_MAX_ITERATIONS):
        c = (a * fb - b * fa) / (fb - fa)
        fc = g(c)
        right = fc < 0  # the root is left of c: c replaces b
        b = np.where(right, c, b)
        fb_new = np.where(right, fc, fb)
        a = np.where(right, a, c)
        fa_new = np.where(right, fa, fc)
        # Illinois: halve the value kept twice in a row, so the stale end does not stall
        fa_new = np.where(right & (side == -1), fa_new / 2.0, fa_new)
        fb_new = np.where(~right & (side == 1), fb_new / 2.0, fb_new)
        side = np.where(right, -1, 1)
        fa, fb = fa_new, fb_new
        if np.all((b - a < _LOG_TOLERANCE) | (np.abs(fc) < _LOG_TOLERANCE)):
            return np.exp(c)
    raise RuntimeError("CLs root finding did not converge")


def asymptotic_limits(
    n: np.ndarray, b: np.ndarray, b_unc: np.ndarray | float | None = None, cl: float = 0.95
) -> FastLimits:
    """Asymptotic qtilde CLs limits on signal events, as pyhf would find them, for H hypotheses."""
    n, b = np.broadcast_arrays(np.atleast_1d(np.asarray(n, float)), np.atleast_1d(np.asarray(b, float)))
    b_unc_arr = None if b_unc is None else np.broadcast_to(np.asarray(b_unc, float), n.shape)
    alpha = 1.0 - cl
    guess = 2.0 * np.sqrt(b + 1.0) + 0.5 * n  # natural size of a limit: a few sqrt(b) plus the count

    def curves(x):  # x: (6, H) -> CLs (6, H): observed, then expected -2..+2 sigma
        obs, _ = asymptotic_cls(x[0], n, b, b_unc_arr)
        exp = np.stack([asymptotic_cls(x[i + 1], n, b, b_unc_arr)[1][i] for i in range(5)])
        return np.concatenate([obs[None], exp])

    x = _solve(curves, alpha, (6,) + n.shape, guess)
    return FastLimits(x[0], x[1:], "asymptotic qtilde (closed form, one bin)")


def poisson_limits(
    n: np.ndarray,
    b: np.ndarray,
    rel_b_unc: np.ndarray | float = 0.0,
    rel_s_unc: np.ndarray | float = 0.0,
    cl: float = 0.95,
    order: int = 16,
) -> FastLimits:
    """Exact-Poisson CLs limits on signal events for H hypotheses (integer counts ``n``).

    Expected limits are the limits at the background-only count quantiles, so the -2 sigma
    band never drops below the n = 0 limit (where asymptotic formulae do). A non-integer
    ``n`` (an Asimov observation) uses the continuous extension of the Poisson CDF.
    """
    n, b = np.broadcast_arrays(np.atleast_1d(np.asarray(n, float)), np.atleast_1d(np.asarray(b, float)))
    if np.any(n < 0):
        raise ValueError("observed counts must be non-negative")
    rb = np.broadcast_to(np.asarray(rel_b_unc, float), n.shape)
    rs = np.broadcast_to(np.asarray(rel_s_unc, float), n.shape)
    n_exp = _count_quantiles(b, rb, order, _max_count(b, rb))  # (5, H)
    n_all = np.concatenate([n[None], n_exp])  # (6, H)
    b_all, rb_all, rs_all = (np.broadcast_to(v, n_all.shape).ravel() for v in (b, rb, rs))
    alpha = 1.0 - cl

    def curve(x):
        return poisson_cls(x.ravel(), n_all.ravel(), b_all, rb_all, rs_all, order).reshape(n_all.shape)

    x = _solve(curve, alpha, n_all.shape, n_all + 3.0)  # ~ the limit for n events and b << n
    return FastLimits(x[0], x[1:], "exact Poisson CLs (event count test statistic)")
