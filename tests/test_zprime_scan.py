"""zprime's per-mass 2D fit: the vectorised template fit (stats/template_scan.py) against pyhf and closed
forms, and the scan's pieces (analyses/zprime_scan.py) on synthetic inputs."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest

from belle_rare.analyses import zprime_scan as zs
from belle_rare.simulation.generators import lmu_ltau
from belle_rare.stats import fast_scan
from belle_rare.stats import template_scan as ts

# pyhf's published validation case 1bin_shapesys: s = 10, b = 50 +- 7, n = 55, mu = 1
SHAPESYS_CLS_OBS = 0.4541865
SHAPESYS_CLS_EXP = [0.063718, 0.150965, 0.327961, 0.604609, 0.866263]


def _one_bin(n, b, db, kappa=0.0) -> ts.Windows:
    n, b, db = (np.atleast_1d(np.asarray(v, float))[:, None] for v in (n, b, db))
    ones = np.ones_like(n)
    return ts.Windows(n, ones, ones, ones, b, db, np.full(len(n), kappa), ones.astype(bool))


def _cls_at(w: ts.Windows, x: np.ndarray) -> np.ndarray:
    """CLs (6, H): observed, expected -2..+2 sigma (pyhf's order)."""
    fits = ts.fit_all(w)
    starts = {k: fits.background.copy() for k in ("obs", "obs_a", 1, 2, 3, 4, 5)}
    return np.exp(ts._curves(np.tile(x, (6, 1)), w, fits, starts, 40))


def test_one_bin_shapesys_reproduces_pyhf_validation_case():
    cls = _cls_at(_one_bin(55.0, 50.0, 7.0), np.array([10.0]))
    assert cls[0, 0] == pytest.approx(SHAPESYS_CLS_OBS, abs=2e-5)
    assert np.allclose(cls[1:, 0], SHAPESYS_CLS_EXP, atol=2e-5)


def test_one_bin_limits_match_the_closed_form_for_many_hypotheses():
    rng = np.random.default_rng(4)
    b = rng.uniform(0.5, 500.0, 40)
    db = 0.2 * b
    n = rng.poisson(b).astype(float)
    fast, _ = ts.upper_limits(_one_bin(n, b, db), cl=0.90)
    closed = fast_scan.asymptotic_limits(n, b, db, cl=0.90)
    assert np.allclose(fast.observed, closed.observed, rtol=5e-3)
    assert np.allclose(fast.expected, closed.expected, rtol=5e-3)


def _window(seed: int = 3, k: int = 12) -> ts.Windows:
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.5, 1.5, k)
    shape = lambda width: np.exp(-0.5 * (x / width) ** 2)  # noqa: E731
    s, up, down = shape(0.5), shape(0.55), shape(0.45)
    total = s.sum()
    b = 30.0 * (1.0 + 0.3 * x) * rng.uniform(0.8, 1.2, k)
    n = rng.poisson(b + 5.0 * s / total).astype(float)
    return ts.Windows(n[None], (s / total)[None], (up / total)[None], (down / total)[None], b[None],
                      np.hypot(0.086 * b, np.sqrt(0.1 * b))[None], np.array([0.066]), np.ones((1, k), bool))


def test_full_model_cls_agrees_with_pyhf_hypotest():
    """Signal normsys + resolution histosys + per-bin shapesys: the vectorised fits against pyhf's."""
    w = _window()
    x = 12.0
    cls = _cls_at(w, np.array([x]))[:, 0]
    spec = ts.pyhf_spec(w, 0)
    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    obs, exp = pyhf.infer.hypotest(x, workspace.data(model), model, test_stat="qtilde", return_expected_set=True)
    assert cls[0] == pytest.approx(float(obs), rel=2e-3)
    assert np.allclose(cls[1:], np.array(exp, float), rtol=5e-3)


def test_core_width_of_a_gaussian_histogram():
    edges = np.linspace(-0.5, 10.0, 211)
    rng = np.random.default_rng(1)
    counts, _ = np.histogram(rng.normal(4.0, 0.3, 200_000), edges)
    mean, sigma = zs.core_width(edges, counts, 4.1, 0.25)
    assert mean == pytest.approx(4.0, abs=0.01)
    assert sigma == pytest.approx(0.3, rel=0.03)


def _samples() -> zs.SignalSamples:
    """Two synthetic signal samples: Gaussian M2 peaks, flat in theta (2 bins)."""
    edges = np.linspace(-0.5, 81.0, 1631)
    mid = 0.5 * (edges[1:] + edges[:-1])
    masses = np.array([2.0, 4.0])
    sigmas = np.array([0.3, 0.2])
    shapes = []
    for m, s in zip(masses, sigmas):
        peak = np.exp(-0.5 * ((mid - m**2) / s) ** 2)
        shapes.append(np.repeat((peak / peak.sum() / 2)[:, None], 2, axis=1))
    return zs.SignalSamples(masses, np.array([0.3, 0.2]), masses**2, sigmas, np.stack(shapes), np.array([1e3, 1e3]),
                            np.array([1e-6, 1e-7]), ["sig_zprime_m2", "sig_zprime_m4"]), edges


