"""The papers' published limits from their published inputs, and the normalisation formulae."""

from __future__ import annotations

import math

import pyhf
import pytest
from scipy import optimize, stats

from belle_rare.stats.limits import model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.normalisation import cross_section_normalisation, tau_decay_normalisation, tau_pairs
from belle_rare.stats.validation import AGREEMENT, gaussian_cls_limit, validation_rows

REQUIRED_KEYS = {"case", "ours", "published", "unit", "note"}


@pytest.fixture(scope="module")
def rows():
    return validation_rows()


def test_every_case_has_the_contract_keys(rows):
    assert len(rows) >= 7
    for r in rows:
        assert REQUIRED_KEYS <= set(r)
        assert r["ours"] > 0 and r["published"] > 0 and r["note"]


def test_cases_with_matching_methods_agree_within_ten_percent(rows):
    matched = [r for r in rows if r["methods_match"]]
    assert {r["case"] for r in matched} >= {"taulphi e phi", "taulphi mu phi"}
    for r in matched:
        assert abs(r["ours"] / r["published"] - 1) <= AGREEMENT, r["case"]


def test_taulphi_mu_phi_from_first_principles(rows):
    """n = 0: s_up = ln 10 at 90 % CL for any b; BR = s / (2 L sigma eps) -- all computed here."""
    row = next(r for r in rows if r["case"] == "taulphi mu phi")
    n_taus = 2 * 190.0 * 0.919 * 1e6
    plain = math.log(10.0) / (0.065 * n_taus)
    # the efficiency uncertainty (9 %) averaged over can only weaken the limit, by about a percent
    assert plain <= row["ours"] <= 1.03 * plain


def test_asymptotics_too_tight_at_few_events(rows):
    for case in ("taulphi mu phi", "tau3mu"):
        row = next(r for r in rows if r["case"] == case)
        assert row["pyhf_asymptotic"] < 0.9 * row["ours"]


def test_gaussian_cls_limit_against_direct_formula_and_pyhf():
    x, sigma, cl = -0.15, 1.01, 0.90
    mu = gaussian_cls_limit(x, sigma, cl)
    cls = stats.norm.cdf((x - mu) / sigma) / stats.norm.cdf(x / sigma)
    assert cls == pytest.approx(1 - cl, rel=1e-9)
    # pyhf on a high-count bin, whose likelihood is close to Gaussian: s per unit mu and b chosen so
    # that sigma(mu) = sqrt(b) / s = 1.01 and the observed count sits at mu_hat = -0.15
    b = 1.0e6
    s = math.sqrt(b) / sigma
    spec = {
        "channels": [{"name": "c", "samples": [
            {"name": "sig", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [b], "modifiers": []},
        ]}],
        "observations": [{"name": "c", "data": [b + x * s]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[0, 10]]}]}}],
        "version": "1.0.0",
    }
    model, data = model_and_data(workspace_from_spec(spec))
    assert upper_limit(model, data, cl=cl, calculator="asymptotics").observed == pytest.approx(mu, rel=5e-3)


def test_normalisation_formulae():
    n_pairs = tau_pairs(424.0, 0.919)
    assert n_pairs == pytest.approx(389.7e6, rel=1e-3)  # the tau3mu paper's 389 M pairs
    norm = tau_decay_normalisation(0.204, n_pairs)
    assert norm.from_events(3.0) == pytest.approx(3.0 / (2 * 0.204 * n_pairs))
    assert "2 N_tautau" in norm.formula
    xs = cross_section_normalisation(0.1, 79.7)
    assert xs.from_events(2.0) == pytest.approx(2.0 / (0.1 * 79.7)) and xs.unit == "fb"


def test_tau3mu_exact_limit_against_scipy(rows):
    """Without uncertainties the tau3mu counting limit is the root of a scipy Poisson ratio."""
    row = next(r for r in rows if r["case"] == "tau3mu")
    s_plain = optimize.brentq(lambda s: stats.poisson.cdf(1, s + 0.5) / stats.poisson.cdf(1, 0.5) - 0.1, 0.1, 20)
    plain = s_plain / (2 * 0.204 * tau_pairs(424.0, 0.919))
    assert plain <= row["ours"] <= 1.05 * plain


def test_pyhf_version_pins():
    # the pitfalls worked around here are those of pyhf 0.7.6 on numpy < 2.4
    import numpy

    assert pyhf.__version__ == "0.7.6"
    assert tuple(int(v) for v in numpy.__version__.split(".")[:2]) < (2, 4)


def test_kstartautau_belle_from_the_fit_results(rows):
    """Belle B0 -> K*0 tau tau: the signal-window count (n = N_sig + N_bkg = 117.5, b = 122.4 +- 4.9 (+) 4.59,
    eps 1.23e-5 +- 8.5 %) gives 3.1e-3 with BR = s / (eps 2 N_BB f00 BR(K*0 -> K+ pi-)); at 120 events
    pyhf's asymptotic limit on the same count agrees with the exact one."""
    row = next(r for r in rows if r["case"].startswith("kstartautau Belle ("))
    assert row["methods_match"] and abs(row["relative_difference"]) <= AGREEMENT
    n_b0 = 2 * 772.0e6 * (1 - 0.514) * 2 / 3
    assert row["ours"] == pytest.approx(row["signal_events_limit"] / (1.23e-5 * n_b0), rel=1e-9)
    assert row["pyhf_asymptotic"] == pytest.approx(row["ours"], rel=0.05)
    # Gaussian cross-check without the efficiency uncertainty: sigma_s^2 = n + sigma_b^2, excess n - b
    # (18.2 events); the 8.5 % on the efficiency, averaged over, can only weaken the limit, by several %
    gauss = gaussian_cls_limit(117.5 - 122.4, math.sqrt(117.5 + 4.9**2 + 4.59**2), 0.90)
    assert gauss <= row["signal_events_limit"] <= 1.12 * gauss
