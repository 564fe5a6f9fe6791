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
    #: (n, 4, 4) covariance of the perigee parameters (d0 = dr, phi0, z0 = dz, tanLambda); ``PERIGEE``
    covariance: np.ndarray | None = None

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


#: the straight-line perigee parameters a track stores, in the order of ``Tracks.covariance``
PERIGEE = ("d0", "phi0", "z0", "tanLambda")


def covariance_branches() -> list[tuple[str, int, int]]:
    """(column name, i, j) of the stored upper triangle of ``Tracks.covariance``: ``cov_d0_phi0`` ..."""
    return [(f"cov_{PERIGEE[i]}_{PERIGEE[j]}", i, j) for i in range(4) for j in range(i, 4)]


def first_measurement_radius(rho: np.ndarray, cfg: Tracking) -> np.ndarray:
    """Radius where a track born at ``rho`` is first measured: 0 (its perigee, as a prompt track) inside the
    innermost layer, else the first layer beyond ``rho``, else the CDC inner wall."""
    dm = cfg.displaced_measurement
    if dm is None:
        return np.zeros_like(rho)
    radii = np.asarray([*dm.layer_radii, cfg.cdc.inner_radius])
    first = radii[np.minimum(np.searchsorted(radii, rho, side="right"), len(radii) - 1)]
    return np.where(rho <= radii[0], 0.0, np.maximum(first, rho))


def perigee_measurement(
    p: Particles,
    rows: np.ndarray,
    p_meas: tuple[np.ndarray, np.ndarray, np.ndarray],
    prompt: tuple[np.ndarray, np.ndarray],
    sigmas: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    normals: tuple[np.ndarray, np.ndarray],
    cfg: Tracking,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measured (dr, dz) and the (n, 4, 4) covariance of (d0, phi0, z0, tanLambda) of straight tracks.

    A documented simplification of a helix fit (the response's tracks are straight lines from their
    production point, see the module docstring): a track is measured at a reference point with the
    position errors ``sigma_dr``, ``sigma_dz`` (the prompt impact-parameter resolution) and the direction
    errors ``sigma_phi``, ``sigma_tanLambda``. Prompt tracks (born inside the innermost layer) are measured
    at their perigee: ``prompt`` (dr, dz) stay as they are and the covariance is diagonal. A displaced
    track (``displaced_measurement`` in the YAML) is pinned at its first layer (``first_measurement_radius``;
    CDC-only tracks with the CDC position error added), offset there by the same normals ``normals`` and
    drawn along the measured direction to the perigee: dr and dz then carry the extrapolation error, and
    the covariance follows from the Jacobian of the perigee parameters with respect to the reference-point
    measurement (transverse path s from the perigee: d d0 / d phi = s, d z0 / d tanLambda = -s,
    d z0 / d phi = tanLambda d0).
    """
    sigma_dr, sigma_dz, sigma_phi, sigma_tl = sigmas
    dr, dz = prompt
    n = len(rows)
    # position errors at the reference point (transverse to the track, along z), and its transverse path
    # from the perigee; prompt tracks: the perigee itself
    sigma_a, sigma_b, s_ref = sigma_dr, sigma_dz, np.zeros(n)
    jac = np.zeros((n, 4, 4))
    jac[:, 0, 0] = jac[:, 1, 2] = jac[:, 2, 1] = jac[:, 3, 3] = 1.0  # measured (a, b, phi, tanLambda) -> perigee
    x, y, z = p.x[rows], p.y[rows], p.z[rows]
    r_ref = first_measurement_radius(np.hypot(x, y), cfg)
    away = r_ref > 0
    if away.any():
        dm = cfg.displaced_measurement
        assert dm is not None
        cdc_only = r_ref > dm.layer_radii[-1]
        sigma_a = np.where(cdc_only, np.hypot(sigma_dr, dm.cdc_position_resolution), sigma_dr)
        sigma_b = np.where(cdc_only, np.hypot(sigma_dz, dm.cdc_position_resolution), sigma_dz)
        # the true line's point at the reference radius (transverse path s0 from the production point) ...
        pt = np.maximum(np.hypot(p.px[rows], p.py[rows]), np.finfo(float).tiny)
        ux, uy, cot = p.px[rows] / pt, p.py[rows] / pt, p.pz[rows] / pt
        b = x * ux + y * uy
        s0 = -b + np.sqrt(np.maximum(b * b + r_ref**2 - (x * x + y * y), 0.0))
        # ... measured there: offset perpendicular to the track (the d0 direction) and along z ...
        rx = x + s0 * ux + sigma_a * normals[0] * uy
        ry = y + s0 * uy - sigma_a * normals[0] * ux
        rz = z + s0 * cot + sigma_b * normals[1]
        # ... and extrapolated to the perigee along the measured direction
        mpt = np.maximum(np.hypot(p_meas[0], p_meas[1]), np.finfo(float).tiny)
        mux, muy, mcot = p_meas[0] / mpt, p_meas[1] / mpt, p_meas[2] / mpt
        d0 = rx * muy - ry * mux
        s_ref = np.where(away, rx * mux + ry * muy, 0.0)
        dr, dz = np.where(away, d0, dr), np.where(away, rz - s_ref * mcot, dz)
        sigma_a, sigma_b = np.where(away, sigma_a, sigma_dr), np.where(away, sigma_b, sigma_dz)
        jac[:, 2, 2] = np.where(away, mcot * d0, 0.0)
    jac[:, 0, 2], jac[:, 2, 3] = s_ref, -s_ref
    measured = np.zeros((n, 4, 4))
    measured[:, 0, 0], measured[:, 1, 1] = sigma_a**2, sigma_b**2
    measured[:, 2, 2], measured[:, 3, 3] = sigma_phi**2, sigma_tl**2
    return dr, dz, jac @ measured @ np.transpose(jac, (0, 2, 1))


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
    sigma_dr = impact_resolution(cfg.dr_resolution, ptot * beta, sin_theta)
    sigma_dz = impact_resolution(cfg.dz_resolution, ptot * beta, sin_theta)
    n_dr = rng.standard_normal(len(rows))
    dr = dr + sigma_dr * n_dr
    n_dz = rng.standard_normal(len(rows))
    dz = dz + sigma_dz * n_dz
    # perigee parameters and covariance; displaced tracks are measured at their first layer (no new draws)
    sigma_phi, sigma_tan_lambda = sigma_angle / sin_theta, sigma_angle / sin_theta**2
    dr, dz, covariance = perigee_measurement(
        p, rows, (ptot_meas * ux, ptot_meas * uy, ptot_meas * uz), (dr, dz), (sigma_dr, sigma_dz, sigma_phi, sigma_tan_lambda),
        (n_dr, n_dz), cfg)

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
        covariance=covariance,
    )
