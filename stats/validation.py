"""Reproduce the papers' published limits from their published inputs (SEARCHES.md).

Each case states our method, the paper's, and which differences remain. Cases whose method
matches the paper's (``methods_match``) must agree within :data:`AGREEMENT` (checked in
tests/test_stats_validation.py); the others are cross-checks whose differences are explained.

Counting cases: exact Poisson CLs (the infinite-toy limit, count as test statistic, Gaussian
efficiency / background uncertainties averaged over), beside pyhf's asymptotic result on the
same counting workspace to show how far the asymptotic formulae are off at a few events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy.special import gammaincc, ndtr, ndtri

from belle_rare.configs.experiment import load_experiment
from belle_rare.stats import fast_scan
from belle_rare.stats.counting import CountingChannel, counting_workspace
from belle_rare.stats.limits import model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.normalisation import Normalisation, tau_decay_normalisation, tau_pairs

AGREEMENT = 0.10


@dataclass(frozen=True)
class CountingCase:
    case: str
    n: float  # an integer count; kstartautau Belle: the fit's window total (continuous Poisson extension)
    b: float
    rel_b_unc: float
    efficiency: float
    rel_eff_unc: float
    normalisation: Normalisation
    published: float
    cl: float
    methods_match: bool
    note: str


def quadrature(*terms: float) -> float:
    return math.sqrt(sum(t * t for t in terms))


def gaussian_cls_limit(estimate: float, sigma: float, cl: float) -> float:
    """CLs upper limit for a Gaussian measurement of a non-negative quantity.

    For a Gaussian likelihood the asymptotic qtilde CLs is exact:
    CLs(mu) = Phi((x - mu) / sigma) / Phi(x / sigma); solve CLs = 1 - cl.
    """
    return estimate - sigma * float(ndtri((1.0 - cl) * ndtr(estimate / sigma)))


def counting_cases() -> list[CountingCase]:
    sigma_tautau = load_experiment("belle2").cross_section("tautau")
    n_phi = tau_pairs(190.0, sigma_tautau)  # taulphi: L = 190 /fb
    n_3mu = tau_pairs(424.0, sigma_tautau)  # tau3mu: 424 /fb
    n_lg = 912.0e6  # the tau -> l gamma paper quotes N_tautau directly (all Upsilon(nS) data)
    # tau3mu's efficiency, its relative uncertainty (PID, tracking, trigger, BDT, signal region) and normalisation:
    # shared by the observed-limit case and the expected-limit one
    eff_3mu, eff_3mu_unc = 0.204, quadrature(0.024, 0.010, 0.009, 0.015, 0.039)
    norm_3mu = tau_decay_normalisation(eff_3mu, n_3mu, f"2 L sigma_tautau, L = 424 /fb, sigma = {sigma_tautau} nb")
    cases = [
        CountingCase(
            "taulphi e phi", 2, 0.23, 0.0, 0.061, 0.9 / 6.1,
            tau_decay_normalisation(0.061, n_phi, f"2 L sigma_tautau, L = 190 /fb, sigma = {sigma_tautau} nb"),
            2.3e-7, 0.90, True,
            "CLs on counts, BR = s / (2 L sigma eps) as in the paper; background uncertainty (+0.55 -0.21) not "
            "modelled: with b << n it barely matters",
        ),
        CountingCase(
            "taulphi mu phi", 0, 0.36, 0.0, 0.065, 0.6 / 6.5,
            tau_decay_normalisation(0.065, n_phi, f"2 L sigma_tautau, L = 190 /fb, sigma = {sigma_tautau} nb"),
            9.7e-8, 0.90, True,
            "CLs on counts as in the paper; with n = 0 the CLs limit does not depend on b",
        ),
        CountingCase(
            "tau3mu", 1, 0.5, 0.16, eff_3mu, eff_3mu_unc, norm_3mu, 1.9e-8, 0.90, False,
            "paper: RooStats CLs toys with the profile likelihood and its asymmetric ABCD background (point "
            "estimate stripped in our copy; SEARCHES.md: about 0.5); ours: b = 0.5 +- 16 % (momentum scale). A "
            "larger b lowers the n = 1 limit (b = 0.7, the paper's expected-limit b: 2.15e-8)",
        ),
        CountingCase(
            # the paper's expected limit (sec. 5): "assuming an observed number of events equal to 0.7, as
            # expected from background estimation" -> n = b = 0.7, a non-integer count. Ours: the continuous
            # extension of the Poisson CDF (our reading; the paper does not say how its toys scored n = 0.7:
            # integer toys against n = 0.7 give the n = 0 limit 1.45e-8, n = 1 gives 2.15e-8, the paper 1.8e-8)
            "tau3mu expected (n_obs = b = 0.7)", 0.7, 0.7, 0.16, eff_3mu, eff_3mu_unc, norm_3mu, 1.8e-8, 0.90, False,
            "the paper's expected limit: its CLs toys with n_obs = b = 0.7; ours: exact Poisson CLs at n = 0.7 "
            "(continuous Poisson CDF; integer toys scored against n = 0.7 would give the n = 0 limit, 1.45e-8), "
            "b = 0.7 +- 16 %. Not the median of the b-only limits (our `expected` column: n = 1 for b = 0.7)",
        ),
        CountingCase(
            "taulgamma mu gamma (counting)", 5, 5.8, quadrature(0.4 / 5.8, 0.033), 0.037,
            quadrature(0.007, 0.020, 0.032, 0.014, 0.021),
            tau_decay_normalisation(0.037, n_lg, "2 N_tautau, N_tautau = 912e6"),
            4.2e-8, 0.90, False,
            "paper: unbinned (M_bc, dE) fit, s = -0.3 fitted, toy-MC s90 = 2.8 (not CLs); counting in the "
            "ellipse ignores the shape information, so its limit is weaker",
        ),
        CountingCase(
            "taulgamma e gamma (counting)", 5, 5.1, quadrature(0.4 / 5.1, 0.037), 0.029,
            quadrature(0.007, 0.020, 0.032, 0.014, 0.034),
            tau_decay_normalisation(0.029, n_lg, "2 N_tautau, N_tautau = 912e6"),
            5.6e-8, 0.90, False,
            "paper: unbinned fit, toy-MC s90 = 3.0 (not CLs); counting ignores the (M_bc, dE) shape",
        ),
    ]
    return cases


def _counting_row(c: CountingCase) -> dict:
    exact = fast_scan.poisson_limits([c.n], [c.b], c.rel_b_unc, c.rel_eff_unc, cl=c.cl)
    s_obs, s_exp = float(exact.observed[0]), float(exact.expected[2, 0])
    channel = CountingChannel("sr", c.n, c.b, c.rel_b_unc * c.b, 1.0, c.rel_eff_unc, background_model="normsys")
    model, data = model_and_data(workspace_from_spec(counting_workspace([channel], poi="s")))
    asym = upper_limit(model, data, cl=c.cl, calculator="asymptotics")
    norm = c.normalisation
    ours = norm.from_events(s_obs)
    return {
        "case": c.case,
        "ours": ours,
        "published": c.published,
        "unit": "branching fraction",
        "note": c.note,
        "method": "exact Poisson CLs (count test statistic, uncertainties averaged)",
        "methods_match": c.methods_match,
        "relative_difference": ours / c.published - 1.0,
        "cl": c.cl,
        "inputs": {"n": c.n, "b": c.b, "rel_b_unc": c.rel_b_unc, "efficiency": c.efficiency, "rel_eff_unc": c.rel_eff_unc},
        "signal_events_limit": s_obs,
        "ours_expected": norm.from_events(s_exp),
        "pyhf_asymptotic": norm.from_events(asym.observed),
        "normalisation": norm.formula,
    }


def _s90_rows() -> list[dict]:
    """The paper's own s90 through our normalisation: checks BR = s / (2 eps N_tautau)."""
    rows = []
    for case, s90, eff, published in (("mu gamma", 2.8, 0.037, 4.2e-8), ("e gamma", 3.0, 0.029, 5.6e-8)):
        norm = tau_decay_normalisation(eff, 912.0e6, "2 N_tautau, N_tautau = 912e6")
        ours = norm.from_events(s90)
        rows.append(
            {
                "case": f"taulgamma {case} (paper's s90 = {s90})",
                "ours": ours,
                "published": published,
                "unit": "branching fraction",
                "note": "normalisation only: the paper's fitted s90 through BR = s / (2 eps N_tautau); "
                "rounding of s90 and eps remains",
                "method": "normalisation of the published signal-yield limit",
                "methods_match": True,
                "relative_difference": ours / published - 1.0,
                "cl": 0.90,
                "normalisation": norm.formula,
            }
        )
    return rows


