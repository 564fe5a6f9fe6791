"""stats/template_scan.py's interpolation codes are pyhf 0.7.6's defaults (normsys code 4, histosys code 4p):
the expected counts and the likelihood against pyhf's model of the same workspace at non-zero nuisance
values, inside (|alpha| < 1, the polynomials) and outside (the exponential / linear extrapolations)."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest

from belle_rare.stats import template_scan as ts

POINTS = [(0.0, 0.0), (0.5, 0.6), (-0.3, -0.8), (0.9, -0.2), (1.7, 1.5), (-2.2, -1.9)]


def _window(k: int = 10) -> ts.Windows:
    """One hypothesis with an asymmetric resolution variation (up and down differ, so code 4p's A term acts)."""
    rng = np.random.default_rng(2)
    x = np.linspace(-1.5, 1.5, k)
    s = np.exp(-0.5 * (x / 0.5) ** 2)
    up, down = np.exp(-0.5 * (x / 0.58) ** 2), np.exp(-0.5 * (x / 0.46) ** 2)
    total = s.sum()
    b = 20.0 * (1.0 + 0.2 * x) * rng.uniform(0.8, 1.2, k)
    n = rng.poisson(b + 6.0 * s / total).astype(float)
    return ts.Windows(n[None], (s / total)[None], (up / total)[None], (down / total)[None], b[None], (0.15 * b)[None],
                      np.array([0.2]), np.ones((1, k), bool))


def _pyhf_model(w: ts.Windows):
    workspace = pyhf.Workspace(ts.pyhf_spec(w, 0))
    model = workspace.model()   # default modifier settings: normsys code4, histosys code4p
    assert model.config.modifier_settings == {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
    return workspace, model


def _pars(model, x: float, t: float, a: float, g: np.ndarray) -> np.ndarray:
    pars = np.array(model.config.suggested_init(), float)
    for name, value in (("mu", [x]), ("signal_norm", [t]), ("resolution", [a]), ("shape", g)):
        pars[model.config.par_slice(name)] = value
    return pars


@pytest.mark.parametrize("t, a", POINTS)
def test_expected_counts_match_pyhf_at_nonzero_nuisances(t, a):
    w = _window()
    _, model = _pyhf_model(w)
    g = np.linspace(0.9, 1.1, w.b.shape[1])
    x = 15.0
    ours = ts.expected(w, ts.Params(np.array([x]), np.array([t]), np.array([a]), g[None]))[0]
    theirs = np.asarray(model.expected_actualdata(_pars(model, x, t, a, g)), float)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_likelihood_differences_match_pyhf():
    """-log L between nuisance points (constants cancel): ours = pyhf's logpdf, auxiliary data included."""
    w = _window()
    workspace, model = _pyhf_model(w)
    data = workspace.data(model)
    aux = ts.nominal_aux(w)
    g = np.linspace(0.95, 1.05, w.b.shape[1])
    ref = None
    for t, a in POINTS:
        ours = ts.nll(w, w.n, aux, ts.Params(np.array([8.0]), np.array([t]), np.array([a]), g[None]))[0]
        theirs = -float(model.logpdf(_pars(model, 8.0, t, a, g), data)[0])
        if ref is None:
            ref = (ours, theirs)
        assert ours - ref[0] == pytest.approx(theirs - ref[1], abs=1e-8)


def test_interpolation_derivatives_are_the_functions_slopes():
    """The Newton fit's derivatives: df/dt, d2f/dt2 and ds/da against finite differences (continuous across |1|)."""
    w = _window()
    kappa = np.full(7, 0.2)
    t = np.array([-2.0, -1.0, -0.4, 0.0, 0.3, 0.999, 1.6])
    f, df, d2f = ts._norm_factor(t, kappa)
    h = 1e-6
    fp, dfp, _ = ts._norm_factor(t + h, kappa)
    fm, dfm, _ = ts._norm_factor(t - h, kappa)
    np.testing.assert_allclose(df, (fp - fm) / (2 * h), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d2f, (dfp - dfm) / (2 * h), rtol=1e-5, atol=1e-7)
    for a in (-1.5, -0.5, 0.0, 0.7, 1.0 - 1e-4, 1.3):
        s, slope = ts._signal_shape(w, np.array([a]))
        sp, _ = ts._signal_shape(w, np.array([a + h]))
        sm, _ = ts._signal_shape(w, np.array([a - h]))
        np.testing.assert_allclose(slope, (sp - sm) / (2 * h), rtol=1e-5, atol=1e-10)
    # at |t| = 1 the polynomial meets the exponential (f = hi, lo) with the same slope
    one = ts._norm_factor(np.array([1.0 - 1e-9, 1.0, -1.0 + 1e-9, -1.0]), np.full(4, 0.2))
    assert one[0][0] == pytest.approx(1.2) and one[0][2] == pytest.approx(0.8)
    assert one[1][0] == pytest.approx(one[1][1], rel=1e-6) and one[1][2] == pytest.approx(one[1][3], rel=1e-6)
