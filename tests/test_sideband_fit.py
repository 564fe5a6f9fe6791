"""The taulgamma sideband fit (stats/sideband_fit.py) and the (M_bc, dE) shape-fit limit (stats/shape_fit.py).

Closure on synthetic planes with a known background density (Landau + exponential in dE x flat
M_bc, the paper's sec. 3 model): the ellipse prediction is unbiased and its pulls have unit width;
the low-statistics fallback to the plain count with the MC bound; the shape-fit limit against the
counting limit where both apply (equal when the signal is distributed like the background, the sum
being then the sufficient statistic; tighter when the signal peaks in the ellipse).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from belle_rare.stats.model_config import load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.sideband_fit import Plane, PlaneGeometry, _Model, bin_probabilities, estimate_background, fit_component
from belle_rare.stats.synthetic import taulgamma_plane_output
from belle_rare.stats.workspace import channel_geometry

MBC_EDGES = np.linspace(1.5, 2.0, 201)  # the processor's plane (configs/searches/taulgamma.yaml histograms)
DE_EDGES = np.linspace(-0.1, 0.05, 151)
GEOMETRY = PlaneGeometry(1.7793, -0.00074, 2 * 0.01455, 2 * 0.00424, ((1.60, 1.74), (1.83, 1.97)))
# Landau (mpv, log width, logit fraction) + exponential (slope) in dE/sqrt(s)
TRUE_SHAPE = np.array([-0.01, math.log(0.008), 1.0, 30.0])


def true_plane(n_plane: float, shape: str = "landau_exponential", theta: np.ndarray = TRUE_SHAPE) -> np.ndarray:
    """Expected simulated events per (M_bc, dE) bin: flat M_bc x the dE shape, n_plane on the plane."""
    q = np.diff(MBC_EDGES) / (MBC_EDGES[-1] - MBC_EDGES[0])
    return n_plane * np.outer(q, bin_probabilities(shape, theta, DE_EDGES))


def true_ellipse(nu: np.ndarray, geometry: PlaneGeometry = GEOMETRY, shape: str = "landau_exponential",
                 theta: np.ndarray = TRUE_SHAPE) -> float:
    """The exact expected simulated events in the ellipse of the density behind ``nu``."""
    model = _Model(Plane(nu, nu, MBC_EDGES, DE_EDGES), geometry, shape, "flat")
    n_sideband = nu[model.sb_bins].sum()
    return model.ellipse_yield(np.concatenate([[math.log(n_sideband)], theta]))


def test_the_ellipse_integral_is_the_density_integrated_over_the_ellipse():
    """Against brute force: the density sampled on a fine grid inside the ellipse."""
    nu = true_plane(1.0e4)
    m = np.linspace(GEOMETRY.mbc_mean - GEOMETRY.mbc_half_axis, GEOMETRY.mbc_mean + GEOMETRY.mbc_half_axis, 801)
    d = np.linspace(GEOMETRY.de_mean - GEOMETRY.de_half_axis, GEOMETRY.de_mean + GEOMETRY.de_half_axis, 801)
    mm, dd = np.meshgrid(0.5 * (m[1:] + m[:-1]), 0.5 * (d[1:] + d[:-1]), indexing="ij")
    p = bin_probabilities("landau_exponential", TRUE_SHAPE, np.concatenate([[DE_EDGES[0]], d, [DE_EDGES[-1]]]))[1:-1] / np.diff(d)
    density = 1.0e4 / 0.5 * p[None, :] * np.ones_like(mm)  # events per GeV per unit dE
    brute = float((density * GEOMETRY.contains(mm, dd)).sum() * np.diff(m)[0] * np.diff(d)[0])
    assert true_ellipse(nu) == pytest.approx(brute, rel=2e-3)
    # a flat dE shape: ellipse area x density
    flat = true_plane(1.0e4, "exponential", np.array([0.0]))
    assert true_ellipse(flat, shape="exponential", theta=np.array([0.0])) == pytest.approx(
        1.0e4 * GEOMETRY.area / (0.5 * 0.15), rel=1e-3)


@pytest.mark.parametrize("shape, theta, n_plane, n_toys", [
    ("exponential", np.array([20.0]), 300.0, 100),
    ("landau_exponential", TRUE_SHAPE, 1500.0, 30),
])
def test_closure_on_toys_unbiased_with_unit_pulls(shape, theta, n_plane, n_toys):
    """Poisson toys of the known density, each event weighing w = 4.5e4 (tautau at 988/fb): the
    fitted ellipse yield is unbiased and (fit - truth) / uncertainty has unit width."""
    w = 4.5e4
    nu = true_plane(n_plane, shape, theta)
    truth = w * true_ellipse(nu, shape=shape, theta=theta)
    rng = np.random.default_rng(11)
    fits = []
    for _ in range(n_toys):
        n = rng.poisson(nu).astype(float)
        fits.append(fit_component("tautau", Plane(n * w, n * w * w, MBC_EDGES, DE_EDGES), GEOMETRY, shape))
    values = np.array([f.ellipse for f in fits])
    pulls = np.array([(f.ellipse - truth) / f.ellipse_uncertainty for f in fits])
    rel_err = float(np.mean([f.ellipse_uncertainty for f in fits])) / truth
    # bias below a third of the toy mean's own uncertainty x 3 (i.e. no significant bias)
    assert abs(values.mean() / truth - 1.0) < 3 * rel_err / math.sqrt(n_toys) + 0.02
    assert abs(pulls.mean()) < 0.3
    assert 0.8 < pulls.std() < 1.25
    assert all(f.scale == pytest.approx(w) for f in fits)  # one scaled count = one simulated event


def test_weights_ten_thousand_apart_are_fitted_apart():
    """A heavy sample (w = 7.4e7, ee) with few events next to a light one (w = 4.5e4) with many: the
    light one is fitted in its own counts, the heavy one keeps its plain count / bound -- pooled, its
    two events would outweigh the other's thousand."""
    rng = np.random.default_rng(3)
    light = rng.poisson(true_plane(1500.0)).astype(float)
    heavy = np.zeros_like(light)
    heavy[50, 70] = 2.0  # two events in the sideband, none in the ellipse
    planes = {"tautau": Plane(light * 4.5e4, light * 4.5e4**2, MBC_EDGES, DE_EDGES),
              "ee": Plane(heavy * 7.4e7, heavy * 7.4e7**2, MBC_EDGES, DE_EDGES)}
    est = estimate_background(planes, {"tautau": (0.0, 0.0), "ee": (0.0, 0.0)}, GEOMETRY,
                              {"tautau": {"scale": 4.5e4}, "ee": {"scale": 7.4e7}}, min_events=20)
    assert [f.dataset for f in est.fits] == ["tautau"] and not est.fallback
    assert est.bound is not None and est.bound.weights == {"ee": 7.4e7}  # empty in the ellipse: the MC bound
    truth = 4.5e4 * true_ellipse(true_plane(1500.0))
    assert est.fitted == pytest.approx(truth, rel=0.3)
    assert est.value == pytest.approx(est.fitted + 7.4e7) and est.uncertainty > 7.4e7