# BR(K*0 -> K+ pi-): K*(892)0 -> K pi is ~100 % (PDG), shared K+ pi- : K0 pi0 = 2 : 1 by isospin
KSTAR0_TO_KPLUS_PIMINUS = 2.0 / 3.0


def kstartautau_belle_case() -> CountingCase:
    """Belle B0 -> K*0 tau tau (PRD 108, L011102) from its published fit results, as a count in the
    E_ECL^extra signal window [0, 0.2] GeV: n = N_sig + N_bkg = 117.5 (the fit's total there), b =
    122.4 +- 4.9 (+) the template statistics 4.59 events, efficiency +- 8.5 %."""
    n_bb = load_experiment("belle").n_bb["upsilon4s"]
    f00 = 1.0 - load_experiment("belle").upsilon4s_charged_fraction
    exposure = 2.0 * n_bb * f00 * KSTAR0_TO_KPLUS_PIMINUS
    norm = Normalisation("branching_fraction", 1.23e-5, exposure,
                         f"2 N_BB f00 BR(K*0 -> K+ pi-), N_BB = {n_bb:.4g}, f00 = {f00:.3f}, BR = 2/3")
    return CountingCase(
        "kstartautau Belle (E_ECL^extra window count)", 117.5, 122.4, quadrature(4.9, 4.59) / 122.4, 1.23e-5, 0.085,
        norm, 3.1e-3, 0.90, True,
        "paper: CLs with the background and efficiency uncertainties as Gaussians (its words), from the binned "
        "E_ECL^extra fit; ours: the same CLs on the signal window's count n = N_sig + N_bkg = 117.5 (our reading: "
        "n itself is not published), b = 122.4 +- 4.9 (+) 4.59 (template statistics, on the yield), eps +- 8.5 %; "
        "the paper's eps = 1.23e-5 read per K*0 -> K+ pi- decay (BR = 2/3 outside eps: our reading, the paper gives "
        "no formula), N_B0 = 2 N_BB f00",
    )


