"""Two- and three-body phase-space sampling, vectorised over events."""

from __future__ import annotations

import numpy as np


def kallen(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Kallen function lambda(a, b, c)."""
    return a * a + b * b + c * c - 2 * (a * b + a * c + b * c)


def two_body_momentum(m: np.ndarray, m1: float | np.ndarray, m2: float | np.ndarray) -> np.ndarray:
    """Momentum of either daughter in the rest frame of a parent of mass ``m``."""
    return np.sqrt(np.clip(kallen(m * m, m1 * m1, m2 * m2), 0.0, None)) / (2.0 * m)


def isotropic_directions(n: int, rng: np.random.Generator, cos_theta: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors ``(n, 3)``; uniform in phi, with given or uniform cos(theta)."""
    c = rng.uniform(-1.0, 1.0, n) if cos_theta is None else cos_theta
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    s = np.sqrt(1.0 - c * c)
    return np.column_stack([s * np.cos(phi), s * np.sin(phi), c])


def directions_about_axis(axis: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` at polar angle theta about ``axis`` ``(n, 3)``, azimuth phi."""
    a = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    helper = np.where(np.abs(a[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(a, e1)
    sin = np.sqrt(np.clip(1 - cos_theta**2, 0.0, None))
    return cos_theta[:, None] * a + sin[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def decay_two_body(
    m: np.ndarray, m1: float | np.ndarray, m2: float | np.ndarray, direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daughters' four-momenta ``(n, 4)`` (px, py, pz, E) in the parent rest frame, daughter 1 along ``direction``."""
    p = two_body_momentum(m, m1, m2)
    p1 = direction * p[:, None]
    e1 = np.sqrt(p * p + np.square(m1))
    e2 = np.sqrt(p * p + np.square(m2))
    return np.column_stack([p1, e1]), np.column_stack([-p1, e2])


def boost(p4: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Boost ``(n, 4)`` vectors from the rest frame of ``parent`` ``(n, 4)`` into the frame where it has that momentum."""
    m = np.sqrt(np.clip(parent[:, 3] ** 2 - np.sum(parent[:, :3] ** 2, axis=1), 0.0, None))
    beta = parent[:, :3] / parent[:, 3:4]
    gamma = parent[:, 3] / m
    b2 = np.sum(beta * beta, axis=1)
    bp = np.sum(beta * p4[:, :3], axis=1)
    coef = np.divide(gamma - 1.0, b2, out=np.zeros_like(b2), where=b2 > 0)
    p3 = p4[:, :3] + (coef * bp + gamma * p4[:, 3])[:, None] * beta
    return np.column_stack([p3, gamma * (p4[:, 3] + bp)])


def three_body(
    sqrt_s: np.ndarray, m1: float, m2: float, m3: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three-body phase space in the CM frame by the sequential method, m12 uniform.

    Returns the three four-momenta and the phase-space weight per event, normalised so that
    ``mean(weight)`` estimates the Lorentz-invariant phase space Phi_3 (PDG conventions,
    (2 pi)^4 delta^4 prod d^3p / ((2 pi)^3 2E)).
    """
    n = len(sqrt_s)
    lo, hi = m1 + m2, sqrt_s - m3
    m12 = rng.uniform(lo, hi)
    p3_star = two_body_momentum(sqrt_s, m12, m3)
    p1_star = two_body_momentum(m12, m1, m2)
    # Phi_3 = int dm12^2 / (2 pi) Phi_2(s; m12, m3) Phi_2(m12^2; m1, m2), with Phi_2 = p* / (4 pi sqrt(s))
    phi2_outer = p3_star / (4.0 * np.pi * sqrt_s)
    phi2_inner = p1_star / (4.0 * np.pi * m12)
    weight = (hi - lo) * 2.0 * m12 / (2.0 * np.pi) * phi2_outer * phi2_inner
    pair, third = decay_two_body(sqrt_s, m12, m3, isotropic_directions(n, rng))
    d1, d2 = decay_two_body(m12, m1, m2, isotropic_directions(n, rng))
    return boost(d1, pair), boost(d2, pair), third, weight
