"""Electromagnetic calorimeter: one cluster per particle at most, with region, energy, angles,
shower shape (E9/E21) and timing.

Deposits by species: photons the full energy, electrons ~all of it (E/p ~ 1), muons a MIP,
charged hadrons a MIP or a hadronic shower carrying a fraction of the kinetic energy, K_L and
neutrons a cluster with a configured probability. The cluster sits where the particle's straight
line from its production vertex meets the ECL (barrel cylinder or endcap face) and its angles
are measured from the IP; charged particles reach the barrel only if their helix is wide enough.
Clusters of reconstructed tracks are matched to them (``Track.clusterE``); all other clusters
are the ``Photon`` collection.

Hadronic showers (charged hadrons that interact, K_L, neutrons) also leave *split-offs*: shower
fragments reconstructed as separate neutral clusters a few crystals away. They take their energy
from the parent shower, are never matched to a track, and carry the parent's truth
(``mcIndex`` / ``mcPDG`` of the hadron), as basf2 truth matching gives them. Cluster times are
Gaussian around the collision for physics clusters and flat over the readout window for beam
background; below ``timing.in_time_below`` only clusters with |t| < t99 are kept (basf2
ECLFinalizer), and ``clusterErrorTiming`` is that t99.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.kinematics import direction, helix_radius_cm, polar_angles
from belle_rare.simulation.detector.params import BetaShape, Calorimeter, EclRegions, EnergyTail

# basf2 clusterReg codes
REGION_NONE, REGION_FORWARD, REGION_BARREL, REGION_BACKWARD = 0, 1, 2, 3
REGION_FORWARD_GAP, REGION_BACKWARD_GAP = 11, 13

#: basf2's t99 (``clusterErrorTiming``, 99 % time containment) in units of the Gaussian sigma (two-sided 99 %)
T99_PER_SIGMA = 2.576


@dataclass
class Clusters:
    """Calorimeter clusters: entry i < len(particles) belongs to Particles row i (``exists`` says
    whether it has a cluster; the other fields are undefined where not), the entries after it are
    hadronic split-offs, each pointing to its parent hadron's row through ``row``.
    """

    exists: np.ndarray
    energy: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    region: np.ndarray
    e9e21: np.ndarray
    timing: np.ndarray
    t99: np.ndarray
    row: np.ndarray  # Particles row of each entry (the parent hadron for split-offs)
    event: np.ndarray
    split_off: np.ndarray  # bool


def region_of(theta: np.ndarray, regions: EclRegions) -> np.ndarray:
    """basf2 clusterReg code of polar angles (rad): 1/2/3 forward/barrel/backward, 11/13 gaps, 0 outside."""
    deg = np.degrees(theta)
    f, b, k = regions.forward, regions.barrel, regions.backward
    conditions = [
        (deg >= f.low) & (deg <= f.high),
        (deg > f.high) & (deg < b.low),
        (deg >= b.low) & (deg <= b.high),
        (deg > b.high) & (deg < k.low),
        (deg >= k.low) & (deg <= k.high),
    ]
    codes = [REGION_FORWARD, REGION_FORWARD_GAP, REGION_BARREL, REGION_BACKWARD_GAP, REGION_BACKWARD]
    return np.select(conditions, codes, REGION_NONE).astype(np.int32)


def energy_resolution(energy: np.ndarray, cfg: Calorimeter) -> np.ndarray:
    """sigma_E / E at energies ``energy`` > 0 (GeV)."""
    r = cfg.energy_resolution
    return np.sqrt((r.noise / energy) ** 2 + (r.stochastic / energy**0.25) ** 2 + r.constant**2)


def novosibirsk_deviation(z: np.ndarray, sigma: np.ndarray, tail: EnergyTail | None) -> np.ndarray:
    """Relative deviation from the peak for standard-normal draws ``z``: sigma z without a tail, else the
    Novosibirsk line shape with peak 0 and width sigma (FWHM / 2.355), exactly: with u = tau + z,
    x = sigma (exp(tau u) - 1) / (tau q), q = sinh(tau sqrt(ln 4)) / (tau sqrt(ln 4)) (the density in x,
    exp(-ln^2(1 + tau q x / sigma) / (2 tau^2) - tau^2 / 2), is Gaussian in u = ln(1 + tau q x / sigma) / tau
    times the Jacobian exp(tau u): N(tau, 1))."""
    if tail is None:
        return sigma * z
    tau = tail.tail
    r = tau * np.sqrt(np.log(4.0))
    q = np.sinh(r) / r
    return sigma * np.expm1(tau * (tau + z)) / (tau * q)


def _impact_point(p: Particles, cfg: Calorimeter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where straight lines from the production vertices meet the ECL (barrel cylinder or endcap plane)."""
    g = cfg.geometry
    norm = np.maximum(p.p, np.finfo(float).tiny)
    ux, uy, uz = p.px / norm, p.py / norm, p.pz / norm
    a = ux * ux + uy * uy
    b = 2.0 * (p.x * ux + p.y * uy)
    c = p.x**2 + p.y**2 - g.barrel_radius**2
    with np.errstate(divide="ignore", invalid="ignore"):
        t_barrel = np.where(a > 0, (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a), np.inf)
        z_plane = np.where(uz >= 0, g.forward_z, g.backward_z)
        t_endcap = np.where(uz != 0, (z_plane - p.z) / uz, np.inf)
    t = np.minimum(t_barrel, t_endcap)
    return p.x + t * ux, p.y + t * uy, p.z + t * uz


