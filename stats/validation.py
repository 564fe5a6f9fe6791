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

from scipy.special import ndtr, ndtri

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
            "tau3mu", 1, 0.5, 0.16, 0.204, quadrature(0.024, 0.010, 0.009, 0.015, 0.039),
            tau_decay_normalisation(0.204, n_3mu, f"2 L sigma_tautau, L = 424 /fb, sigma = {sigma_tautau} nb"),
            1.9e-8, 0.90, False,
            "paper: RooStats CLs toys with the profile likelihood and its asymmetric ABCD background (point "
            "estimate stripped in our copy; SEARCHES.md: about 0.5); ours: b = 0.5 +- 16 % (momentum scale). A "
            "larger b lowers the n = 1 limit (b = 0.7, the paper's expected-limit b: 2.15e-8)",
        ),
        CountingCase(
            # the paper's expected limit (sec. 5): "assuming an observed number of events equal to 0.7, as
            # expected from background estimation" -> n = b = 0.7, a non-integer count. Ours: the continuous
            # extension of the Poisson CDF (our reading; the paper does not say how its toys scored n = 0.7:
            # integer toys against n = 0.7 give the n = 0 limit 1.45e-8, n = 1 gives 2.15e-8, the paper 1.8e-8)
            "tau3mu expected (n_obs = b = 0.7)", 0.7, 0.7, 0.16, 0.204, quadrature(0.024, 0.010, 0.009, 0.015, 0.039),
            tau_decay_normalisation(0.204, n_3mu, f"2 L sigma_tautau, L = 424 /fb, sigma = {sigma_tautau} nb"),
            1.8e-8, 0.90, False,
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


def _kstartautau_row() -> dict:
    estimate, sigma, cl, published = -0.15e-3, 1.01e-3, 0.90, 1.8e-3
    ours = gaussian_cls_limit(estimate, sigma, cl)
    return {
        "case": "kstartautau Belle II (Gaussian likelihood)",
        "ours": ours,
        "published": published,
        "unit": "branching fraction",
        "note": "ours: CLs for a Gaussian likelihood of the fitted BR (-0.15 +- 1.01) x 10^-3, BR >= 0; "
        "paper: the full four-category binned fit of the BDT output with its nuisance parameters, whose "
        "likelihood the one-number Gaussian summary does not capture",
        "method": "CLs, Gaussian likelihood (asymptotic qtilde is exact here)",
        "methods_match": False,
        "relative_difference": ours / published - 1.0,
        "cl": cl,
    }


def validation_rows() -> list[dict]:
    """One row per case: ours beside the published limit, with the remaining method differences."""
    return [_counting_row(c) for c in counting_cases()] + _s90_rows() + [_counting_row(kstartautau_belle_case()), _kstartautau_row()]
