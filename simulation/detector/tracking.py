"""Charged-track reconstruction: acceptance, efficiency, momentum / angle / impact-parameter smearing.

Only charged final-state e, mu, pi, K and p make tracks. Impact parameters come from a
straight-line extrapolation of the true production vertex along the true momentum to the point
of closest approach to the z axis (the nominal IP at the origin); the helix curvature is
neglected, which is exact for prompt tracks and a fair approximation for the few-cm flight
of K_S daughters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.kinematics import direction, helix_radius_cm, polar_angles
from belle_rare.simulation.detector.params import ImpactParameterResolution, Tracking


@dataclass
class Tracks:
    """Reconstructed tracks: ``rows`` are the Particles rows (grouped by event); columns are measured."""

    rows: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    charge: np.ndarray
    dr: np.ndarray
    dz: np.ndarray
    p_value: np.ndarray
    n_cdc_hits: np.ndarray

    @property
    def p(self) -> np.ndarray:
        return np.sqrt(self.px**2 + self.py**2 + self.pz**2)

    @property
    def energy(self) -> np.ndarray:
        """Energy under the pion-mass hypothesis."""
        return np.sqrt(self.p**2 + pdgtab.mass(pdgtab.PION) ** 2)


def efficiency(pt: np.ndarray, rho: np.ndarray, cfg: Tracking) -> np.ndarray:
    """Per-track efficiency: plateau x pT turn-on x fall-off with the production radius."""
    turn_on = np.where(pt > cfg.pt_min, -np.expm1(-(pt - cfg.pt_min) / cfg.pt_turn_on), 0.0)
    d = cfg.displaced
    radial = np.clip((d.zero_radius - rho) / (d.zero_radius - d.full_radius), 0.0, 1.0)
    return cfg.efficiency * turn_on * radial


def impact_parameters(p: Particles, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (dr, dz) of straight lines from the production vertices: signed transverse DOCA and z there."""
    x, y, z = p.x[rows], p.y[rows], p.z[rows]
    px, py, pz = p.px[rows], p.py[rows], p.pz[rows]
    pt2 = np.maximum(px * px + py * py, np.finfo(float).tiny)
    # path parameter s of the point x + s p closest to the z axis
    s = -(x * px + y * py) / pt2
    return (x * py - y * px) / np.sqrt(pt2), z + s * pz


def impact_resolution(cfg: ImpactParameterResolution, p_beta: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
    return np.hypot(cfg.constant, cfg.multiple_scattering / (p_beta * sin_theta**cfg.sin_power))


def cdc_hits(p: Particles, rows: np.ndarray, cfg: Tracking, rng: np.random.Generator) -> np.ndarray:
    """Number of CDC hits: layers crossed between the production radius and where the track leaves
    the chamber (outer wall, end plate, or the turning point 2R of a curler), times a hit efficiency."""
    cdc = cfg.cdc
    rho = np.hypot(p.x[rows], p.y[rows])
    pt = np.hypot(p.px[rows], p.py[rows])
    pz = p.pz[rows]
    z_end = np.where(pz >= 0, cdc.z_forward, cdc.z_backward)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_endplate = rho + np.where(pz != 0, (z_end - p.z[rows]) / pz * pt, np.inf)
    r_exit = np.minimum.reduce([np.full_like(rho, cdc.outer_radius), r_endplate, 2.0 * helix_radius_cm(pt, cfg.magnetic_field)])
    r_start = np.maximum(rho, cdc.inner_radius)
    fraction = np.clip((r_exit - r_start) / (cdc.outer_radius - cdc.inner_radius), 0.0, 1.0)
    layers = np.rint(cdc.n_layers * fraction).astype(np.int64)
    return rng.binomial(layers, cdc.hit_efficiency)


def reconstruct_tracks(p: Particles, cfg: Tracking, rng: np.random.Generator) -> Tracks:
    """Tracks of the charged final-state particles (and beam-background tracks) that are found."""
    candidates = np.flatnonzero(np.isin(np.abs(p.pdg), pdgtab.TRACKED))
    pt = np.hypot(p.px[candidates], p.py[candidates])
    theta, _ = polar_angles(p.px[candidates], p.py[candidates], p.pz[candidates])
    rho = np.hypot(p.x[candidates], p.y[candidates])
    lo, hi = np.radians(cfg.theta_range_deg.low), np.radians(cfg.theta_range_deg.high)
    accepted = (theta >= lo) & (theta <= hi)
    # beam-background tracks are generated as already-found tracks
    eff = np.where(p.background[candidates], 1.0, efficiency(pt, rho, cfg))
    found = accepted & (rng.random(len(candidates)) < eff)
    rows = candidates[found]

    # --- momentum and direction smearing
    px, py, pz = p.px[rows], p.py[rows], p.pz[rows]
    pt = np.hypot(px, py)
    ptot = np.sqrt(pt * pt + pz * pz)
    theta, phi = polar_angles(p.px[rows], p.py[rows], p.pz[rows])
    beta = ptot / np.sqrt(ptot**2 + p.mass[rows] ** 2)
    res = cfg.momentum_resolution
    sigma_pt = np.hypot(res.pt_term * pt, res.beta_term / beta)
    pt_meas = pt * (1.0 + sigma_pt * rng.standard_normal(len(rows)))
    sigma_angle = cfg.angular_resolution(ptot * beta)
    theta_meas = np.clip(theta + sigma_angle * rng.standard_normal(len(rows)), 1e-6, np.pi - 1e-6)
    phi_meas = phi + sigma_angle / np.sin(theta) * rng.standard_normal(len(rows))
    ptot_meas = np.abs(pt_meas) / np.sin(theta_meas)
    ux, uy, uz = direction(theta_meas, phi_meas)

    # --- impact parameters
    dr, dz = impact_parameters(p, rows)
    sin_theta = np.sin(theta)
    dr = dr + impact_resolution(cfg.dr_resolution, ptot * beta, sin_theta) * rng.standard_normal(len(rows))
    dz = dz + impact_resolution(cfg.dz_resolution, ptot * beta, sin_theta) * rng.standard_normal(len(rows))

    # --- fit quality
    bad = rng.random(len(rows)) < cfg.fit.bad_fit_fraction
    u = rng.random(len(rows))
    p_value = np.where(bad, u**cfg.fit.bad_fit_power, u)

    return Tracks(
        rows=rows,
        px=ptot_meas * ux,
        py=ptot_meas * uy,
        pz=ptot_meas * uz,
        charge=p.charge[rows],
        dr=dr,
        dz=dz,
        p_value=p_value,
        n_cdc_hits=cdc_hits(p, rows, cfg, rng),
    )