def test_low_statistics_fall_back_to_the_plain_count_and_the_mc_bound():
    few = np.zeros((200, 150))
    few[30, 60] = few[150, 80] = 1.0  # two sideband events
    planes = {"tautau": Plane(few * 4.5e4, few * 4.5e4**2, MBC_EDGES, DE_EDGES)}
    est = estimate_background(planes, {"tautau": (0.0, 0.0), "uds": (0.0, 0.0)}, GEOMETRY,
                              {"tautau": {"scale": 4.5e4}, "uds": {"scale": 5.9e5}}, min_events=20)
    assert est.fallback and not est.fits
    assert est.value == pytest.approx(4.5e4 + 5.9e5) and est.bound.weights == {"tautau": 4.5e4, "uds": 5.9e5}
    d = est.as_dict()
    assert d["fallback"] and d["from_mc_bound"]


# ---------------------------------------------------------------------------------------------
# the stats model: synthetic run output of the taulgamma layout


def _run_output(tmp_path, n_plane: float, w: float = 1.0, signal_sigma_scale: float = 0.5, flat_signal: bool = False,
                seed: int = 5) -> None:
    """tautau drawn from the known density (weight ``w``); signals Gaussian at the ellipse centre
    (``signal_sigma_scale`` x half-axes) or, ``flat_signal``, distributed as the background."""
    taulgamma_plane_output(tmp_path, true_plane(n_plane), w, signal_sigma_scale=signal_sigma_scale, flat_signal=flat_signal,
                           rng=np.random.default_rng(seed))