#: Belle II B0 -> K*0 tau tau, 365 /fb (arXiv:2504.10042; proceedings belle2_b2s_taul_nunu, sec. 4 and the caption of
#: its fig. 2): the fitted BR of the four-category fit, (-0.15 +- 1.01) x 10^-3 (one symmetric uncertainty, stat and
#: syst not split there), and BR < 1.8 x 10^-3 at 90 % CL. Not in our sources: the paper's body (expected limit,
#: asymmetric or split uncertainties, efficiency, the limit procedure); HEPData ins2911582 holds the released pyhf
#: likelihood, which would reproduce the limit exactly (not reachable offline).
KSTARTAUTAU_BELLE2_FIT = (-0.15e-3, 1.01e-3)
KSTARTAUTAU_BELLE2_LIMIT = 1.8e-3


@dataclass(frozen=True)
class PoissonEquivalent:
    """The one-bin count with a measurement's precision: nu signal events per unit of the measured
    quantity, background b = (nu sigma)^2 (so sqrt(b) / nu = sigma at zero signal) and observed
    n = b + nu x. Unlike a Gaussian of fixed width, its spread grows with the signal (sqrt(b + nu mu) / nu),
    which is what a fit of counts does; nu -> infinity gives back the Gaussian."""

    signal_per_unit: float
    background: float
    observed: float


def poisson_equivalent(estimate: float, sigma: float, signal_per_unit: float) -> PoissonEquivalent:
    b = (signal_per_unit * sigma) ** 2
    n = b + signal_per_unit * estimate
    if n < 0:
        raise ValueError(f"signal scale {signal_per_unit:g} too small: the equivalent count b + nu x = {n:g} < 0")
    return PoissonEquivalent(signal_per_unit, b, n)


def poisson_equivalent_limit(estimate: float, sigma: float, signal_per_unit: float, cl: float) -> float:
    """Exact-Poisson CLs upper limit (count as test statistic, continuous extension for a non-integer n)
    of the :class:`PoissonEquivalent` count, in the measured quantity's units."""
    eq = poisson_equivalent(estimate, sigma, signal_per_unit)
    return poisson_cls_signal_limit(eq.observed, eq.background, cl) / signal_per_unit


