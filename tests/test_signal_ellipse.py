"""The tau -> 3 mu signal-ellipse fit against toys whose profile slope and widths are known analytically."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.processors.signal_ellipse import fit_signal_ellipse, profile_slope


def correlated_toy(n: int, slope: float, sigma_de: float, sigma_noise: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """dE ~ N(0, sigma_de); M = 1.777 + slope dE + N(0, sigma_noise): the profile of M in dE has slope ``slope``."""
    rng = np.random.default_rng(seed)
    de = rng.normal(0, sigma_de, n)
    return 1.777 + slope * de + rng.normal(0, sigma_noise, n), de


def test_profile_slope_recovers_the_regression_line():
    m, de = correlated_toy(40_000, slope=0.15, sigma_de=0.012, sigma_noise=0.004)
    slope, error, _ = profile_slope(de, m, np.ones_like(m))
    assert slope == pytest.approx(0.15, abs=4 * error)
    assert error < 0.02


def test_rotated_widths_match_the_analytic_projections():
    k, sd, sn = 0.2, 0.012, 0.004
    m, de = correlated_toy(60_000, slope=k, sigma_de=sd, sigma_noise=sn, seed=2)
    fit = fit_signal_ellipse(m, de)
    angle = -np.arctan(k)
    assert fit.angle == pytest.approx(angle, abs=0.02)
    c, s = np.cos(angle), np.sin(angle)
    # u = c dM + s dE, v = -s dM + c dE with dM = k dE + noise: Gaussian widths follow from the variances
    sigma_u = np.sqrt((c * k + s) ** 2 * sd**2 + c**2 * sn**2)
    sigma_v = np.sqrt((c - s * k) ** 2 * sd**2 + s**2 * sn**2)
    for fitted, expected in ((fit.sigma_m_high, sigma_u), (fit.sigma_m_low, sigma_u),
                             (fit.sigma_de_high, sigma_v), (fit.sigma_de_low, sigma_v)):
        assert fitted == pytest.approx(expected, rel=0.05)
    assert fit.m_mean == pytest.approx(1.777, abs=2e-4) and fit.de_mean == pytest.approx(0.0, abs=5e-4)


def test_asymmetric_widths_without_correlation():
    rng = np.random.default_rng(3)
    n = 60_000
    # a bifurcated Gaussian is continuous at the peak: each side's share is proportional to its width
    side = rng.random(n) < 0.004 / (0.004 + 0.006)
    m = 1.777 + np.where(side, np.abs(rng.normal(0, 0.004, n)), -np.abs(rng.normal(0, 0.006, n)))
    de = rng.normal(0, 0.010, n)
    fit = fit_signal_ellipse(m, de)
    assert abs(fit.angle) < 0.05
    assert fit.sigma_m_high == pytest.approx(0.004, rel=0.08) and fit.sigma_m_low == pytest.approx(0.006, rel=0.08)


def test_too_few_candidates_is_a_clear_error():
    with pytest.raises(ValueError, match="too few"):
        fit_signal_ellipse(np.full(10, 1.777), np.zeros(10))