def _limits(tmp_path, **settings) -> tuple[dict, dict]:
    """The tau -> mu gamma limit only (one channel keeps the test fast): (entry, limits.json document)."""
    config = load_stats_config("taulgamma")
    config = config.model_copy(update={"channels": [c for c in config.channels if c.name == "mugamma"],
                                       "signals": {"taumugamma": config.signals["taumugamma"]}})
    doc = compute_search_limits("taulgamma", tmp_path, Settings(**settings), config=config).document
    (entry,) = doc["limits"]
    return entry, doc


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    """3000 simulated background events on the plane (weight 1: ~80 in the ellipse), a peaked signal."""
    path = tmp_path_factory.mktemp("peaked")
    _run_output(path, n_plane=3000.0, signal_sigma_scale=0.3)
    return path, *_limits(path, calculator="asymptotics")


def test_the_stats_model_takes_the_sideband_fit_with_the_plain_count_beside_it(peaked):
    path, mu, doc = peaked
    assert mu["background_estimate"] == ["sideband_fit"]
    est = {e["estimate"]: e for e in mu["background_estimates"]}
    fit, plain = est["sideband_fit"], est["mc_count"]
    assert fit["used"] and not plain["used"] and not fit["fallback"]
    (component,) = fit["fits"]
    assert component["dataset"] == "tautau" and component["converged"]
    truth = true_ellipse(true_plane(3000.0), channel_geometry(load_stats_config("taulgamma"), "mugamma"))
    assert fit["value"] == pytest.approx(truth, abs=3 * fit["uncertainty"])
    assert fit["value"] == pytest.approx(plain["value"], abs=3 * plain["uncertainty"])
    # the fit uses the sidebands' statistics: more precise than the plain count of the same simulation
    assert fit["uncertainty"] < 0.7 * plain["uncertainty"]
    assert any("sideband fit" in n and "cross-check, the plain simulated count" in n for n in doc["notes"])
    assert "(M_bc, dE) bins" in mu["method"] and mu["counting_cross_check"]["workspace"].endswith("_counting.json")


def test_shape_limit_equals_counting_for_a_background_like_signal_and_beats_it_for_a_peak(tmp_path, peaked):
    """Asymptotic CLs: with the signal distributed like the background in the ellipse the bin
    contents carry nothing beyond their sum (equal limits); a signal peaked in the ellipse centre is
    separated from the smooth background (a tighter limit)."""
    _run_output(tmp_path, n_plane=3000.0, flat_signal=True)
    flat, _ = _limits(tmp_path, calculator="asymptotics")
    peak = peaked[1]
    for e, equal in ((flat, True), (peak, False)):
        shape_exp = e["signal_events"]["expected"][2]
        counting_exp = e["counting_cross_check"]["signal_events"]["expected"][2]
        if equal:
            assert shape_exp == pytest.approx(counting_exp, rel=0.03)
        else:
            assert shape_exp < 0.85 * counting_exp