def poisson_cls_signal_limit(n: float, b: float, cl: float) -> float:
    """Signal events s with CLs = P(N <= n | s + b) / P(N <= n | b) = 1 - cl for one Poisson count
    without uncertainties; P(N <= n | lam) = Q(n + 1, lam) (regularised upper incomplete gamma), the
    continuous extension for a non-integer n. Written out (not fast_scan) to stay exact at 10^5 events."""
    alpha = 1.0 - cl
    cdf_b = gammaincc(n + 1.0, b)
    if not cdf_b > 0:
        raise ValueError(f"P(N <= {n:g} | b = {b:g}) underflows: n is too far below b for this formula")

    def excess(sig: float) -> float:
        return gammaincc(n + 1.0, sig + b) / cdf_b - alpha

    hi = 3.0 + 3.0 * math.sqrt(n + b + 1.0)
    while excess(hi) > 0:
        hi *= 2.0
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-12, rtol=1e-10))


def signal_scale_for_limit(estimate: float, sigma: float, limit: float, cl: float) -> float:
    """The signal scale nu at which the :class:`PoissonEquivalent` count has ``limit`` as its CLs limit
    (the limit falls with nu from ln(10) / nu-like values to the Gaussian limit); a diagnostic of what a
    published limit implies, not an input: it needs limit > the Gaussian CLs limit."""
    gaussian = gaussian_cls_limit(estimate, sigma, cl)
    if not limit > gaussian:
        raise ValueError(f"limit {limit:g} is not above the Gaussian CLs limit {gaussian:g}: no finite signal scale")
    lo = max(-estimate / sigma**2, 0.0) * 1.001 + 1.0e-3 / sigma  # n >= 0 and a fraction of an event at 1 sigma
    hi = 300.0 / sigma  # b = 9 x 10^4: within 1 % of the Gaussian limit
    return float(optimize.brentq(lambda nu: poisson_equivalent_limit(estimate, sigma, nu, cl) - limit, lo, hi, rtol=1e-6))


def _kstartautau_row() -> dict:
    (estimate, sigma), cl, published = KSTARTAUTAU_BELLE2_FIT, 0.90, KSTARTAUTAU_BELLE2_LIMIT
    ours = gaussian_cls_limit(estimate, sigma, cl)
    belle2 = load_experiment("belle2")
    n_b0 = 2.0 * belle2.n_bb["kstartautau"] * (1.0 - belle2.upsilon4s_charged_fraction)
    nu = signal_scale_for_limit(estimate, sigma, published, cl)
    eq = poisson_equivalent(estimate, sigma, nu)
    return {
        "case": "kstartautau Belle II (Gaussian likelihood)",
        "ours": ours,
        "published": published,
        "unit": "branching fraction",
        "note": "inputs: the fitted BR (-0.15 +- 1.01) x 10^-3 (proceedings fig. 2 caption; arXiv:2504.10042), BR >= 0; "
        "ours: CLs for a Gaussian likelihood of that fit, which any method on these two numbers alone gives (a flat-prior "
        "Bayesian limit is the same 1.57e-3). Not reachable within 10 % from what we have: the paper's likelihood widens "
        "with the signal (a fit of counts), and how fast depends on the signal yield per unit BR (efficiency x N_B0), "
        "which our sources do not publish (nor asymmetric errors, nor the expected limit). As a one-bin count of the "
        f"fit's precision (b = (nu sigma)^2) the published 1.8e-3 implies nu = {nu * 1e-3:.2f} signal events per 10^-3 "
        f"(b = {eq.background:.0f}, eps = nu / 2 N_BB f00 = {nu / n_b0:.2e} per produced decay, a signal-weighted "
        "efficiency: below the BDT region's total); the released pyhf likelihood (HEPData ins2911582) would settle it",
        "method": "CLs, Gaussian likelihood (asymptotic qtilde is exact here)",
        "methods_match": False,
        "relative_difference": ours / published - 1.0,
        "cl": cl,
        "inputs": {"fitted_branching_fraction": estimate, "uncertainty": sigma},
        "poisson_equivalent_for_published": {
            "signal_events_per_unit_br": nu, "background_events": eq.background, "observed_events": eq.observed,
            "efficiency": nu / n_b0, "n_b0": n_b0,
        },
    }


def validation_rows() -> list[dict]:
    """One row per case: ours beside the published limit, with the remaining method differences."""
    return [_counting_row(c) for c in counting_cases()] + _s90_rows() + [_counting_row(kstartautau_belle_case()), _kstartautau_row()]
