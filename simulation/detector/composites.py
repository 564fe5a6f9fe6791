"""Composite candidates: pi0 -> gamma gamma from photon pairs, and V0 vertices from track pairs.

V0s carry the basf2 V0-finder hypothesis in ``hypothesis`` (PDG code of the fitted mother): 310 for
the pi+ pi- fit (K_S-like; Lambdas and other displaced hadron pairs also appear here, with pion
masses), 22 for the e+ e- fit of photon conversions in the material (``material.py``).

Both are built basf2-like from every pair in an event (``flat.pairs_within_events``) and then
selected with vectorised masks; the truth record only decides which V0 pairs are real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.core import fourvector as fv
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.calorimeter import (
    REGION_BACKWARD,
    REGION_BACKWARD_GAP,
    REGION_BARREL,
    REGION_FORWARD,
    REGION_FORWARD_GAP,
)
from belle_rare.simulation.detector.flat import FlatTruth, Particles, local_index, pairs_within_events
from belle_rare.simulation.detector.params import Pi0, V0


#: basf2 V0 hypotheses (PDG code of the fitted mother) stored in ``V0.hypothesis``
V0_PION_PAIR = 310


@dataclass
class Candidates:
    """Rows of one composite collection, grouped by event."""

    event: np.ndarray
    columns: dict[str, np.ndarray]


def mother_pdg(flat: FlatTruth, event: np.ndarray, mother: np.ndarray) -> np.ndarray:
    """PDG code of the mothers (local indices; 0 where there is none)."""
    has = mother >= 0
    out = np.zeros(len(mother), dtype=np.int32)
    out[has] = flat["pdg"][flat.global_index(event[has], mother[has])]
    return out


# ---------------------------------------------------------------------------------------- pi0
def build_pi0(
    photon_event: np.ndarray,
    photons: dict[str, np.ndarray],
    photon_mother: np.ndarray,
    flat: FlatTruth,
    cfg: Pi0,
) -> Candidates:
    """pi0 candidates from pairs of Photon-collection entries passing the per-region energy cuts."""
    t = cfg.photon_min_energy
    region = photons["clusterReg"]
    threshold = np.select(
        [region == REGION_FORWARD, region == REGION_BARREL, region == REGION_BACKWARD,
         (region == REGION_FORWARD_GAP) | (region == REGION_BACKWARD_GAP)],
        [t.forward, t.barrel, t.backward, t.gap],
        np.inf,
    )
    usable = np.flatnonzero(photons["E"] > threshold)
    pair_event, a, b = pairs_within_events(photon_event[usable], flat.n_events)
    a, b = usable[a], usable[b]

    E = photons["E"][a].astype(np.float64) + photons["E"][b]
    px = photons["px"][a].astype(np.float64) + photons["px"][b]
    py = photons["py"][a].astype(np.float64) + photons["py"][b]
    pz = photons["pz"][a].astype(np.float64) + photons["pz"][b]
    mass = fv.mass(px, py, pz, E)
    keep = (mass > cfg.mass_window.low) & (mass < cfg.mass_window.high)
    pair_event, a, b = pair_event[keep], a[keep], b[keep]

    # truth: both clusters are photons from the same true pi0
    same = (photon_mother[a] == photon_mother[b]) & (photon_mother[a] >= 0)
    both_photons = (photons["mcPDG"][a] == pdgtab.PHOTON) & (photons["mcPDG"][b] == pdgtab.PHOTON)
    is_pi0 = same & both_photons & (mother_pdg(flat, pair_event, photon_mother[a]) == pdgtab.PI0)

    photon_local = local_index(photon_event, flat.n_events)
    f32 = np.float32
    return Candidates(
        pair_event,
        {
            "px": px[keep].astype(f32),
            "py": py[keep].astype(f32),
            "pz": pz[keep].astype(f32),
            "E": E[keep].astype(f32),
            "M": mass[keep].astype(f32),
            "gamma1Index": photon_local[a],
            "gamma2Index": photon_local[b],
            "mcIsPi0": is_pi0.astype(np.int32),
        },
    )


# ----------------------------------------------------------------------------------------- V0
def _closest_approach(o1, u1, o2, u2) -> np.ndarray:
    """Midpoint of the shortest segment between lines o1 + s u1 and o2 + t u2 (unit u; arrays (n, 3))."""
    w0 = o1 - o2
    b = np.sum(u1 * u2, axis=1)
    d = np.sum(u1 * w0, axis=1)
    e = np.sum(u2 * w0, axis=1)
    denom = 1.0 - b * b
    parallel = denom < 1e-12
    safe = np.where(parallel, 1.0, denom)
    s = np.where(parallel, 0.0, (b * e - d) / safe)
    t = np.where(parallel, e, (e - b * d) / safe)
    return 0.5 * ((o1 + s[:, None] * u1) + (o2 + t[:, None] * u2))


def build_v0(
    track_event: np.ndarray,
    track_p: np.ndarray,
    track_charge: np.ndarray,
    track_rows: np.ndarray,
    particles: Particles,
    flat: FlatTruth,
    cfg: V0,
    rng: np.random.Generator,
) -> Candidates:
    """V0 candidates: opposite-charge track pairs from a common displaced mother, plus fakes.

    ``track_p`` is the (n, 3) measured momentum; vertices of true V0s are the true decay point
    smeared by the configured resolution, those of fake pairs the closest approach of the two
    straight tracks (so fakes from prompt tracks sit near the IP).
    """
    n_events = flat.n_events
    pair_event, i, j = pairs_within_events(track_event, n_events)
    opposite = track_charge[i] * track_charge[j] < 0
    pair_event, i, j = pair_event[opposite], i[opposite], j[opposite]

    row_i, row_j = track_rows[i], track_rows[j]
    mother = particles.mother[row_i]
    origin_i = np.stack([particles.x[row_i], particles.y[row_i], particles.z[row_i]], axis=1)
    origin_j = np.stack([particles.x[row_j], particles.y[row_j], particles.z[row_j]], axis=1)

    # a true V0: same mother, born displaced from the mother's own production point
    common = (mother >= 0) & (mother == particles.mother[row_j])
    mother_vertex = np.zeros_like(origin_i)
    mglob = flat.global_index(pair_event[common], mother[common])
    mother_vertex[common] = np.stack([flat["x"][mglob], flat["y"][mglob], flat["z"][mglob]], axis=1)
    flight = np.linalg.norm(origin_i - mother_vertex, axis=1)
    displaced = common & (flight > cfg.min_flight)
    # conversions fail the pi pi fit's K_S mass window in basf2: they are e+ e- V0s only
    conversion = displaced & (mother_pdg(flat, pair_event, np.where(common, mother, -1)) == pdgtab.PHOTON)
    true_pair = displaced & ~conversion
    # e+ e- hypothesis on its own child stream, so the pi pi candidates' draws are unchanged
    photon_v0 = _conversion_v0(pair_event, i, j, conversion, track_event, n_events, track_p, track_charge, track_rows, particles, cfg,
                               rng.spawn(1)[0])

    u_found, u_fake = rng.random(len(i)), rng.random(len(i))
    # fakes: keep each other pair with probability rate / (other pairs in the event)
    n_other = np.bincount(pair_event[~true_pair], minlength=n_events)
    p_fake = np.minimum(1.0, cfg.fake_rate_per_event / np.maximum(n_other[pair_event], 1))
    keep = np.where(true_pair, u_found < cfg.efficiency, u_fake < p_fake)
    pair_event, i, j, true_pair = pair_event[keep], i[keep], j[keep], true_pair[keep]

    i, j, row_i, origin_i, origin_j, p1, p2, mom, energy, mass = _daughter_pairs(
        i, j, track_charge, track_rows, track_p, particles, pdgtab.mass(pdgtab.PION))

    u1 = p1 / np.linalg.norm(p1, axis=1, keepdims=True)
    u2 = p2 / np.linalg.norm(p2, axis=1, keepdims=True)
    fake_vertex = _closest_approach(origin_i, u1, origin_j, u2)
    vertex = np.where(true_pair[:, None], origin_i, fake_vertex)
    rho = np.hypot(vertex[:, 0], vertex[:, 1])
    sigma = cfg.vertex_resolution.constant + cfg.vertex_resolution.per_radius * rho
    vertex = vertex + sigma[:, None] * rng.standard_normal(vertex.shape)
    direction = mom / np.maximum(np.linalg.norm(mom, axis=1, keepdims=True), np.finfo(float).tiny)
    flight_distance = np.sum(vertex * direction, axis=1)

    u = rng.random(len(i))
    p_value = np.where(true_pair, u, u**cfg.fake_pvalue_power)
    mc_index = np.where(true_pair, particles.mother[row_i], -1).astype(np.int32)
    mc_pdg = np.where(true_pair, mother_pdg(flat, pair_event, np.where(true_pair, particles.mother[row_i], -1)), 0)

    track_local = local_index(track_event, n_events)
    f32 = np.float32
    pion_v0 = Candidates(
        pair_event,
        {
            "px": mom[:, 0].astype(f32),
            "py": mom[:, 1].astype(f32),
            "pz": mom[:, 2].astype(f32),
            "E": energy.astype(f32),
            "M": mass.astype(f32),
            "trackIndex1": track_local[i],
            "trackIndex2": track_local[j],
            "x": vertex[:, 0].astype(f32),
            "y": vertex[:, 1].astype(f32),
            "z": vertex[:, 2].astype(f32),
            "flightDistance": flight_distance.astype(f32),
            "pValue": p_value.astype(f32),
            "mcIndex": mc_index,
            "mcPDG": mc_pdg.astype(np.int32),
            "hypothesis": np.full(len(pair_event), V0_PION_PAIR, dtype=np.int32),
        },
    )
    return _merge_by_event([pion_v0, photon_v0])


def _daughter_pairs(
    i: np.ndarray, j: np.ndarray, track_charge: np.ndarray, track_rows: np.ndarray, track_p: np.ndarray,
    particles: Particles, daughter_mass: float,
) -> tuple[np.ndarray, ...]:
    """Track pairs with the positive track first (as basf2 orders V0 daughters): (i, j, Particles row
    of i, true origins of i and j, momenta of i and j, pair momentum, energy and mass with both
    daughters in the ``daughter_mass`` hypothesis)."""
    swap = track_charge[i] < 0
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    row_i, row_j = track_rows[i], track_rows[j]
    origin_i = np.stack([particles.x[row_i], particles.y[row_i], particles.z[row_i]], axis=1)
    origin_j = np.stack([particles.x[row_j], particles.y[row_j], particles.z[row_j]], axis=1)
    p1, p2 = track_p[i], track_p[j]
    mom = p1 + p2
    energy = np.sqrt(np.sum(p1**2, axis=1) + daughter_mass**2) + np.sqrt(np.sum(p2**2, axis=1) + daughter_mass**2)
    mass = fv.mass(mom[:, 0], mom[:, 1], mom[:, 2], energy)
    return i, j, row_i, origin_i, origin_j, p1, p2, mom, energy, mass


def _merge_by_event(parts: list[Candidates]) -> Candidates:
    """Rows of all parts grouped by event (stable: each event keeps the parts' order)."""
    event = np.concatenate([c.event for c in parts])
    order = np.argsort(event, kind="stable")
    columns = {name: np.concatenate([c.columns[name] for c in parts])[order] for name in parts[0].columns}
    return Candidates(event[order], columns)


def _conversion_v0(
    pair_event: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    conversion: np.ndarray,
    track_event: np.ndarray,
    n_events: int,
    track_p: np.ndarray,
    track_charge: np.ndarray,
    track_rows: np.ndarray,
    particles: Particles,
    cfg: V0,
    rng: np.random.Generator,
) -> Candidates:
    """e+ e- (photon-hypothesis) V0s, as basf2's V0Finder stores them: every opposite-charge pair
    whose vertex lies outside ``photon_min_radius`` with an e+ e- mass below ``photon_max_mass``.

    True conversion pairs (``conversion``) are found with the V0 efficiency at the smeared
    conversion point; other pairs need straight tracks passing within ``photon_max_doca_sigmas``
    vertex resolutions of each other and take their closest approach as the vertex, which for
    tracks from the IP falls inside the radius cut.
    """
    i, j, row_i, origin_i, origin_j, p1, p2, mom, energy, mass = _daughter_pairs(
        i, j, track_charge, track_rows, track_p, particles, pdgtab.mass(pdgtab.ELECTRON))

    u1 = p1 / np.maximum(np.linalg.norm(p1, axis=1, keepdims=True), np.finfo(float).tiny)
    u2 = p2 / np.maximum(np.linalg.norm(p2, axis=1, keepdims=True), np.finfo(float).tiny)
    closest = _closest_approach(origin_i, u1, origin_j, u2)
    # a vertex fit converges only where the two tracks meet: distance of closest approach of the lines
    doca = np.abs(np.sum((origin_i - origin_j) * np.cross(u1, u2), axis=1)) / np.maximum(
        np.linalg.norm(np.cross(u1, u2), axis=1), 1e-12)
    vertex = np.where(conversion[:, None], origin_i, closest)
    rho = np.hypot(vertex[:, 0], vertex[:, 1])
    sigma = cfg.vertex_resolution.constant + cfg.vertex_resolution.per_radius * rho
    vertex = vertex + sigma[:, None] * rng.standard_normal(vertex.shape)
    found = np.where(conversion, rng.random(len(i)) < cfg.efficiency, True)
    meets = conversion | (doca < cfg.photon_max_doca_sigmas * sigma)
    keep = found & meets & (mass < cfg.photon_max_mass) & (np.hypot(vertex[:, 0], vertex[:, 1]) > cfg.photon_min_radius)

    direction = mom / np.maximum(np.linalg.norm(mom, axis=1, keepdims=True), np.finfo(float).tiny)
    u = rng.random(len(i))
    true = conversion[keep]
    track_local = local_index(track_event, n_events)
    f32 = np.float32
    return Candidates(
        pair_event[keep],
        {
            "px": mom[keep, 0].astype(f32),
            "py": mom[keep, 1].astype(f32),
            "pz": mom[keep, 2].astype(f32),
            "E": energy[keep].astype(f32),
            "M": mass[keep].astype(f32),
            "trackIndex1": track_local[i[keep]],
            "trackIndex2": track_local[j[keep]],
            "x": vertex[keep, 0].astype(f32),
            "y": vertex[keep, 1].astype(f32),
            "z": vertex[keep, 2].astype(f32),
            "flightDistance": np.sum(vertex * direction, axis=1)[keep].astype(f32),
            "pValue": np.where(conversion, u, u**cfg.fake_pvalue_power)[keep].astype(f32),
            "mcIndex": np.where(true, particles.mother[row_i[keep]], -1).astype(np.int32),
            "mcPDG": np.where(true, pdgtab.PHOTON, 0).astype(np.int32),
            "hypothesis": np.full(int(keep.sum()), pdgtab.PHOTON, dtype=np.int32),
        },
    )