def test_signal_template_is_shifted_and_stretched_to_the_hypothesis():
    samples, edges = _samples()
    cfg = zs.ScanConfig.model_validate({
        "search": "zprime", "experiment": "belle2", "poi": "sigma", "cl": 0.9,
        "systematics": {"ranges": [{"m2": [-0.5, 81.0], "efficiency": 0.05, "background_shape": 0.1}],
                        "resolution": 0.1, "luminosity": 0.01},
        "scan": {"half_width_sigma": 3.0}})
    masses = zs.hypotheses(samples, cfg)
    # equally spaced in M2 at one sigma, sigma interpolated linearly in M between 0.3 and 0.2 GeV^2
    steps = np.diff(masses**2)
    assert np.all(steps > 0.19) and np.all(steps < 0.31)
    p = zs.plan(np.array([2.9]), samples, edges, cfg)
    assert p.nearest[0] == 0 and p.sigma[0] == pytest.approx(0.255) and p.efficiency[0] == pytest.approx(0.255)
    k = int(p.width.max())
    shape, mask = zs._stretched(samples, p, edges, k, 1.0)
    frac = shape[0].sum(axis=1)
    mid = 0.5 * (edges[p.first[0]:p.first[0] + k] + edges[p.first[0] + 1:p.first[0] + k + 1])
    mean = np.sum(frac * mid) / frac.sum()
    width = np.sqrt(np.sum(frac * (mid - mean) ** 2) / frac.sum())
    assert mean == pytest.approx(2.9**2, abs=0.01)
    assert frac.sum() == pytest.approx(0.9973, abs=0.01)        # +-3 sigma of a Gaussian
    assert width == pytest.approx(0.255 * 0.9733, rel=0.03)       # a Gaussian's sigma within +-3 sigma
    wider, _ = zs._stretched(samples, p, edges, k, 1.1)
    assert wider[0].sum() < frac.sum()                            # the +10 % resolution leaks out of the window


def test_systematics_by_m2_range():
    ranges = [zs.M2Range(m2=(-0.5, 9.0), efficiency=0.027, background_shape=0.032),
              zs.M2Range(m2=(9.0, 36.0), efficiency=0.065, background_shape=0.086),
              zs.M2Range(m2=(36.0, 81.0), efficiency=0.083, background_shape=0.25)]
    m2 = np.array([0.0, 8.9, 20.0, 50.0, 85.0])
    assert list(zs.range_values(m2, ranges, "background_shape")) == [0.032, 0.032, 0.086, 0.25, 0.25]


def test_coupling_from_the_samples_cross_sections():
    """g'_UL = sqrt(sigma_UL / sigma(g' = 1) x BR): at a sample's mass the sample's own sigma x BR / g'^2."""
    samples, _ = _samples()
    zm = zs.load_catalogue().get("sig_zprime").zprime_model
    unit = zs.unit_coupling_cross_section(samples, samples.mass, zm.invisible)
    assert np.allclose(unit, samples.cross_section_nb * 1e6 / zm.coupling**2, rtol=1e-9)
    fully = zs.unit_coupling_cross_section(samples, samples.mass, "fully_invisible")
    assert np.allclose(fully / unit, 1.0 / lmu_ltau.invisible_branching_fraction(samples.mass, "vanilla"))
    # a limit equal to the sample's sigma x BR is the sample's coupling
    assert np.allclose(lmu_ltau.coupling_limit(samples.cross_section_nb * 1e6, unit), zm.coupling)


def test_a_dataset_that_selected_nothing_is_an_empty_plane(tmp_path):
    """A background dataset with no selected event has no channel / region category to index (growing axes):
    the scan reads it as an empty (M2, theta) plane instead of failing (make run's small samples)."""
    import hist

    from belle_rare.stats.histograms import load_run_output
    from belle_rare.stats.synthetic import book, write_run_output

    cfg = zs.load_scan_config()
    hists = {}
    h = book(hists, cfg.scan.histogram, hist.axis.Regular(40, -0.5, 81.0, name="m2"),
             hist.axis.Regular(36, 0.0, 180.0, name="theta"), systematics=False)
    h.set_bins("tautau", zs.CHANNEL, cfg.scan.region, np.ones((40, 36)))
    # the empty dataset's histogram: same axes, no categories filled
    empty = hist.Hist(*[hist.axis.StrCategory([], name=a.name, growth=True) if a.name in ("channel", "region") else a
                        for a in hists["tautau"][cfg.scan.histogram].axes], storage=hist.storage.Weight())
    hists["eemumu"] = {cfg.scan.histogram: empty}
    write_run_output(tmp_path, "zprime", "belle2", 79.7, {"tautau": {"kind": "background"}, "eemumu": {"kind": "background"}}, hists)
    run = load_run_output(tmp_path, "zprime")
    values, variances, m2_edges, theta_edges = zs._hist2d(run, "eemumu", cfg)
    assert values.shape == (40, 36 // cfg.scan.theta_rebin) and not values.any() and not variances.any()
    np.testing.assert_allclose(m2_edges, np.linspace(-0.5, 81.0, 41))
    full, _, _, _ = zs._hist2d(run, "tautau", cfg)
    assert full.sum() == pytest.approx(40 * 36)
