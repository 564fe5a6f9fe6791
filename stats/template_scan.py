"""Vectorised binned template fits with per-bin shape uncertainties, many hypotheses at once.

For zprime's per-mass 2D fit (issue 14): hypothesis h has K bins (padded, masked) with observed counts
n, a signal template s (normalised to one event in total), its resolution variations s_up / s_down and a
background template b fixed to simulation. The model, bin k:

    nu_k = x f(t) s_k(a) + g_k b_k,
    f(t) = hi^t (t >= 1), lo^-t (t <= -1), 1 + sum_i c_i t^i (|t| < 1)    pyhf normsys code 4, hi/lo = 1 +- kappa,
    s_k(a) = s_k + a (s_up - s) (a > 1), s_k + a (s - s_down) (a < -1),
             s_k + a S_k + a^2 A_k (15 - 10 a^2 + 3 a^4) (|a| <= 1)        pyhf histosys code 4p,
    constraints: t ~ N(0, 1), a ~ N(0, 1), m_k ~ Poisson(g_k tau_k), tau_k = (b_k / sigma_k)^2,

the interpolation codes pyhf 0.7.6's ``Model`` uses by default (pyhf/pdf.py ``default_modifier_settings``:
normsys ``code4``, histosys ``code4p``; pyhf/interpolators/code4.py, code4p.py): the c_i make f continuous with
its first two derivatives at |t| = 1 (6th-order polynomial), S = (Delta_up + Delta_down) / 2,
A = (Delta_up - Delta_down) / 16 with Delta_up = s_up - s, Delta_down = s - s_down.

x the signal yield (the POI, >= 0), kappa the signal-normalisation uncertainty (efficiency and luminosity),
g_k the per-bin background gammas of a pyhf ``shapesys`` with absolute uncertainty sigma_k (the template's
shape uncertainty and its MC statistics in quadrature: "the uncertainties on the template shapes
independently affect each of the bins", arXiv:2212.03066). The same model as a pyhf workspace is
``pyhf_spec``; ``benchmarks/bench_zprime_scan.py`` compares the two.

Fits: Newton steps on the three global parameters (x, t, a) with the K gammas eliminated exactly by the
Schur complement of their diagonal block, Fisher-scoring curvature (n / nu^2, always positive), all
hypotheses at once ((H, K) arrays, no loop over hypotheses). Limits: one-sided CLs with the asymptotic
qtilde statistic as pyhf's ``AsymptoticCalculator`` (Asimov data from the background-only fit of the
observed data, auxiliary data included), expected bands -2..+2 sigma, by vectorised regula falsi.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtr, xlogy

from belle_rare.stats.binned_likelihood import CODE4_A_INVERSE
from belle_rare.stats.fast_scan import BAND_SIGMAS, FastLimits

#: Newton steps of a cold fit and of a warm-started one (the previous fit of the same data at a nearby x)
COLD_STEPS = 25
WARM_STEPS = 6
ROOT_STEPS = 14
BRACKET_WIDENINGS = 6
BACKTRACKS = 6
NUISANCE_BOUND = 5.0
_TINY = 1e-300
_FLOOR = 1e-12


@dataclass(frozen=True)
class Windows:
    """H hypotheses x K bins (padded; ``mask`` marks real bins). ``s``, ``s_up``, ``s_down``: signal template
    and its resolution variations (sum(s) = 1 over a window); ``b`` background; ``sigma_b`` its absolute
    per-bin uncertainty; ``n`` observed counts; ``kappa`` (H,) the relative signal-normalisation uncertainty."""

    n: np.ndarray
    s: np.ndarray
    s_up: np.ndarray
    s_down: np.ndarray
    b: np.ndarray
    sigma_b: np.ndarray
    kappa: np.ndarray
    mask: np.ndarray

    @property
    def tau(self) -> np.ndarray:
        """Poisson-constraint strength of each gamma; 1 (a gamma that touches nothing) where b = 0."""
        ok = (self.b > 0) & (self.sigma_b > 0)
        return np.where(ok, (self.b / np.where(ok, self.sigma_b, 1.0)) ** 2, 1.0)


@dataclass(frozen=True)
class Aux:
    """Auxiliary data: the centres of the t and a constraints (H,) and the gammas' counts m (H, K)."""

    t0: np.ndarray
    a0: np.ndarray
    m: np.ndarray


