"""The vectorised fast path against independent computations: pyhf and scipy."""

from __future__ import annotations

import math

import numpy as np
import pyhf
import pytest
from scipy import integrate, stats

from belle_rare.stats import fast_scan

# pyhf's published validation case 1bin_shapesys: s = 10, b = 50 +- 7, n = 55, mu = 1
SHAPESYS_CLS_OBS = 0.4541865
SHAPESYS_CLS_EXP = [0.063718, 0.150965, 0.327961, 0.604609, 0.866263]


def test_closed_form_reproduces_pyhf_validation_case_1bin_shapesys():
    obs, exp = fast_scan.asymptotic_cls(10.0, 55.0, 50.0, 7.0)
    assert obs == pytest.approx(SHAPESYS_CLS_OBS, abs=1e-6)
    assert np.allclose(exp, SHAPESYS_CLS_EXP, atol=1e-6)


def _pyhf_model(s: float, b: float, db: float | None, poi_hi: float = 100.0):
    if db is None:
        spec = {
            "channels": [
                {
                    "name": "sr",
                    "samples": [
                        {"name": "sig", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                        {"name": "bkg", "data": [b], "modifiers": []},
                    ],
                }
            ]
        }
        model = pyhf.Model(spec, poi_name="mu")
    else:
        model = pyhf.simplemodels.uncorrelated_background([s], [b], [db])
    bounds = model.config.suggested_bounds()
    bounds[model.config.poi_index] = (0.0, poi_hi)
    return model, bounds


@pytest.mark.parametrize(
    "n, b, db, cl",
    [(55, 50.0, 7.0, 0.95), (3, 2.5, 0.5, 0.95), (0, 0.36, None, 0.90), (5, 5.8, 0.4, 0.90), (120, 100.0, None, 0.95)],
)
def test_fast_asymptotic_limits_agree_with_direct_pyhf_calls(n, b, db, cl):
    s = 2.0
    model, bounds = _pyhf_model(s, b, db)
    data = [float(n)] + model.config.auxdata
    # the reference: pyhf's own root finder, called with the level (upper_limit would drop it)
    obs_ref, exp_ref = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.05, 20.0, level=1 - cl, par_bounds=bounds, rtol=1e-6
    )
    fast = fast_scan.asymptotic_limits([n], [b], None if db is None else [db], cl=cl).scaled(s)
    assert fast.observed[0] == pytest.approx(float(obs_ref), rel=1e-4)
    assert np.allclose(fast.expected[:, 0], [float(e) for e in exp_ref], rtol=1e-4)


def test_exact_poisson_known_values():
    # n = 0: CLs = exp(-s) whatever b is, so s_up = -ln(alpha)
    res = fast_scan.poisson_limits([0, 0], [0.36, 3.0], cl=0.90)
    assert np.allclose(res.observed, math.log(10.0), rtol=1e-9)
    res = fast_scan.poisson_limits([0], [0.0], cl=0.95)
    assert res.observed[0] == pytest.approx(-math.log(0.05), rel=1e-9)


@pytest.mark.parametrize("n, b, cl", [(2, 0.23, 0.90), (1, 0.5, 0.90), (5, 5.8, 0.90), (12, 9.0, 0.95)])
def test_exact_poisson_against_scipy(n, b, cl):
    res = fast_scan.poisson_limits([n], [b], cl=cl)
    s = res.observed[0]
    cls = stats.poisson.cdf(n, s + b) / stats.poisson.cdf(n, b)
    assert cls == pytest.approx(1 - cl, rel=1e-8)
    # expected bands: limits at the background-only count quantiles
    for k, sigma in enumerate((-2, -1, 0, 1, 2)):
        q = stats.norm.cdf(sigma)
        n_q = int(stats.poisson.ppf(q, b))
        s_q = res.expected[k, 0]
        assert stats.poisson.cdf(n_q, s_q + b) / stats.poisson.cdf(n_q, b) == pytest.approx(1 - cl, rel=1e-8)


def test_expected_bands_respect_the_n0_floor_where_asymptotics_do_not():
    exact = fast_scan.poisson_limits([0], [0.36], cl=0.90)
    asym = fast_scan.asymptotic_limits([0], [0.36], cl=0.90)
    floor = math.log(10.0)
    assert np.all(exact.expected >= floor * (1 - 1e-9))
    assert asym.expected[0, 0] < 0.5 * floor  # the asymptotic -2 sigma band goes far below n = 0
    assert asym.observed[0] < floor  # and the asymptotic observed limit is too tight


def test_exact_poisson_with_uncertainties_against_numerical_integration():
    n, b, rb, rs, cl = 3, 2.0, 0.2, 0.1, 0.90
    res = fast_scan.poisson_limits([n], [b], rb, rs, cl=cl)
    s = res.observed[0]

    def averaged(rate_mean, rel):  # E[P(N <= n | r)], r Gaussian truncated at 0 (Cousins-Highland)
        sd = rel * rate_mean
        f = lambda r: stats.poisson.cdf(n, r) * stats.norm.pdf(r, rate_mean, sd)
        num = integrate.quad(f, 0, rate_mean + 10 * sd)[0]
        return num / (1 - stats.norm.cdf(0, rate_mean, sd))

    total_rel = math.hypot(s * rs, b * rb) / (s + b)
    cls = averaged(s + b, total_rel) / averaged(b, rb)
    assert cls == pytest.approx(1 - cl, rel=2e-3)
    # uncertainties weaken the limit
    assert s > fast_scan.poisson_limits([n], [b], cl=cl).observed[0]


def test_vectorised_over_many_hypotheses():
    rng = np.random.default_rng(7)
    b = rng.uniform(0.1, 50.0, 1000)
    n = rng.poisson(b)
    asym = fast_scan.asymptotic_limits(n, b, 0.1 * b, cl=0.95)
    exact = fast_scan.poisson_limits(n, b, cl=0.95)
    assert asym.observed.shape == (1000,) and asym.expected.shape == (5, 1000)
    assert np.all(np.diff(exact.expected, axis=0) >= -1e-9)  # bands ordered -2 .. +2 sigma
    # spot-check a few points against pyhf
    for i in (0, 500, 999):
        model, bounds = _pyhf_model(1.0, b[i], 0.1 * b[i], poi_hi=200.0)
        cls_obs = pyhf.infer.hypotest(asym.observed[i], [float(n[i])] + model.config.auxdata, model, par_bounds=bounds)
        assert float(cls_obs) == pytest.approx(0.05, rel=2e-3)
