"""The analytic-gradient likelihood (stats/binned_likelihood.py) against pyhf itself, on a small synthetic
model of two categories x six bins with every modifier type the workspace builder writes: the same
log-likelihood (constants included) at arbitrary parameters, the exact gradient (finite differences),
the same asymptotic CLs and the same 90 % CL limits (observed and the expected band) within 1 %."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from belle_rare.configs.loader import config_path
from belle_rare.stats.binned_likelihood import AsymptoticCLs, BinnedLikelihood, supports
from belle_rare.stats.limits import _analytic_hypotest, _init_pars, _par_bounds, hypotest_point, model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.model_config import read_stats_file

X = np.linspace(0.45, 0.95, 6)


def _spec(observed_scale: float = 1.0) -> dict:
    """Two BDT-like categories: a signal towards 1 on falling backgrounds; B B floats (normfactor shared by
    the categories), with a shape variation (histosys) and template statistics (staterror); continuum
    with a Poisson shape uncertainty (shapesys), the luminosity and a normalisation uncertainty (normsys)."""
    channels, observations = [], []
    for k, (s_total, b_total) in enumerate(((12.0, 80.0), (6.0, 150.0))):
        s = s_total * np.exp((X - 1) / 0.15) / np.exp((X - 1) / 0.15).sum()
        bb = 0.6 * b_total * np.exp(-(X - 0.4) / 0.2) / np.exp(-(X - 0.4) / 0.2).sum()
        cont = 0.4 * b_total * np.ones(6) / 6
        name = f"cat{k}"
        channels.append({"name": name, "samples": [
            {"name": "signal", "data": s.tolist(), "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "signal_efficiency", "type": "normsys", "data": {"hi": 1.085, "lo": 0.915}},
                {"name": f"staterror_{name}", "type": "staterror", "data": (0.05 * s).tolist()},
            ]},
            {"name": "bb", "data": bb.tolist(), "modifiers": [
                {"name": "bb_norm", "type": "normfactor", "data": None},
                {"name": "bb_shape", "type": "histosys", "data": {"hi_data": (bb * (1 + 0.1 * (X - 0.7))).tolist(),
                                                                 "lo_data": (bb * (1 - 0.15 * (X - 0.7))).tolist()}},
                {"name": f"staterror_{name}", "type": "staterror", "data": (np.sqrt(bb / 3)).tolist()},
            ]},
            {"name": "continuum", "data": cont.tolist(), "modifiers": [
                {"name": f"continuum_shape_{name}", "type": "shapesys", "data": (0.2 * cont).tolist()},
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": "continuum_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
            ]},
        ]})
        rng = np.random.default_rng(7 + k)
        observations.append({"name": name, "data": rng.poisson(observed_scale * (bb + cont)).astype(float).tolist()})
    parameters = [{"name": "mu", "bounds": [[0.0, 50.0]], "inits": [1.0]},
                  {"name": "lumi", "auxdata": [1.0], "sigmas": [0.014], "bounds": [[0.9, 1.1]], "inits": [1.0]}]
    return {"channels": channels, "observations": observations, "version": "1.0.0",
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": parameters}}]}


@pytest.fixture(scope="module")
def model_data():
    spec = _spec()
    model, data = model_and_data(workspace_from_spec(spec, "test"), measurement="m")
    return spec, model, np.asarray(data)


def test_log_likelihood_and_gradient_are_pyhfs(model_data):
    spec, model, data = model_data
    lk = BinnedLikelihood(spec, model)
    rng = np.random.default_rng(1)
    for _ in range(5):
        pars = np.asarray(model.config.suggested_init()) * rng.uniform(0.7, 1.3, model.config.npars)
        pars[model.config.par_slice("bb_shape")] = rng.normal()  # both sides of the interpolations
        pars[model.config.par_slice("signal_efficiency")] = rng.normal()
        value, grad = lk.nll(pars, data)
        assert value == pytest.approx(-float(model.logpdf(pars, data)[0]), abs=1e-9)
        assert np.allclose(lk.expected_data(pars), model.expected_data(pars), rtol=1e-12)
        step = 1e-6
        numeric = [(lk.nll(pars + step * e, data, grad=False)[0] - lk.nll(pars - step * e, data, grad=False)[0]) / (2 * step)
                   for e in np.eye(len(pars))]
        assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_asymptotic_cls_is_pyhfs(model_data):
    spec, model, data = model_data
    cls = AsymptoticCLs(BinnedLikelihood(spec, model), data, _init_pars(model), _par_bounds(model), model.config.suggested_fixed())
    for mu in (0.5, 2.0, 5.0):
        with threadpool_limits(1, user_api="blas"):
            ref = hypotest_point(model, data.tolist(), mu, "asymptotics", seed=None)
        obs, exp = cls.cls(mu)
        assert obs == pytest.approx(ref.cls_obs, rel=1e-4)
        assert exp == pytest.approx(ref.cls_exp, rel=1e-4)


def test_limits_agree_with_pyhf_within_one_percent():
    """An observation above the background (observed and expected limits differ). pyhf's own CLs (its
    fits, numpy + scipy) is above 1 - CL at 0.99 x and below it at 1.01 x each analytic limit: pyhf's
    limits lie within 1 % of these (two pyhf hypotests per curve, not pyhf's whole root finding)."""
    spec = _spec(observed_scale=1.3)
    model, data = model_and_data(workspace_from_spec(spec, "test"), measurement="m")
    fast = upper_limit(model, data, cl=0.90, calculator="asymptotics", engine="analytic")
    assert "analytic-gradient" in fast.calculator_reason
    assert 0 < fast.expected[0] < fast.expected[2] < fast.expected[4] and fast.observed > 1.2 * fast.expected[2]
    assert fast.points and all(0 <= p.cls_obs <= 1 for p in fast.points)  # the CLs curve the plots draw
    with threadpool_limits(1, user_api="blas"):  # pyhf's fits too: OpenBLAS threads only slow them here
        for curve, limit in enumerate([fast.observed, *fast.expected]):
            below = hypotest_point(model, data, 0.99 * limit, "asymptotics", seed=None)
            above = hypotest_point(model, data, 1.01 * limit, "asymptotics", seed=None)
            cls_below = below.cls_obs if curve == 0 else below.cls_exp[curve - 1]
            cls_above = above.cls_obs if curve == 0 else above.cls_exp[curve - 1]
            assert cls_below > 0.10 > cls_above, (curve, limit, cls_below, cls_above)


def test_unsupported_modifier_stays_with_pyhf():
    spec = _spec()
    spec["channels"][0]["samples"][1]["modifiers"].append({"name": "free_shape", "type": "shapefactor", "data": None})
    assert not supports(spec) and supports(_spec())
    model, data = model_and_data(workspace_from_spec(spec, "test"), measurement="m")
    with pytest.raises(ValueError, match="shapefactor"):
        BinnedLikelihood(spec, model)
    assert _analytic_hypotest(model, data) is None  # upper_limit(engine="analytic") then takes pyhf's fits


def test_kstartautau_fits_use_the_analytic_engine():
    stats_file = read_stats_file(config_path("stats", "kstartautau.yaml"))
    assert {p.fit_engine for p in stats_file.parts.values()} == {"analytic"}
    assert stats_file.combination.fit_engine == "analytic"