def nominal_aux(w: Windows) -> Aux:
    h = len(w.n)
    return Aux(np.zeros(h), np.zeros(h), w.tau.copy())


@dataclass
class Params:
    """x (H,), t (H,), a (H,), g (H, K)."""

    x: np.ndarray
    t: np.ndarray
    a: np.ndarray
    g: np.ndarray

    def copy(self) -> "Params":
        return Params(self.x.copy(), self.t.copy(), self.a.copy(), self.g.copy())


def _norm_factor(t: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f(t) of pyhf's normsys code 4 with hi = 1 + kappa, lo = 1 - kappa, and its first two derivatives."""
    up, dn = 1.0 + kappa, 1.0 - kappa
    l_up, l_dn = np.log(up), np.log(dn)
    b = np.stack([up - 1, dn - 1, l_up * up, -l_dn * dn, l_up**2 * up, l_dn**2 * dn])   # (6, H)
    # pyhf's code-4 matrix (binned_likelihood): c_1..c_6 from (d_up - 1, d_dn - 1, ln d_up d_up, -ln d_dn d_dn,
    # ln^2 d_up d_up, ln^2 d_dn d_dn), d = hi or lo over nominal
    c = CODE4_A_INVERSE @ b                                                            # (6, H)
    powers = np.arange(1, 7)[:, None]
    poly = 1.0 + np.sum(c * t[None, :] ** powers, axis=0)
    dpoly = np.sum(powers * c * t[None, :] ** (powers - 1), axis=0)
    d2poly = np.sum(powers * (powers - 1) * c * t[None, :] ** np.maximum(powers - 2, 0), axis=0)
    log_k = np.where(t >= 0, l_up, -l_dn)
    expo = np.exp(log_k * t)
    outside = np.abs(t) >= 1.0
    return (np.where(outside, expo, poly), np.where(outside, log_k * expo, dpoly),
            np.where(outside, log_k**2 * expo, d2poly))


def _signal_shape(w: Windows, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s(a) of pyhf's histosys code 4p and ds/da, (H, K)."""
    up, down = w.s_up - w.s, w.s - w.s_down
    S, A = 0.5 * (up + down), 0.0625 * (up - down)
    x = a[:, None]
    inside = S * x + A * x**2 * (15.0 + x**2 * (-10.0 + 3.0 * x**2))
    d_inside = S + A * (30.0 * x - 40.0 * x**3 + 18.0 * x**5)
    delta = np.where(x > 1.0, up * x, np.where(x < -1.0, down * x, inside))
    slope = np.where(x > 1.0, up, np.where(x < -1.0, down, d_inside))
    return w.s + delta, slope


def expected(w: Windows, p: Params) -> np.ndarray:
    f, _, _ = _norm_factor(p.t, w.kappa)
    shape, _ = _signal_shape(w, p.a)
    return np.where(w.mask, (p.x * f)[:, None] * shape + p.g * w.b, 0.0)


def nll(w: Windows, n: np.ndarray, aux: Aux, p: Params) -> np.ndarray:
    """-log L up to terms that do not depend on the parameters, (H,)."""
    nu = np.maximum(expected(w, p), _FLOOR)
    tau = w.tau
    main = np.sum(np.where(w.mask, nu - xlogy(n, nu), 0.0), axis=1)
    gam = np.sum(np.where(w.mask & (w.b > 0), tau * p.g - xlogy(aux.m, tau * p.g), 0.0), axis=1)
    return main + gam + 0.5 * (p.t - aux.t0) ** 2 + 0.5 * (p.a - aux.a0) ** 2


def fit(w: Windows, n: np.ndarray, aux: Aux, start: Params, fix_x: bool, steps: int = COLD_STEPS) -> Params:
    """Minimise the NLL from ``start``: x >= 0 free (``fix_x`` False) or held at start.x; gammas > 0."""
    p = start.copy()
    tau = w.tau
    has_b = w.mask & (w.b > 0)
    eye = np.eye(3)
    for _ in range(steps):
        f, df, d2f = _norm_factor(p.t, w.kappa)
        shape, dshape = _signal_shape(w, p.a)
        nu = np.maximum(np.where(w.mask, (p.x * f)[:, None] * shape + p.g * w.b, 0.0), _FLOOR)
        r = np.where(w.mask, n / nu, 0.0)
        wgt = np.where(w.mask, n / nu**2, 0.0)   # Fisher-scoring curvature of the Poisson terms
        one = np.where(w.mask, 1.0 - r, 0.0)
        # derivatives of nu with respect to (x, t, a): (H, K, 3)
        d = np.stack([f[:, None] * shape, (p.x * df)[:, None] * shape, (p.x * f)[:, None] * dshape], axis=-1)
        grad_g = np.einsum("hkj,hk->hj", d, one) + np.stack([np.zeros_like(p.t), p.t - aux.t0, p.a - aux.a0], axis=1)
        hess_g = np.einsum("hki,hkj,hk->hij", d, d, wgt)
        hess_g[:, 1, 1] += 1.0
        hess_g[:, 2, 2] += 1.0
        # gammas: gradient, diagonal curvature, coupling to the globals
        gm = np.where(has_b, p.g, 1.0)
        grad_k = np.where(has_b, w.b * one + tau - aux.m / gm, 0.0)
        diag = np.where(has_b, np.maximum(w.b**2 * wgt + aux.m / gm**2, 1e-12), 1.0)
        cross = np.where(has_b[:, :, None], (w.b * wgt)[:, :, None] * d, 0.0)
        # x held: fixed by the caller, or at its bound 0 with the gradient pushing it below
        held = np.full(len(p.x), fix_x) | ((p.x <= 0.0) & (grad_g[:, 0] > 0))
        free = np.stack([~held, np.ones_like(held), np.ones_like(held)], axis=1)
        reduced = hess_g - np.einsum("hki,hkj,hk->hij", cross, cross, 1.0 / diag)
        rgrad = grad_g - np.einsum("hki,hk->hi", cross, grad_k / diag)
        reduced = reduced * free[:, :, None] * free[:, None, :] + (~free)[:, :, None] * eye
        rgrad = np.where(free, rgrad, 0.0)
        # Jacobi scaling and a curvature-relative ridge: the (t, a) block can be ~1e16 and nearly rank one
        # where a huge trial yield sits in background-free bins
        scale = 1.0 / np.sqrt(np.maximum(np.einsum("hii->hi", reduced), 1e-300))
        scaled = reduced * scale[:, :, None] * scale[:, None, :] + 1e-9 * eye
        step = -scale * np.linalg.solve(scaled, (scale * rgrad)[:, :, None])[:, :, 0]
        step_g = -(grad_k + np.einsum("hki,hi->hk", cross, step)) / diag
        # backtracking: a step that raises the NLL (or leaves the region where every nu > 0) is halved
        old = nll(w, n, aux, p)
        accepted = np.zeros(len(p.x), bool)
        trial = p.copy()
        lam = np.ones(len(p.x))
        for _ in range(BACKTRACKS):  # a few halvings, all hypotheses at once
            cand = Params(
                np.where(held, p.x, np.maximum(p.x + lam * step[:, 0], 0.0)),
                # pyhf's default bounds of normsys / histosys parameters
                np.clip(p.t + lam * step[:, 1], -NUISANCE_BOUND, NUISANCE_BOUND),
                np.clip(p.a + lam * step[:, 2], -NUISANCE_BOUND, NUISANCE_BOUND),
                # gammas stay positive: at most a factor 10 down per step
                np.where(has_b, np.maximum(p.g + lam[:, None] * step_g, 0.1 * p.g), 1.0))
            new = nll(w, n, aux, cand)
            ok = ~accepted & np.isfinite(new) & (new <= old + 1e-9 * np.abs(old)) & np.all(expected(w, cand) >= 0, axis=1)
            trial = select(ok, cand, trial)
            accepted |= ok
            lam = np.where(accepted, lam, 0.5 * lam)
            if accepted.all():
                break
        p = trial
    return p


def background_only(w: Windows) -> Params:
    h, k = w.n.shape
    return Params(np.zeros(h), np.zeros(h), np.zeros(h), np.ones((h, k)))


@dataclass(frozen=True)
class Fits:
    """The free fit of the observed data, the background-only fit (x = 0) and the Asimov data built from it."""

    free: Params
    background: Params
    asimov_n: np.ndarray
    asimov_aux: Aux
    asimov_free: Params


def fit_all(w: Windows) -> Fits:
    aux = nominal_aux(w)
    bkg = fit(w, w.n, aux, background_only(w), fix_x=True)
    start = bkg.copy()
    start.x = np.maximum(np.sum(np.where(w.mask, w.n - w.b, 0.0), axis=1), 0.0) * 0.1
    free = fit(w, w.n, aux, start, fix_x=False)
    # pyhf: Asimov main and auxiliary data from the background-only fit of the observed data
    asimov_n = expected(w, bkg)
    asimov_aux = Aux(bkg.t.copy(), bkg.a.copy(), np.where(w.b > 0, bkg.g * w.tau, w.tau))
    asimov_free = fit(w, asimov_n, asimov_aux, bkg, fix_x=False, steps=WARM_STEPS)
    return Fits(free, bkg, asimov_n, asimov_aux, asimov_free)


def qtilde(x: np.ndarray, n: np.ndarray, aux: Aux, w: Windows, free: Params, start: Params,
           steps: int) -> tuple[np.ndarray, Params]:
    """qtilde(x) (H,) for data (n, aux) with free fit ``free``; the conditional fit starts from ``start``."""
    cond = start.copy()
    cond.x = np.asarray(x, float).copy()
    cond = fit(w, n, aux, cond, fix_x=True, steps=steps)
    q = 2.0 * (nll(w, n, aux, cond) - nll(w, n, aux, free))
    return np.where(free.x > x, 0.0, np.maximum(q, 0.0)), cond


def select(keep: np.ndarray, a: Params, b: Params) -> Params:
    """Per hypothesis, ``a`` where ``keep`` else ``b``."""
    return Params(np.where(keep, a.x, b.x), np.where(keep, a.t, b.t), np.where(keep, a.a, b.a), np.where(keep[:, None], a.g, b.g))


def _log_cls(q: np.ndarray, q_a: np.ndarray) -> np.ndarray:
    sq, sq_a = np.sqrt(q), np.sqrt(q_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(sq <= sq_a, sq - sq_a, (q - q_a) / (2.0 * sq_a))
        return np.log(np.maximum(ndtr(-(tt + sq_a)), _TINY)) - np.log(np.maximum(ndtr(-tt), _TINY))


def _curves(x: np.ndarray, w: Windows, fits: Fits, starts: dict, steps: int) -> np.ndarray:
    """log CLs (6, H) at yields x (6, H): row 0 observed, rows 1-5 expected -2..+2 sigma (Asimov q only);
    x of one row (1, H): the observed curve alone. ``starts`` keeps each curve's last conditional fit (warm starts)."""
    aux = nominal_aux(w)
    out = np.empty_like(x)
    q, starts["obs"] = qtilde(x[0], w.n, aux, w, fits.free, starts["obs"], steps)
    q_a, starts["obs_a"] = qtilde(x[0], fits.asimov_n, fits.asimov_aux, w, fits.asimov_free, starts["obs_a"], steps)
    out[0] = _log_cls(q, q_a)
    bands = np.asarray(BAND_SIGMAS, dtype=float)[::-1]
    for r in range(1, len(x)):  # the five band curves: a fixed, small loop (not over hypotheses)
        q_a, starts[r] = qtilde(x[r], fits.asimov_n, fits.asimov_aux, w, fits.asimov_free, starts[r], steps)
        out[r] = np.log(np.maximum(ndtr(-(bands[r - 1] + np.sqrt(q_a))), _TINY)) - np.log(ndtr(-bands[r - 1]))
    return out


def upper_limits(w: Windows, cl: float = 0.90, iterations: int = ROOT_STEPS, bands: bool = True) -> tuple[FastLimits, Fits]:
    """Observed and expected (-2..+2 sigma) upper limits on the signal yield x of every hypothesis, and the fits.

    Each of the six curves log CLs(x) - log(1 - cl) is solved by the Illinois variant of regula falsi on
    [0, x_max] (CLs(0) = 1), all hypotheses at once. ``bands=False``: the observed curve alone (the same
    values: each curve is solved on its own; toys need no bands), expected limits empty (0, H)."""
    fits = fit_all(w)
    # solved in F(x) = sqrt(-2 log CLs) - sqrt(-2 log(1 - cl)): -2 log CLs grows ~ q ~ x^2, so F is close to
    # linear in x and regula falsi converges in a few steps (on log CLs itself it crawls)
    target = np.sqrt(-2.0 * np.log(1.0 - cl))

    def curves(x: np.ndarray, starts: dict, steps: int) -> np.ndarray:
        return np.sqrt(np.maximum(-2.0 * _curves(x, w, fits, starts, steps), 0.0)) - target

    h = len(w.n)
    b_win = np.sum(np.where(w.mask, w.b, 0.0), axis=1)
    # bracket: a few times the counting limit of the whole window with its shape uncertainty fully
    # correlated (the 2D fit does better), widened by 4 where that is not yet excluded
    sigma_win = np.hypot(np.sqrt(b_win + 1.0), np.sum(np.where(w.mask, w.sigma_b, 0.0), axis=1))
    rows = 6 if bands else 1
    hi = np.tile(3.0 * 1.645 * sigma_win + 10.0 + 2.0 * fits.free.x, (rows, 1))
    lo = np.zeros((rows, h))
    starts: dict = {k: fits.background.copy() for k in ("obs", "obs_a", *range(1, rows))}
    f_lo = np.zeros((rows, h)) - target
    f_hi = curves(hi, starts, COLD_STEPS)
    for _ in range(BRACKET_WIDENINGS):  # a few widenings, each over all hypotheses at once
        wide = ~(f_hi > 0)
        if not wide.any():
            break
        hi = np.where(wide, 4.0 * hi, hi)
        fresh = {k: fits.background.copy() for k in starts}
        f_new = curves(hi, fresh, COLD_STEPS)
        f_hi = np.where(wide, f_new, f_hi)
        for k, v in fresh.items():
            keep = ~wide[0] if k in ("obs", "obs_a") else ~wide[k]
            starts[k] = select(keep, starts[k], v)
    side = np.zeros((rows, h))
    x = hi
    for _ in range(iterations):
        x = np.where(f_hi != f_lo, hi - f_hi * (hi - lo) / (f_hi - f_lo), 0.5 * (lo + hi))
        x = np.clip(x, lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))
        fx = curves(x, starts, WARM_STEPS)
        right = fx > 0  # excluded: the root is below x
        f_lo = np.where(right & (side == 1), 0.5 * f_lo, f_lo)
        f_hi = np.where(~right & (side == -1), 0.5 * f_hi, f_hi)
        hi, f_hi = np.where(right, x, hi), np.where(right, fx, f_hi)
        lo, f_lo = np.where(right, lo, x), np.where(right, f_lo, fx)
        side = np.where(right, 1, -1)
    return FastLimits(x[0], x[1:], "2D template fit, asymptotic qtilde"), fits


def local_significance(w: Windows, fits: Fits) -> np.ndarray:
    """Signed local significance of the best-fit signal: sqrt(q0) with the sign of x_hat (x unbounded
    below would give negative values; here x >= 0, so a deficit reads 0)."""
    aux = nominal_aux(w)
    q0 = 2.0 * (nll(w, w.n, aux, fits.background) - nll(w, w.n, aux, fits.free))
    return np.sqrt(np.maximum(q0, 0.0))


def subset(w: Windows, rows: np.ndarray) -> Windows:
    """The hypotheses ``rows`` only."""
    return replace(w, **{k: getattr(w, k)[rows] for k in ("n", "s", "s_up", "s_down", "b", "sigma_b", "kappa", "mask")})


def pyhf_spec(w: Windows, h: int, poi_max: float | None = None) -> dict:
    """Hypothesis ``h`` as a pyhf workspace: ``mu`` the signal yield (normfactor on the unit template),
    ``signal_norm`` (normsys), ``resolution`` (histosys), ``shape`` (shapesys on the background)."""
    m = w.mask[h] & ((w.s[h] > 0) | (w.s_up[h] > 0) | (w.s_down[h] > 0) | (w.b[h] > 0))
    lst = lambda v: [float(x) for x in v[h][m]]  # noqa: E731
    k = float(w.kappa[h])
    b_tot = float(w.b[h][m].sum())
    top = poi_max if poi_max is not None else 50.0 * np.sqrt(b_tot + 1.0) + 50.0
    return {
        "channels": [{"name": "window", "samples": [
            {"name": "signal", "data": lst(w.s), "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "signal_norm", "type": "normsys", "data": {"hi": 1.0 + k, "lo": 1.0 - k}},
                {"name": "resolution", "type": "histosys", "data": {"hi_data": lst(w.s_up), "lo_data": lst(w.s_down)}}]},
            {"name": "background", "data": lst(w.b), "modifiers": [
                {"name": "shape", "type": "shapesys", "data": lst(w.sigma_b)}]}]}],
        "observations": [{"name": "window", "data": lst(w.n)}],
        "measurements": [{"name": "scan", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, float(top)]]}]}}],
        "version": "1.0.0",
    }
