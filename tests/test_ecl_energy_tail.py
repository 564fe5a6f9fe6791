"""The ECL's low-energy leakage tail (calorimeter.novosibirsk_deviation, ``calorimeter.energy_tail``):
the Novosibirsk line shape against its closed-form CDF, on the sampler and through the detector."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy.stats import norm

from belle_rare.simulation.detector import load_detector, simulate_detector, toy_truth
from belle_rare.simulation.detector.calorimeter import energy_resolution, novosibirsk_deviation
from belle_rare.simulation.detector.params import EnergyTail


def _novosibirsk_cdf(a: np.ndarray, tau: float) -> np.ndarray:
    """P(x < a sigma): x increases with u = ln(1 + tau q x / sigma) / tau, u ~ N(tau, 1)."""
    q = np.sinh(tau * np.sqrt(np.log(4))) / (tau * np.sqrt(np.log(4)))
    arg = 1 + tau * q * a
    u = np.where(arg > 0, np.log(np.maximum(arg, 1e-300)) / tau, np.inf)  # beyond the upper end: P = 1
    return norm.cdf(u - tau)


def _novosibirsk_pdf(x: np.ndarray, tau: float) -> np.ndarray:
    """The line shape as basf2 writes it (eclNOptimalNovo; peak 0, width 1), unnormalised."""
    q = np.sinh(tau * np.sqrt(np.log(4))) / (tau * np.sqrt(np.log(4)))
    y = 1 + tau * q * x
    return np.where(y > 1e-7, np.exp(-0.5 * (np.log(np.maximum(y, 1e-300)) / tau) ** 2 - 0.5 * tau**2), 0.0)


@pytest.mark.parametrize("tau", [-0.1, -0.2, -0.5])
def test_sampler_is_the_novosibirsk_line_shape(tau: float) -> None:
    z = np.random.default_rng(1).standard_normal(400_000)
    x = novosibirsk_deviation(z, np.ones(len(z)), EnergyTail(tail=tau))
    for a in (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0):
        expected = float(_novosibirsk_cdf(np.array(a), tau))
        assert abs(np.mean(x < a) - expected) < 4 * np.sqrt(expected * (1 - expected) / len(z)) + 1e-4
    # the same density as basf2's formula: its half maximum sits at +-1.1774 (FWHM = 2.355 sigma)
    grid = np.linspace(-40, 4, 880_001)  # the tail reaches far for tau = -0.5
    pdf = _novosibirsk_pdf(grid, tau)
    above = grid[pdf > 0.5 * pdf.max()]
    assert abs(grid[np.argmax(pdf)]) < 1e-3 and abs((above.max() - above.min()) / 2.3548 - 1) < 1e-3
    cdf_numeric = np.cumsum(pdf) / pdf.sum()
    np.testing.assert_allclose(np.interp([-2.0, 0.0, 1.0], grid, cdf_numeric), _novosibirsk_cdf(np.array([-2.0, 0.0, 1.0]), tau), atol=2e-3)


def test_no_tail_is_the_gaussian() -> None:
    z = np.random.default_rng(2).standard_normal(1000)
    np.testing.assert_array_equal(novosibirsk_deviation(z, 0.02, None), 0.02 * z)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_photon_clusters_have_the_configured_tail(name: str) -> None:
    """2 GeV photons in the barrel: the fraction of clusters more than 2 and 3 sigma below the true energy
    is the Novosibirsk CDF's (12.8 % / 4.9 % for tau = -0.387), not the Gaussian's (2.3 % / 0.13 %)."""
    n = 40000
    rng = np.random.default_rng(3)
    truth = toy_truth.particle_gun(22, np.full(n, 2.0), np.full(n, np.radians(90.0)), rng.uniform(-np.pi, np.pi, n), experiment=name)
    det = load_detector(name)
    photons = ak.flatten(simulate_detector(truth, det, rng)["Photon"])
    photons = photons[(photons.mcIndex == 0) & (photons.mcPDG == 22)]  # unconverted, not beam background
    sigma = float(energy_resolution(np.array([2.0]), det.calorimeter)[0])
    x = (ak.to_numpy(photons.E) - 2.0) / (2.0 * sigma)
    tau = det.calorimeter.energy_tail.tail
    for a in (-3.0, -2.0):
        expected = float(_novosibirsk_cdf(np.array(a), tau))
        err = np.sqrt(expected * (1 - expected) / len(x))
        assert abs(np.mean(x < a) - expected) < 4 * err + 0.002, (a, np.mean(x < a), expected)
        assert np.mean(x < a) > 2 * norm.cdf(a)