def _beta_where(mask: np.ndarray, shape: BetaShape, rng: np.random.Generator) -> np.ndarray:
    """Beta(alpha, beta) draws on the rows of ``mask``, 0 elsewhere (Beta variates are costly: only
    the rows that use them draw one)."""
    out = np.zeros(len(mask))
    out[mask] = rng.beta(shape.alpha, shape.beta, int(np.count_nonzero(mask)))
    return out


def _deposits(p: Particles, cfg: Calorimeter, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True deposited energy per row and whether the shower is hadronic."""
    n = len(p)
    apdg = np.abs(p.pdg)
    kinetic = np.maximum(p.E - p.mass, 0.0)
    mip = np.clip(rng.normal(cfg.mip.mean, cfg.mip.width, n), 0.0, kinetic)
    shower_u = rng.random(n)

    is_photon = apdg == pdgtab.PHOTON
    is_electron = apdg == pdgtab.ELECTRON
    is_muon = apdg == pdgtab.MUON
    is_hadron = np.isin(apdg, (pdgtab.PION, pdgtab.KAON, pdgtab.PROTON))
    showers = is_hadron & (shower_u < cfg.hadron_shower.probability)
    is_klong = (apdg == pdgtab.KLONG) & (shower_u < cfg.klong.probability)
    is_neutron = (apdg == pdgtab.NEUTRON) & (shower_u < cfg.neutron.probability)
    hadron_fraction = _beta_where(showers, cfg.hadron_shower.fraction, rng)
    klong_fraction = _beta_where(is_klong, cfg.klong.fraction, rng)
    neutron_fraction = _beta_where(is_neutron, cfg.neutron.fraction, rng)

    deposit = np.select(
        [is_photon, is_electron, is_muon, showers, is_hadron, is_klong, is_neutron],
        [p.E, cfg.electron_energy_scale * p.E, mip, hadron_fraction * kinetic, mip,
         klong_fraction * kinetic, neutron_fraction * kinetic],
        0.0,
    )
    hadronic = showers | is_klong | is_neutron
    return deposit, hadronic


def kept_in_time(energy: np.ndarray, timing: np.ndarray, t99: np.ndarray, cfg: Calorimeter) -> np.ndarray:
    """The reconstruction's time cut: below ``in_time_below`` a cluster needs |t| < t99 (basf2 ECLFinalizer)."""
    if cfg.timing.in_time_below is None:
        return np.ones(len(energy), dtype=bool)
    return (energy > cfg.timing.in_time_below) | (np.abs(timing) < t99)


def rotate_away(theta: np.ndarray, phi: np.ndarray, angle: np.ndarray, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directions at opening ``angle`` from (theta, phi), at ``azimuth`` around it."""
    ux, uy, uz = direction(theta, phi)
    # orthonormal basis perpendicular to u: e_theta and e_phi
    e1 = (np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -np.sin(theta))
    e2 = (-np.sin(phi), np.cos(phi), np.zeros_like(phi))
    ca, sa, cb, sb = np.cos(angle), np.sin(angle), np.cos(azimuth), np.sin(azimuth)
    vx, vy, vz = (ca * u + sa * (cb * a + sb * b) for u, a, b in zip((ux, uy, uz), e1, e2))
    return np.arccos(np.clip(vz, -1.0, 1.0)), np.arctan2(vy, vx)


def split_offs(
    energy: np.ndarray, theta: np.ndarray, phi: np.ndarray, showers: np.ndarray, cfg: Calorimeter,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Split-off clusters of the hadronic showers ``showers`` (mask of rows with a cluster).

    Poisson multiplicity per shower; energy = threshold + exponential, each capped at
    ``max_energy_fraction / multiplicity`` of the shower so the parent keeps at least
    ``1 - max_energy_fraction``; direction at min_angle + exponential from the parent's cluster.
    Returns the columns of the existing split-offs, with ``parent`` (row) and ``taken`` (energy per
    row that the parents lose).
    """
    so = cfg.split_off
    counts = rng.poisson(so.mean_multiplicity * showers)
    parent = np.repeat(np.arange(len(energy)), counts)
    m = len(parent)
    cap = so.max_energy_fraction * energy[parent] / np.maximum(counts[parent], 1)
    e = np.minimum(cfg.cluster_threshold + rng.exponential(so.energy_mean, m), cap)
    angle = so.min_angle + rng.exponential(so.angle_scale, m)
    th, ph = rotate_away(theta[parent], phi[parent], angle, rng.uniform(-np.pi, np.pi, m))
    region = region_of(th, cfg.regions_deg)
    e9e21 = rng.beta(cfg.e9e21_hadron.alpha, cfg.e9e21_hadron.beta, m)
    sigma_t = cfg.timing.resolution(np.maximum(e, cfg.cluster_threshold))
    timing = sigma_t * rng.standard_normal(m)  # in time with the collision, like the parent
    t99 = T99_PER_SIGMA * sigma_t
    ok = (e > cfg.cluster_threshold) & (region != REGION_NONE) & kept_in_time(e, timing, t99, cfg)
    taken = np.bincount(parent[ok], weights=e[ok], minlength=len(energy))
    return {"parent": parent[ok], "energy": e[ok], "theta": th[ok], "phi": ph[ok], "region": region[ok],
            "e9e21": e9e21[ok], "timing": timing[ok], "t99": t99[ok], "taken": taken}


def ecl_response(p: Particles, cfg: Calorimeter, field_tesla: float, rng: np.random.Generator) -> Clusters:
    """Clusters of all rows of ``p`` and their split-offs (vectorised; every random number of the
    primary clusters is drawn for every row; the split-offs draw from a child stream of ``rng``,
    so they do not shift the primary draws).
    """
    n = len(p)
    split_rng = rng.spawn(1)[0]
    deposit, hadronic = _deposits(p, cfg, rng)
    g = cfg.geometry

    hx, hy, hz = _impact_point(p, cfg)
    theta_true, phi_true = polar_angles(hx, hy, hz)
    region = region_of(theta_true, cfg.regions_deg)
    inside = (np.hypot(p.x, p.y) < g.barrel_radius) & (p.z > g.backward_z) & (p.z < g.forward_z)
    # a charged particle reaches the barrel only if its helix diameter exceeds the barrel radius
    reaches = (p.charge == 0) | (region != REGION_BARREL) | (2.0 * helix_radius_cm(p.pt, field_tesla) > g.barrel_radius)
    in_gap = (region == REGION_FORWARD_GAP) | (region == REGION_BACKWARD_GAP)

    eff = np.where((np.abs(p.pdg) == pdgtab.PHOTON) & ~p.background, cfg.photon_efficiency, 1.0)
    eff = eff * np.where(in_gap, cfg.gap.efficiency, 1.0)
    deposit = deposit * np.where(in_gap, cfg.gap.energy_scale, 1.0)

    # rows without a deposit get a dummy energy for the resolution (they make no cluster anyway)
    sigma = energy_resolution(np.where(deposit > 0, deposit, 1.0), cfg)
    z = rng.standard_normal(n)
    # electromagnetic showers (photons, electrons) leak: the Novosibirsk line shape from the same draw z
    em = np.isin(np.abs(p.pdg), (pdgtab.PHOTON, pdgtab.ELECTRON)) & ~hadronic
    energy = deposit * (1.0 + np.where(em, novosibirsk_deviation(z, sigma, cfg.energy_tail), sigma * z))
    exists = (
        (deposit > 0) & inside & reaches & (region != REGION_NONE)
        & (rng.random(n) < eff) & (energy > cfg.cluster_threshold)
    )

    sigma_angle = cfg.angular_resolution(np.maximum(energy, cfg.cluster_threshold))
    theta = np.clip(theta_true + sigma_angle * rng.standard_normal(n), 0.0, np.pi)
    phi = phi_true + sigma_angle / np.maximum(np.sin(theta_true), 1e-6) * rng.standard_normal(n)
    phi = np.arctan2(np.sin(phi), np.cos(phi))

    e9e21 = (
        _beta_where(p.background, cfg.e9e21_background, rng)
        + _beta_where(~p.background & hadronic, cfg.e9e21_hadron, rng)
        + _beta_where(~p.background & ~hadronic, cfg.e9e21_photon, rng)
    )

    t = cfg.timing
    sigma_t = t.resolution(np.maximum(energy, cfg.cluster_threshold))
    timing = np.where(
        p.background,
        rng.uniform(-t.background_window, t.background_window, n),
        sigma_t * rng.standard_normal(n),
    )
    t99 = T99_PER_SIGMA * sigma_t
    exists &= kept_in_time(energy, timing, t99, cfg)

    extra = split_offs(energy, theta, phi, exists & hadronic & ~p.background, cfg, split_rng)
    energy = energy - extra["taken"]
    parent = extra["parent"]
    m = len(parent)
    return Clusters(
        exists=np.concatenate([exists, np.ones(m, dtype=bool)]),
        energy=np.concatenate([energy, extra["energy"]]),
        theta=np.concatenate([theta, extra["theta"]]),
        phi=np.concatenate([phi, extra["phi"]]),
        region=np.concatenate([np.where(exists, region, REGION_NONE), extra["region"]]),
        e9e21=np.concatenate([e9e21, extra["e9e21"]]),
        timing=np.concatenate([timing, extra["timing"]]),
        t99=np.concatenate([t99, extra["t99"]]),
        row=np.concatenate([np.arange(n), parent]),
        event=np.concatenate([p.event, p.event[parent]]),
        split_off=np.concatenate([np.zeros(n, dtype=bool), np.ones(m, dtype=bool)]),
    )


def photon_rows(clusters: Clusters, track_rows: np.ndarray) -> np.ndarray:
    """Cluster entries of the Photon collection, grouped by event: clusters not matched to a
    reconstructed track (``track_rows``) and all split-offs (never matched).
    """
    matched = np.zeros(len(clusters.exists), dtype=bool)
    matched[track_rows] = True
    entries = np.flatnonzero(clusters.exists & ~matched)
    return entries[np.argsort(clusters.event[entries], kind="stable")]


def photon_columns(p: Particles, clusters: Clusters, entries: np.ndarray) -> dict[str, np.ndarray]:
    """Photon-collection fields (massless, pointing from the IP) for the given cluster entries;
    truth (``mcIndex`` / ``mcPDG``) from the Particles row, i.e. the parent hadron for split-offs.
    """
    rows = clusters.row[entries]
    energy = clusters.energy[entries]
    theta, phi = clusters.theta[entries], clusters.phi[entries]
    ux, uy, uz = direction(theta, phi)
    f32 = np.float32
    return {
        "E": energy.astype(f32),
        "px": (energy * ux).astype(f32),
        "py": (energy * uy).astype(f32),
        "pz": (energy * uz).astype(f32),
        "clusterTheta": theta.astype(f32),
        "clusterPhi": phi.astype(f32),
        "clusterE9E21": clusters.e9e21[entries].astype(f32),
        "clusterReg": clusters.region[entries].astype(np.int32),
        "clusterTiming": clusters.timing[entries].astype(f32),
        "clusterErrorTiming": clusters.t99[entries].astype(f32),
        "mcIndex": p.mc_index[rows].astype(np.int32),
        "mcPDG": p.mc_pdg[rows].astype(np.int32),
    }