def test_mc_count_is_the_plain_simulated_count(peaked):
    mu, _ = _limits(peaked[0], calculator="asymptotics", background_estimate="mc_count")
    assert mu["background_estimate"] == ["mc_count"] and "counting_cross_check" not in mu
    plain = next(e for e in mu["background_estimates"] if e["estimate"] == "mc_count")
    assert mu["background_events"] == pytest.approx(plain["value"])


def test_make_run_statistics_fall_back(tmp_path):
    """A handful of simulated background events (make run): the plain count with the MC bound, counting limit."""
    _run_output(tmp_path, n_plane=5.0, w=4.5e4, seed=1)
    mu, doc = _limits(tmp_path)
    fit = next(e for e in mu["background_estimates"] if e["estimate"] == "sideband_fit")
    assert fit["fallback"] and "counting_cross_check" not in mu
    assert any("falls back to the plain simulated count" in n for n in doc["notes"])


def test_shape_templates_sum_to_the_counting_numbers():
    """The bins of the shape fit hold the ellipse: overlaps add up to its area, the background
    templates to the fitted + counted yield and to the MC bound."""
    from belle_rare.stats.shape_fit import SHAPE_REBIN, _grouped_edges, background_density, ellipse_overlap

    m_edges, d_edges = _grouped_edges(MBC_EDGES, SHAPE_REBIN[0]), _grouped_edges(DE_EDGES, SHAPE_REBIN[1])
    overlap = ellipse_overlap(GEOMETRY, m_edges, d_edges)
    assert float((overlap * np.outer(np.diff(m_edges), np.diff(d_edges))).sum()) == pytest.approx(GEOMETRY.area, rel=5e-3)
    rng = np.random.default_rng(8)
    light = rng.poisson(true_plane(1500.0)).astype(float)
    planes = {"tautau": Plane(light, light, MBC_EDGES, DE_EDGES)}
    est = estimate_background(planes, {"tautau": (0.0, 0.0), "mumu": (2.0, 2.0), "ee": (0.0, 0.0)}, GEOMETRY,
                              {"tautau": {"scale": 1.0}, "mumu": {"scale": 1.0}, "ee": {"scale": 50.0}})
    fitted, bound = background_density(est, GEOMETRY, m_edges, d_edges)
    assert fitted.sum() == pytest.approx(est.fitted + 2.0) and bound.sum() == pytest.approx(50.0)
    # the fitted part follows the dE shape: more background on the ellipse's low-dE side (the Landau peak at -0.01)
    centres = 0.5 * (d_edges[1:] + d_edges[:-1])
    low, high = centres < GEOMETRY.de_mean, centres > GEOMETRY.de_mean
    assert (fitted - bound * 2.0 / 50.0)[:, low].sum() > (fitted - bound * 2.0 / 50.0)[:, high].sum()


def test_with_pseudo_data_the_fit_runs_on_the_data_sidebands(tmp_path):
    """As the paper: pseudo-data (Poisson, weight 1) of twice the simulated density -- the estimate
    follows the data, with the data's Poisson precision, and the shape fit observes the data."""
    rng = np.random.default_rng(21)
    data = rng.poisson(true_plane(6000.0)).astype(float)
    taulgamma_plane_output(tmp_path, true_plane(3000.0), 1.0, signal_sigma_scale=0.3, rng=rng, data=data)
    mu, doc = _limits(tmp_path, calculator="asymptotics")
    fit = next(e for e in mu["background_estimates"] if e["estimate"] == "sideband_fit")
    assert fit["fitted_to"] == "data" and [f["dataset"] for f in fit["fits"]] == ["data"]
    truth = true_ellipse(true_plane(6000.0), channel_geometry(load_stats_config("taulgamma"), "mugamma"))
    assert fit["value"] == pytest.approx(truth, abs=3 * fit["uncertainty"])
    assert fit["fits"][0]["weight_per_count"] == pytest.approx(1.0)
    assert mu["observed_events"] > 0 and not mu["asimov_observation"]
    assert any("sideband fit of the data events" in n for n in doc["notes"])
