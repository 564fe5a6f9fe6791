"""Beam-induced background: extra soft photons (mostly in the endcaps) and low-pT tracks off the IP.

Background enters the response as pseudo-particles (``mc_index`` -1, ``mc_pdg`` 0) that then go
through the same calorimeter / tracking smearing as real particles, but are never lost to
inefficiency. Photon clusters follow a power-law spectrum and are flat in time over the
calorimeter's readout window (the beams are not synchronous with the trigger), so most are out
of time: the calorimeter's in-time cut (basf2 ECLFinalizer) drops the soft out-of-time ones, and
an analysis timing cut can remove the rest. The configured photon mean counts clusters in the
whole window, before that cut.
"""

from __future__ import annotations

import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.kinematics import direction
from belle_rare.simulation.detector.params import DetectorParams, Range


def _uniform_cos_theta(ranges_deg: list[Range], which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Polar angles uniform in cos(theta) inside range ``ranges_deg[which[i]]``."""
    low = np.array([np.cos(np.radians(r.high)) for r in ranges_deg])[which]
    high = np.array([np.cos(np.radians(r.low)) for r in ranges_deg])[which]
    return np.arccos(rng.uniform(low, high))


def _pseudo_particles(event: np.ndarray, pdg: np.ndarray, charge: np.ndarray, mass: np.ndarray,
                      momentum: tuple[np.ndarray, ...], vertex: tuple[np.ndarray, ...]) -> Particles:
    n = len(event)
    return Particles.created(
        event, pdg=pdg, charge=charge, mass=mass, momentum=momentum, vertex=vertex,
        mc_index=np.full(n, -1), mc_pdg=np.zeros(n), mother=np.full(n, -1), background=True,
    )


def power_law_energies(n: int, e_min: float, e_max: float, power: float, rng: np.random.Generator) -> np.ndarray:
    """Energies with dN/dE ~ E^-power on [e_min, e_max] (inverse CDF; power > 1)."""
    a, b = e_min ** (1.0 - power), e_max ** (1.0 - power)
    return (a + rng.random(n) * (b - a)) ** (1.0 / (1.0 - power))


def background_photons(n_events: int, params: DetectorParams, rng: np.random.Generator) -> Particles:
    """Beam-background photon clusters (timing is drawn by the calorimeter, flat over its window)."""
    cfg = params.beam_background.photons
    regions = params.calorimeter.regions_deg
    event = np.repeat(np.arange(n_events), rng.poisson(cfg.mean, n_events))
    n = len(event)
    which = rng.choice(3, size=n, p=cfg.region_fractions)
    theta = _uniform_cos_theta([regions.forward, regions.barrel, regions.backward], which, rng)
    phi = rng.uniform(-np.pi, np.pi, n)
    energy = power_law_energies(n, cfg.energy_min, cfg.energy_max, cfg.energy_power, rng)
    ux, uy, uz = direction(theta, phi)
    zero = np.zeros(n)
    return _pseudo_particles(
        event, np.full(n, pdgtab.PHOTON), zero, zero, (energy * ux, energy * uy, energy * uz), (zero, zero, zero)
    )


def background_tracks(n_events: int, params: DetectorParams, rng: np.random.Generator) -> Particles:
    cfg = params.beam_background.tracks
    event = np.repeat(np.arange(n_events), rng.poisson(cfg.mean, n_events))
    n = len(event)
    theta = _uniform_cos_theta([params.tracking.theta_range_deg], np.zeros(n, dtype=np.int64), rng)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = cfg.pt_min + rng.exponential(cfg.pt_slope, n)
    charge = rng.choice(np.array([-1.0, 1.0]), size=n)
    # origin displaced perpendicular to the track, so that the transverse impact parameter is d
    # and the longitudinal one is z
    d = rng.normal(0.0, cfg.dr_sigma, n)
    z = rng.normal(0.0, cfg.dz_sigma, n)
    momentum = (pt * np.cos(phi), pt * np.sin(phi), pt / np.tan(theta))
    vertex = (d * np.sin(phi), -d * np.cos(phi), z)
    return _pseudo_particles(
        event, (pdgtab.PION * charge).astype(np.int32), charge, np.full(n, pdgtab.mass(pdgtab.PION)), momentum, vertex
    )


def background_particles(n_events: int, params: DetectorParams, rng: np.random.Generator) -> Particles:
    """Beam-background photons and tracks for ``n_events`` events, grouped by event."""
    return Particles.concatenate([background_photons(n_events, params, rng), background_tracks(n_events, params, rng)])
