"""Angles, directions and Lorentz boosts on numpy columns."""

from __future__ import annotations

import numpy as np

#: p [GeV/c] = GEV_PER_TESLA_METRE * B [T] * R [m] for a unit charge (c in these units)
GEV_PER_TESLA_METRE = 0.299792458
CM_PER_M = 100.0


def polar_angles(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(theta, phi) of vectors, rad."""
    return np.arctan2(np.hypot(px, py), pz), np.arctan2(py, px)


def direction(theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vector components for polar angles."""
    sin_theta = np.sin(theta)
    return sin_theta * np.cos(phi), sin_theta * np.sin(phi), np.cos(theta)


def helix_radius_cm(pt: np.ndarray, field_tesla: float) -> np.ndarray:
    """Radius of curvature (cm) of a unit-charge track with transverse momentum ``pt`` (GeV/c)."""
    return CM_PER_M * pt / (GEV_PER_TESLA_METRE * field_tesla)


def invariant_mass(E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """sqrt(E^2 - p^2), negative mass-squared clipped to zero."""
    return np.sqrt(np.maximum(E * E - px * px - py * py - pz * pz, 0.0))


def boost(
    E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four-vectors seen from a frame moving with velocity ``beta`` ((3,) or (n, 3)).

    ``boost(..., beta_cm)`` takes laboratory vectors to the frame moving with ``beta_cm``;
    ``boost(..., -beta_cm)`` takes them back.
    """
    beta = np.asarray(beta, dtype=np.float64)
    bx, by, bz = beta[..., 0], beta[..., 1], beta[..., 2]
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    # (gamma - 1)/beta^2, finite as beta -> 0
    factor = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    E_new = gamma * (E - bp)
    scale = factor * bp - gamma * E
    return E_new, px + scale * bx, py + scale * by, pz + scale * bz
