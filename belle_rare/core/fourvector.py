"""Four-vector primitives in the one convention every layer uses: components ``px, py, pz, E`` (GeV).

Everything takes separate components -- awkward arrays (flat per event or jagged per particle),
numpy arrays or plain floats -- and returns ``P4(px, py, pz, E)`` / ``Vec3(x, y, z)`` tuples of the
same kind; event-level values (a boost vector, sqrt(s)) broadcast onto jagged collections. Frames:
the laboratory, and the centre-of-mass (CM) frame of the e+e- system, reached by ``to_cm`` with
the velocity ``cm_boost`` gives. The simulation (numpy columns) and the processors (awkward
columns, through ``processors.kinematics``, which adds the B-factory signal variables) share these.
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias, Union

import awkward as ak
import numpy as np

Array: TypeAlias = Union[ak.Array, np.ndarray, float]


class P4(NamedTuple):
    """Four-momentum components (GeV); unpacks as ``px, py, pz, E``."""

    px: Array
    py: Array
    pz: Array
    E: Array


class Vec3(NamedTuple):
    """Three-vector components; unpacks as ``x, y, z``."""

    x: Array
    y: Array
    z: Array


# ---------------------------------------------------------------------------------------------
# beams, boosts, frames


def sqrt_s(beam_E: Array, beam_px: Array, beam_py: Array, beam_pz: Array) -> Array:
    """Centre-of-mass energy sqrt(s) of the total e+e- four-momentum (the beams in the lab)."""
    return mass(beam_px, beam_py, beam_pz, beam_E)


def cm_boost(beam_E: Array, beam_px: Array, beam_py: Array, beam_pz: Array) -> Vec3:
    """Velocity beta of the CM frame in the lab: p_beams / E_beams (one 3-vector per event)."""
    return Vec3(beam_px / beam_E, beam_py / beam_E, beam_pz / beam_E)


def boost(px: Array, py: Array, pz: Array, E: Array, bx: Array, by: Array, bz: Array) -> P4:
    """Four-momenta seen from a frame moving with velocity ``(bx, by, bz)``.

    Pure Lorentz boost (no rotation). Event-level beta broadcasts onto jagged particles.
    """
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    # (gamma - 1) / beta^2 written as gamma^2 / (gamma + 1): finite at beta = 0, and no
    # cancellation in gamma - 1 (float32 columns: gamma - 1 ~ 0.04 at the B factories)
    coeff = gamma * gamma / (gamma + 1.0) * bp - gamma * E
    return P4(px + coeff * bx, py + coeff * by, pz + coeff * bz, gamma * (E - bp))


def to_cm(px: Array, py: Array, pz: Array, E: Array, bx: Array, by: Array, bz: Array) -> P4:
    """Lab four-momenta -> CM frame, with ``(bx, by, bz)`` from ``cm_boost`` (per event)."""
    return boost(px, py, pz, E, bx, by, bz)


def to_lab(px: Array, py: Array, pz: Array, E: Array, bx: Array, by: Array, bz: Array) -> P4:
    """CM four-momenta -> lab frame: the inverse of ``to_cm`` for the same beta."""
    return boost(px, py, pz, E, -bx, -by, -bz)


# ---------------------------------------------------------------------------------------------
# sums, masses, angles


def p4_sum(px: ak.Array, py: ak.Array, pz: ak.Array, E: ak.Array) -> P4:
    """Per-event sum of a jagged collection (the innermost axis); empty events give zeros."""
    return P4(*(ak.sum(c, axis=-1) for c in (px, py, pz, E)))


def p4_add(*vectors: P4) -> P4:
    """Component-wise sum of several four-vectors (same shape or broadcastable)."""
    if not vectors:
        raise ValueError("p4_add needs at least one four-vector")
    total = vectors[0]
    for v in vectors[1:]:
        total = P4(total.px + v.px, total.py + v.py, total.pz + v.pz, total.E + v.E)
    return total


def momentum(px: Array, py: Array, pz: Array) -> Array:
    """Magnitude |p|."""
    return np.sqrt(px * px + py * py + pz * pz)


def mass2(px: Array, py: Array, pz: Array, E: Array) -> Array:
    """Invariant mass squared E^2 - |p|^2 (may be negative: resolution, missing-mass fits)."""
    return E * E - (px * px + py * py + pz * pz)


def mass(px: Array, py: Array, pz: Array, E: Array) -> Array:
    """Invariant mass, sqrt of ``mass2`` clipped at zero (NaN-free)."""
    return np.sqrt(np.maximum(mass2(px, py, pz, E), 0.0))


def invariant_mass(*vectors: P4) -> Array:
    """Invariant mass of the sum of the given four-vectors."""
    return mass(*p4_add(*vectors))


def cos_theta(px: Array, py: Array, pz: Array) -> Array:
    """Cosine of the polar angle from +z (the solenoid axis, e- direction); NaN for p = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return pz / momentum(px, py, pz)


def cos_angle(a: Vec3 | P4, b: Vec3 | P4) -> Array:
    """Cosine of the opening angle between two 3-vectors (P4 uses its momentum part)."""
    ax, ay, az = a[:3]
    bx, by, bz = b[:3]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (ax * bx + ay * by + az * bz) / (momentum(ax, ay, az) * momentum(bx, by, bz))
    # rounding can push |c| a hair above 1 for (anti)parallel vectors
    return np.minimum(np.maximum(c, -1.0), 1.0)


def angle_between(a: Vec3 | P4, b: Vec3 | P4) -> Array:
    """Opening angle (rad) between two 3-vectors."""
    return np.arccos(cos_angle(a, b))
