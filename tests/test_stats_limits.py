"""pyhf-based CLs limits: the 0.7.6 pitfalls, the toy path, and physics sanity (luminosity, systematics)."""

from __future__ import annotations

import math

import numpy as np
import pyhf
import pytest
from scipy import stats

from belle_rare.core.errors import UserError
from belle_rare.stats import limits
from belle_rare.stats.counting import CountingChannel, counting_workspace
from belle_rare.stats.errors import FitError, LimitOutOfBounds
from belle_rare.stats.limits import choose_calculator, hypotest_point, model_and_data, upper_limit, workspace_from_spec


def counting_model(n, b, db=0.0, s=1.0, s_unc=0.0, poi_hi=None, bkg_model="shapesys"):
    ws = counting_workspace(
        [CountingChannel("sr", n, b, db, s, s_unc, background_model=bkg_model)], poi="mu", poi_upper_bound=poi_hi
    )
    return model_and_data(workspace_from_spec(ws))


def test_1bin_shapesys_validation_case_through_our_hypotest():
    model = pyhf.simplemodels.uncorrelated_background([10.0], [50.0], [7.0])
    point = hypotest_point(model, [55.0] + model.config.auxdata, 1.0)
    assert point.cls_obs == pytest.approx(0.4541865, rel=2e-5)
    assert np.allclose(point.cls_exp, [0.063718, 0.150965, 0.327961, 0.604609, 0.866263], rtol=2e-4)


def test_cl_is_honoured_unlike_pyhf_upper_limit_issue_2563():
    model, data = counting_model(55, 50.0, 7.0, s=10.0)
    ours90 = upper_limit(model, data, cl=0.90, calculator="asymptotics")
    ours95 = upper_limit(model, data, cl=0.95, calculator="asymptotics")
    lo, hi = 0.1, 5.0
    ref90 = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, lo, hi, level=0.10, rtol=1e-6)
    ref95 = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, lo, hi, level=0.05, rtol=1e-6)
    assert ours90.observed == pytest.approx(float(ref90[0]), rel=1e-4)
    assert np.allclose(ours90.expected, [float(v) for v in ref90[1]], rtol=1e-4)
    assert ours95.observed == pytest.approx(float(ref95[0]), rel=1e-4)
    assert ours90.observed < ours95.observed
    # the pitfall itself: pyhf's upper_limit(scan=None) returns the 95 % limit for level=0.10
    pitfall = pyhf.infer.intervals.upper_limits.upper_limit(data, model, level=0.10)
    assert float(pitfall[0]) == pytest.approx(ours95.observed, rel=1e-3)


def test_bracket_stays_inside_tight_poi_bounds_where_pyhf_crashes():
    # observed limit ~2.6 events with the POI bounded to [0, 3.5], the +1/+2 sigma bands above it:
    # pyhf doubles its bracket past the bound and refuses to fit there
    model, data = counting_model(1, 1.0, s=1.0, poi_hi=3.5)
    with pytest.raises(ValueError, match="outside of its bounds"):
        pyhf.infer.intervals.upper_limits.upper_limit(data, model)
    ours = upper_limit(model, data, cl=0.90, calculator="asymptotics")
    wide_model, wide_data = counting_model(1, 1.0, s=1.0, poi_hi=100.0)
    ref = pyhf.infer.intervals.upper_limits.toms748_scan(wide_data, wide_model, 0.1, 3.0, level=0.10, rtol=1e-6)
    assert ours.observed == pytest.approx(float(ref[0]), rel=1e-4)
    assert np.allclose(ours.expected[:3], [float(v) for v in ref[1][:3]], rtol=1e-4)
    # bands beyond the bound are reported as missing, with a warning, not as a crash
    assert float(ref[1][3]) > 3.5 and math.isnan(ours.expected[3]) and math.isnan(ours.expected[4])
    assert len(ours.warnings) == 2 and "outside the POI bounds" in ours.warnings[0]


def test_limit_beyond_poi_bound_is_a_clear_error():
    model, data = counting_model(10, 2.0, s=1.0, poi_hi=5.0)
    with pytest.raises(LimitOutOfBounds, match="observed limit lies above the upper bound 5 of mu") as err:
        upper_limit(model, data, cl=0.95, calculator="asymptotics")
    assert isinstance(err.value, UserError)


def test_poi_init_outside_bounds_still_works():
    ws = counting_workspace([CountingChannel("sr", 55, 50.0, 7.0, 10.0)], poi="mu", poi_upper_bound=50.0)
    ws["measurements"][0]["config"]["parameters"][0]["inits"] = [80.0]  # outside [0, 50]
    model, data = model_and_data(workspace_from_spec(ws))
    res = upper_limit(model, data, cl=0.95, calculator="asymptotics")
    assert 0 < res.observed < 50


def test_failed_fit_becomes_a_user_error(monkeypatch):
    model, data = counting_model(3, 2.0, 0.5)

    def fail(*args, **kwargs):
        raise pyhf.exceptions.FailedMinimization(type("R", (), {"message": "did not converge", "success": False})())

    monkeypatch.setattr(pyhf.infer, "hypotest", fail)
    with pytest.raises(FitError, match="fit did not converge") as err:
        upper_limit(model, data, cl=0.95, calculator="asymptotics")
    assert isinstance(err.value, UserError)


