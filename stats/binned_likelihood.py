"""A pyhf model's likelihood in numpy with its analytic gradient, and pyhf's asymptotic CLs from it.

Why: pyhf's numpy backend minimises with scipy and *numerical* gradients, one likelihood evaluation
per parameter per step. The kstartautau Belle II fit (four categories x 12 bins, a ``staterror``
gamma per bin: 55 parameters) then costs minutes per limit, the Belle + Belle II combination tens of
minutes. Here the same likelihood -- the same spec, the same parameters, bounds, constraints and
auxiliary data, read from the pyhf model itself -- is evaluated with its exact gradient, and L-BFGS-B
needs a few dozen evaluations per fit. The free fits and the Asimov data do not depend on the tested
POI value, so they are made once per limit (pyhf redoes them at every tested value).

Supported modifiers (everything ``stats.workspace`` writes): ``normfactor``, ``normsys`` (pyhf 0.7's
default interpolation, code 4: exponential beyond |alpha| = 1, a sixth-order polynomial inside),
``histosys`` (its default code 4p: linear beyond |alpha| = 1, a polynomial inside), ``staterror``
(Gaussian per bin, sigma = the channel's combined relative template uncertainty), ``shapesys``
(Poisson per bin, tau = (nominal / sigma)^2) and ``lumi``. :func:`supports` tells whether a spec
uses only these; anything else stays with pyhf.

The model, bin b of sample s:  nu_sb = (nom_sb + sum_h delta_h(alpha_h)) x prod_f phi_f,
the same order as pyhf's ``expected_actualdata`` (additive modifiers summed, then the factors).
``tests/test_binned_likelihood.py`` checks the log-likelihood against ``pyhf.Model.logpdf`` to 1e-9 and
CLs and limits against ``pyhf.infer.hypotest``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, ndtr, xlogy

from belle_rare.core.blas_threads import one_blas_thread
from belle_rare.stats.errors import FitError

SUPPORTED_MODIFIERS = frozenset({"normfactor", "normsys", "histosys", "staterror", "shapesys", "lumi"})
# nsigma of pyhf's expected set, in its order: the -2 sigma expected limit comes from nsigma = +2
_EXPECTED_NSIGMA = (2.0, 1.0, 0.0, -1.0, -2.0)
_LOG_ROOT_2PI = 0.5 * np.log(2.0 * np.pi)
_POWERS = np.arange(1, 7, dtype=float)
# pyhf 0.7.6 interpolators/code4.py, alpha0 = 1: the polynomial's coefficients from the values, first and
# second derivatives of hi^alpha and lo^-alpha at alpha = +-1
CODE4_A_INVERSE = np.array([
    [15 / 16, -15 / 16, -7 / 16, -7 / 16, 1 / 16, -1 / 16],
    [3 / 2, 3 / 2, -9 / 16, 9 / 16, 1 / 16, 1 / 16],
    [-5 / 8, 5 / 8, 5 / 8, 5 / 8, -1 / 8, 1 / 8],
    [-3 / 2, -3 / 2, 7 / 8, -7 / 8, -1 / 8, -1 / 8],
    [3 / 16, -3 / 16, -3 / 16, -3 / 16, 1 / 16, -1 / 16],
    [1 / 2, 1 / 2, -5 / 16, 5 / 16, 1 / 16, 1 / 16],
])


def supports(spec: dict) -> bool:
    """True if every modifier of the workspace spec is one this module evaluates."""
    return all(m["type"] in SUPPORTED_MODIFIERS for c in spec["channels"] for s in c["samples"] for m in s["modifiers"])


class BinnedLikelihood:
    """-log L of a pyhf model (the same value as ``-model.logpdf``), its gradient and Jacobian, in numpy.

    Dense arrays over S samples (of every channel) x B bins (of the main data; a sample is zero outside
    its channel's bins): no Python loop over samples, modifiers or bins per evaluation.
    * histosys h: the up / down shifts (H, S, B);
    * scalar factors (normfactor, lumi, normsys), one column per parameter: which samples it multiplies
      and, for normsys, each sample's hi / lo (S, K);
    * per-bin factors (staterror, shapesys) in layers (a sample may carry both): the parameter index
      of each (sample, bin), -1 where none (L, S, B).
    """

    def __init__(self, spec: dict, model) -> None:
        config = model.config
        if not supports(spec):
            unknown = sorted({m["type"] for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]} - SUPPORTED_MODIFIERS)
            raise ValueError(f"modifiers {', '.join(unknown)} are not supported by the analytic likelihood")
        self.npars = config.npars
        self.nmain = config.nmaindata
        self.poi_index = config.poi_index
        by_name = {c["name"]: c for c in spec["channels"]}
        samples = [(config.channel_slices[ch], smp) for ch in config.channels for smp in by_name[ch]["samples"]]
        n_s, n_b = len(samples), self.nmain
        self.nominal = np.zeros((n_s, n_b))
        histosys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        scalar: dict[int, dict] = {}  # parameter -> {"normsys": bool, "on": (S,), "hi": (S,), "lo": (S,)}
        layers: list[np.ndarray] = []
        for i, (bins, smp) in enumerate(samples):
            nominal = np.asarray(smp["data"], dtype=float)
            self.nominal[i, bins] = nominal
            layer = 0
            for mod in smp["modifiers"]:
                index = config.par_slice(mod["name"])
                kind = mod["type"]
                if kind == "histosys":
                    up, down = histosys.setdefault(index.start, (np.zeros((n_s, n_b)), np.zeros((n_s, n_b))))
                    up[i, bins] = np.asarray(mod["data"]["hi_data"], float) - nominal
                    down[i, bins] = nominal - np.asarray(mod["data"]["lo_data"], float)
                elif kind in ("staterror", "shapesys"):
                    if layer == len(layers):
                        layers.append(np.full((n_s, n_b), -1, dtype=int))
                    layers[layer][i, bins] = np.arange(index.start, index.stop)
                    layer += 1
                else:
                    col = scalar.setdefault(index.start, {"normsys": kind == "normsys", "on": np.zeros(n_s, bool),
                                                          "hi": np.ones(n_s), "lo": np.ones(n_s)})
                    col["on"][i] = True
                    if kind == "normsys":
                        col["hi"][i], col["lo"][i] = float(mod["data"]["hi"]), float(mod["data"]["lo"])
        self.hist_index = np.array(sorted(histosys), dtype=int)
        self.hist_up = np.array([histosys[k][0] for k in self.hist_index]).reshape(-1, n_s, n_b)
        self.hist_down = np.array([histosys[k][1] for k in self.hist_index]).reshape(-1, n_s, n_b)
        # code 4p inside |alpha| <= 1: alpha (S + alpha A (15 + alpha^2 (3 alpha^2 - 10)))
        self.hist_s = 0.5 * (self.hist_up + self.hist_down)
        self.hist_a = 0.0625 * (self.hist_up - self.hist_down)
        keys = sorted(scalar)
        self.scalar_index = np.array(keys, dtype=int)
        self.scalar_on = np.array([scalar[k]["on"] for k in keys]).reshape(-1, n_s).T  # (S, K)
        self.scalar_normsys = np.array([scalar[k]["normsys"] for k in keys], dtype=bool)
        hi = np.array([scalar[k]["hi"] for k in keys]).reshape(-1, n_s).T
        lo = np.array([scalar[k]["lo"] for k in keys]).reshape(-1, n_s).T
        self.log_hi, self.log_lo = np.log(hi), np.log(lo)
        # code 4 inside |alpha| < 1: 1 + sum_i c_i alpha^i, c = A^-1 b (pyhf's interpolators/code4.py, alpha0 = 1)
        b = np.array([hi - 1, lo - 1, self.log_hi * hi, -self.log_lo * lo, self.log_hi**2 * hi, self.log_lo**2 * lo])
        self.code4 = np.einsum("rc,csk->rsk", CODE4_A_INVERSE, b)  # (6, S, K)
        self.layers = np.array(layers, dtype=int).reshape(-1, n_s, n_b)
        self.layer_mask = self.layers >= 0
        self._layer_at = [np.nonzero(m) for m in self.layer_mask]  # (sample, bin) of each layer's parameters
        # constraints, concatenated: parameter indices, aux-data indices, sigma (normal) or tau (Poisson)
        normal: list[tuple] = []
        poisson: list[tuple] = []
        offset = self.nmain
        for name in config.auxdata_order:
            pset = config.param_set(name)
            sl = config.par_slice(name)
            pars = np.arange(sl.start, sl.stop)
            aux = np.arange(offset, offset + len(pars))
            offset += len(pars)
            if pset.pdf_type == "normal":
                normal.append((pars, aux, np.asarray(pset.width(), dtype=float)))
            elif pset.pdf_type == "poisson":
                poisson.append((pars, aux, np.asarray(pset.factors, dtype=float)))
            else:
                raise ValueError(f"parameter '{name}': constraint '{pset.pdf_type}' not supported")

        def joined(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not parts:
                return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
            return tuple(np.concatenate(x) for x in zip(*parts))

        self.normal_par, self.normal_aux, self.sigma = joined(normal)
        self.poisson_par, self.poisson_aux, self.tau = joined(poisson)
        self._normal_const = float(np.sum(np.log(self.sigma) + _LOG_ROOT_2PI))
        self.naux = offset - self.nmain
        self.last_iterations = 0

    # -- yields ---------------------------------------------------------------------------------

    def _terms(self, pars: np.ndarray):
        """Additive totals A (S, B); scalar factor values V and derivatives D (S, K); per-layer gammas
        G (L, S, B)."""
        total = self.nominal.copy()
        shift_deriv = None
        if len(self.hist_index):
            a = pars[self.hist_index][:, None, None]
            linear = np.where(a >= 0, self.hist_up, self.hist_down)
            a2 = a * a
            poly = a * (self.hist_s + a * self.hist_a * (15.0 + a2 * (3.0 * a2 - 10.0)))
            poly_deriv = self.hist_s + self.hist_a * a * (30.0 + a2 * (18.0 * a2 - 40.0))
            inside = np.abs(a) <= 1.0
            total += np.sum(np.where(inside, poly, a * linear), axis=0)
            shift_deriv = np.where(inside, poly_deriv, linear)
        x = pars[self.scalar_index][None, :]
        # normsys code 4: hi^alpha for alpha >= 1, lo^-alpha for alpha <= -1, the polynomial between;
        # normfactor / lumi: the parameter itself
        log_base = np.where(x >= 0, self.log_hi, -self.log_lo)
        outer = np.exp(np.abs(x) * np.where(x >= 0, self.log_hi, self.log_lo))
        powers = x[None] ** _POWERS[:, None, None]  # alpha^1 .. alpha^6
        inner = 1.0 + np.sum(self.code4 * powers, axis=0)
        inner_deriv = np.sum(self.code4 * _POWERS[:, None, None] * x[None] ** (_POWERS[:, None, None] - 1), axis=0)
        ns_inside = np.abs(x) < 1.0
        ns_value = np.where(ns_inside, inner, outer)
        ns_deriv = np.where(ns_inside, inner_deriv, outer * log_base)
        value = np.where(self.scalar_normsys, ns_value, x)
        deriv = np.where(self.scalar_normsys, ns_deriv, 1.0)
        value = np.where(self.scalar_on, value, 1.0)
        deriv = np.where(self.scalar_on, deriv, 0.0)
        gammas = np.where(self.layer_mask, pars[np.maximum(self.layers, 0)], 1.0)
        return total, value, deriv, gammas, shift_deriv

    def expected_main(self, pars: np.ndarray) -> np.ndarray:
        total, value, _, gammas, _ = self._terms(np.asarray(pars, dtype=float))
        return np.sum(total * np.prod(value, axis=1)[:, None] * np.prod(gammas, axis=0), axis=0)

    def expected_data(self, pars: np.ndarray) -> np.ndarray:
        """Main data and the auxiliary data the parameters predict (pyhf's ``expected_data``)."""
        out = np.concatenate([self.expected_main(pars), np.zeros(self.naux)])
        out[self.normal_aux] = pars[self.normal_par]
        out[self.poisson_aux] = pars[self.poisson_par] * self.tau
        return out

    def _jacobian(self, pars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(expected main data nu, d nu / d parameters) -- (B,), (B, P)."""
        total, value, deriv, gammas, shift_deriv = self._terms(pars)
        # products of the scalar factors without column k: prefix x suffix products (a factor may be 0)
        n_k = value.shape[1]
        ones = np.ones((value.shape[0], 1))
        prefix = np.cumprod(np.hstack([ones, value[:, :-1]]), axis=1) if n_k else value
        suffix = np.cumprod(np.hstack([ones, value[:, :0:-1]]), axis=1)[:, ::-1] if n_k else value
        scalar = np.prod(value, axis=1)  # (S,)
        gamma = np.prod(gammas, axis=0)  # (S, B)
        per_sample = total * gamma
        nu = np.sum(per_sample * scalar[:, None], axis=0)
        jac = np.zeros((self.nmain, self.npars))
        if n_k:
            jac[:, self.scalar_index] += per_sample.T @ (deriv * prefix * suffix)
        if len(self.hist_index):
            jac[:, self.hist_index] += np.einsum("hsb,sb->bh", shift_deriv, gamma * scalar[:, None])
        for l, (s_at, b_at) in enumerate(self._layer_at):
            others = np.prod(np.delete(gammas, l, axis=0), axis=0) if len(gammas) > 1 else 1.0
            contribution = (total * scalar[:, None] * others)[s_at, b_at]
            np.add.at(jac, (b_at, self.layers[l][s_at, b_at]), contribution)
        return nu, jac

    def nll(self, pars: np.ndarray, data: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray | None]:
        """-log L (pyhf's constants included) and its gradient w.r.t. every parameter."""
        pars = np.asarray(pars, dtype=float)
        n = data[: self.nmain]
        if grad:
            nu, jac = self._jacobian(pars)
        else:
            nu, jac = self.expected_main(pars), None
        nu_safe = np.maximum(nu, 1e-300)
        value = -float(np.sum(xlogy(n, nu_safe) - nu - gammaln(n + 1.0)))
        g = jac.T @ (1.0 - n / nu_safe) if grad else None  # d(-log L) / d nu = 1 - n / nu
        r = (data[self.normal_aux] - pars[self.normal_par]) / self.sigma
        value += 0.5 * float(r @ r) + self._normal_const
        m = data[self.poisson_aux]
        lam = np.maximum(pars[self.poisson_par] * self.tau, 1e-300)
        value -= float(np.sum(xlogy(m, lam) - lam - gammaln(m + 1.0)))
        if grad:
            np.subtract.at(g, self.normal_par, r / self.sigma)
            np.add.at(g, self.poisson_par, self.tau * (1.0 - m / lam))
        return value, g

    def fisher_diagonal(self, pars: np.ndarray) -> np.ndarray:
        """The expected information's diagonal, sum_b (d nu_b / d p)^2 / nu_b plus the constraints':
        the curvature each parameter is rescaled by for the minimiser."""
        nu, jac = self._jacobian(np.asarray(pars, dtype=float))
        diag = np.sum(jac * jac / np.maximum(nu, 1e-12)[:, None], axis=0)
        np.add.at(diag, self.normal_par, 1.0 / self.sigma**2)
        np.add.at(diag, self.poisson_par, self.tau / np.maximum(pars[self.poisson_par], 1e-12))
        return diag

    def fit(self, data: np.ndarray, init: np.ndarray, bounds: list[tuple[float, float]], fixed: list[bool],
            fixed_values: dict[int, float] | None = None) -> tuple[np.ndarray, float]:
        """(best-fit parameters, -log L at them): L-BFGS-B on the free parameters with the exact gradient,
        each parameter in units of its expected uncertainty (1 / sqrt of the information's diagonal at the
        start): the POI in units of reference BRs and a gamma of a 1 % template differ by orders of
        magnitude, which costs a plain quasi-Newton hundreds of steps."""
        pars = np.array(init, dtype=float)
        for i, v in (fixed_values or {}).items():
            pars[i] = v
        free = np.array([not f and i not in (fixed_values or {}) for i, f in enumerate(fixed)])
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        pars = np.clip(pars, lo, hi)
        info = self.fisher_diagonal(pars)[free]
        scale = 1.0 / np.sqrt(np.where(info > 0, info, 1.0))

        def objective(y: np.ndarray) -> tuple[float, np.ndarray]:
            full = pars.copy()
            full[free] = y * scale
            v, g = self.nll(full, data)
            return v, g[free] * scale

        y_lo, y_hi = lo[free] / scale, hi[free] / scale
        y = pars[free] / scale
        for _ in range(3):  # a restart clears L-BFGS's memory when its line search stalls early
            res = minimize(objective, y, jac=True, method="L-BFGS-B", bounds=list(zip(y_lo, y_hi)),
                           options={"maxiter": 20_000, "maxfun": 40_000, "ftol": 1e-15, "gtol": 1e-9})
            y = res.x
            # the gradient along the directions the bounds leave open, per expected standard deviation:
            # below 1e-2 the NLL is within 1e-4 of its minimum (L-BFGS-B then often reports ABNORMAL
            # only because ftol = 1e-15 asks for more than double precision gives)
            g = res.jac
            open_ = ~(((y <= y_lo + 1e-12) & (g > 0)) | ((y >= y_hi - 1e-12) & (g < 0)))
            if not np.any(np.abs(g[open_]) > 1e-2):
                break
        else:
            raise FitError(f"analytic-gradient fit did not converge ({res.message}; largest free gradient "
                           f"{np.abs(g[open_]).max():.3g} per standard deviation)")
        pars[free] = np.clip(y * scale, lo[free], hi[free])
        self.last_iterations = int(res.nit)
        return pars, float(res.fun)


class AsymptoticCLs:
    """pyhf's ``hypotest(..., test_stat='qtilde', calctype='asymptotics')`` on one model and data set,
    the POI-independent fits (free fit to the data, Asimov data from the background-only fit, free
    fit to the Asimov data) made once."""

    def __init__(self, likelihood: BinnedLikelihood, data, init: list[float], bounds: list[tuple[float, float]], fixed: list[bool]):
        self.lk, self.bounds, self.fixed = likelihood, bounds, list(fixed)
        self.data = np.asarray(data, dtype=float)
        with one_blas_thread():  # L-BFGS-B's small BLAS calls: 4 ms each with threads
            self._poi_independent_fits(init)
        self.evaluations = 0

    def _poi_independent_fits(self, init: list[float]) -> None:
        likelihood, bounds = self.lk, self.bounds
        poi = likelihood.poi_index
        self.free_pars, self.free_nll = likelihood.fit(self.data, np.asarray(init, float), bounds, self.fixed)
        asimov_pars, _ = likelihood.fit(self.data, self.free_pars, bounds, self.fixed, {poi: 0.0})
        self.asimov = likelihood.expected_data(asimov_pars)
        self.asimov_free_pars, self.asimov_free_nll = likelihood.fit(self.asimov, asimov_pars, bounds, self.fixed)

    def _qtilde(self, mu: float, data: np.ndarray, free_pars: np.ndarray, free_nll: float) -> float:
        poi = self.lk.poi_index
        start = free_pars.copy()
        pars, value = self.lk.fit(data, start, self.bounds, self.fixed, {poi: mu})
        if free_pars[poi] > mu:
            return 0.0
        return max(2.0 * (value - free_nll), 0.0)

    def cls(self, mu: float) -> tuple[float, tuple[float, ...]]:
        """(observed CLs, expected CLs at nsigma +2 ... -2 as pyhf orders them) at POI = ``mu``."""
        self.evaluations += 1
        with one_blas_thread():  # L-BFGS-B's small BLAS calls: 4 ms each with threads
            q = self._qtilde(mu, self.data, self.free_pars, self.free_nll)
            q_a = self._qtilde(mu, self.asimov, self.asimov_free_pars, self.asimov_free_nll)
        sq, sq_a = np.sqrt(q), np.sqrt(q_a)
        ts = sq - sq_a if sq <= sq_a else (q - q_a) / (2.0 * sq_a)

        def cls_of(t: float) -> float:
            return float(ndtr(-(t + sq_a)) / ndtr(-t))

        return cls_of(ts), tuple(cls_of(n) for n in _EXPECTED_NSIGMA)
