"""Angles, directions and helix radii on numpy columns.

Four-vectors (masses, boosts, frames) are ``belle_rare.core.fourvector``'s, in its (px, py, pz, E)
order, as everywhere else.
"""

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