def test_calculator_rule():
    few, _ = counting_model(3, 9.9, 0.5)
    many, _ = counting_model(30, 10.1, 0.5)
    assert choose_calculator(few)[0] == "toybased"
    assert choose_calculator(many)[0] == "asymptotics"
    assert choose_calculator(few, "asymptotics")[0] == "asymptotics"  # can be forced
    with pytest.raises(UserError):
        choose_calculator(few, "bayesian")


def _toy_sigma_of_limit(n: int, b: float, s: float, ntoys: int) -> float:
    """Binomial precision of a toy CLs limit for a counting experiment, propagated to s."""
    p_sb, p_b = stats.poisson.cdf(n, s + b), stats.poisson.cdf(n, b)
    rel_cls = math.sqrt((1 - p_sb) / (ntoys * p_sb) + (1 - p_b) / (ntoys * p_b))
    dlog_cls_ds = -stats.poisson.pmf(n, s + b) / p_sb  # d ln P(N <= n | s + b) / ds
    return rel_cls / abs(dlog_cls_ds)


def test_toy_limit_reproduces_exact_poisson_n0_b036():
    """n = 0, b = 0.36 at 90 % CL: CLs = exp(-s), s_up = ln 10 = 2.303 (independent of b)."""
    model, data = counting_model(0, 0.36, s=1.0)
    ntoys = 500
    res = upper_limit(model, data, cl=0.90, calculator="toybased", ntoys=ntoys, seed=11)
    exact = math.log(10.0)
    sigma = _toy_sigma_of_limit(0, 0.36, exact, ntoys)
    assert res.calculator == "toybased" and res.ntoys == ntoys
    assert abs(res.observed - exact) < 3.5 * sigma
    # the expected median and -1/-2 sigma sit on the n = 0 floor (median count under b = 0.36 is 0)
    assert abs(res.expected[2] - exact) < 3.5 * sigma
    assert res.expected[0] == pytest.approx(res.expected[2])


def test_toy_cls_matches_exact_poisson_at_the_exact_limit():
    n, b, ntoys = 2, 0.23, 1000
    s_exact = 5.0948  # solves P(N<=2|s+b)/P(N<=2|b) = 0.1; checked against scipy below
    assert stats.poisson.cdf(n, s_exact + b) / stats.poisson.cdf(n, b) == pytest.approx(0.10, rel=1e-3)
    model, data = counting_model(n, b, s=1.0)
    point = hypotest_point(model, data, s_exact, "toybased", ntoys=ntoys, seed=3)
    p_sb = stats.poisson.cdf(n, s_exact + b)
    sigma = 0.10 * math.sqrt((1 - p_sb) / (ntoys * p_sb))
    assert abs(point.cls_obs - 0.10) < 4 * sigma


def test_toy_seed_does_not_leak_into_global_random_state():
    model, data = counting_model(0, 0.36)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    hypotest_point(model, data, 2.0, "toybased", ntoys=20, seed=5)
    assert np.random.random() == expected_next


def _br_limit(luminosity_fb: float, rel_b_unc: float) -> float:
    """Asimov counting limit on a BR for a search whose s and b scale with the luminosity."""
    eff, n_per_fb, b_per_fb = 0.05, 1.838e6, 0.05
    events_per_br = eff * n_per_fb * luminosity_fb
    b = b_per_fb * luminosity_fb
    model, data = counting_model(b, b, rel_b_unc * b, s=1.0, bkg_model="normsys")
    return upper_limit(model, data, cl=0.90, calculator="asymptotics").expected[2] / events_per_br


def test_limits_shrink_with_luminosity_and_grow_with_systematics():
    lumis = [100.0, 400.0, 1600.0]
    by_lumi = [_br_limit(lumi, 0.1) for lumi in lumis]
    assert by_lumi[0] > by_lumi[1] > by_lumi[2]
    by_syst = [_br_limit(400.0, u) for u in (0.0, 0.2, 0.5)]
    assert by_syst[0] < by_syst[1] < by_syst[2]


def test_asymptotic_limit_matches_direct_pyhf_on_a_multibin_model():
    spec = {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {"name": "s", "data": [3.0, 6.0, 2.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {
                        "name": "b",
                        "data": [40.0, 25.0, 10.0],
                        "modifiers": [{"name": "bunc", "type": "shapesys", "data": [4.0, 3.0, 2.0]}, {"name": "nrm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}],
                    },
                ],
            }
        ],
        "observations": [{"name": "c", "data": [42.0, 24.0, 12.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    model, data = model_and_data(workspace_from_spec(spec))
    ours = upper_limit(model, data, cl=0.95)
    assert ours.calculator == "asymptotics"
    ref = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, 0.1, 5.0, level=0.05, rtol=1e-6)
    assert ours.observed == pytest.approx(float(ref[0]), rel=1e-4)
    assert np.allclose(ours.expected, [float(v) for v in ref[1]], rtol=1e-4)


def test_cls_scan_in_parallel_processes_matches_serial():
    model, data = counting_model(3, 2.5, 0.5)
    serial = limits.cls_scan(model, data, [1.0, 4.0])
    parallel = limits.cls_scan(model, data, [1.0, 4.0], workers=2)
    assert [p.cls_obs for p in serial] == pytest.approx([p.cls_obs for p in parallel], rel=1e-9)
