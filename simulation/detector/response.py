"""The detector-response chain: truth record in, reconstructed collections out.

Order of the steps (and so of the random draws, which makes the output a deterministic function
of the truth and the generator state): beam background, tracking, calorimeter, PID, KLM,
Photon collection, pi0, V0, KLM clusters, B tag, curler duplicates (Belle).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from belle_rare.simulation.detector.beam_background import background_particles
from belle_rare.simulation.detector.calorimeter import ecl_response, photon_columns, photon_rows
from belle_rare.simulation.detector.composites import build_pi0, build_v0
from belle_rare.simulation.detector.curlers import add_curler_duplicates
from belle_rare.simulation.detector.flat import FlatTruth, Particles, to_jagged
from belle_rare.simulation.detector.kinematics import polar_angles
from belle_rare.simulation.detector.klm import klm_clusters, track_layers
from belle_rare.simulation.detector.material import apply_material
from belle_rare.simulation.detector.params import DetectorParams
from belle_rare.simulation.detector.pid import pid_columns
from belle_rare.simulation.detector.tagging import TagInputs, build_btag
from belle_rare.simulation.detector.tracking import covariance_branches, reconstruct_tracks

COLLECTIONS = ("Track", "Photon", "KLMCluster", "Pi0", "V0", "Btag")


def simulate_detector(truth: ak.Array, params: DetectorParams, rng: np.random.Generator) -> dict[str, ak.Array]:
    """Reconstructed collections (jagged record arrays, one list per event) for a truth record.

    Keys: ``Track``, ``Photon``, ``KLMCluster``, ``Pi0``, ``V0``, ``Btag``; field names are the
    ntuple branch suffixes (``reco["Track"].px`` -> ``Track_px``).
    """
    flat = FlatTruth.from_truth(truth)
    n = flat.n_events
    particles = Particles.concatenate([Particles.from_truth(flat), background_particles(n, params, rng)])
    # photon conversions and electron brems in the beam pipe / PXD / SVD, on a child stream of rng
    # (spawning does not advance rng, so the other steps' draws keep their sequence)
    particles = apply_material(particles, params.material, params.tracking.magnetic_field, rng.spawn(1)[0])

    # --- tracks, their clusters, PID and KLM layers
    tracks = reconstruct_tracks(particles, params.tracking, rng)
    clusters = ecl_response(particles, params.calorimeter, params.tracking.magnetic_field, rng)
    rows = tracks.rows
    track_event = particles.event[rows]
    momentum = tracks.p
    cluster_e = np.where(clusters.exists[rows], clusters.energy[rows], 0.0)
    pid, pass_probability = pid_columns(particles.pdg[rows], momentum, params.pid, rng)
    theta, _ = polar_angles(tracks.px, tracks.py, tracks.pz)
    klm_layers = track_layers(particles.pdg[rows], momentum, theta, params.klm, rng)
    f32, i32 = np.float32, np.int32
    track_columns = {
        "px": tracks.px.astype(f32),
        "py": tracks.py.astype(f32),
        "pz": tracks.pz.astype(f32),
        "E": tracks.energy.astype(f32),
        "charge": tracks.charge.astype(i32),
        "dr": tracks.dr.astype(f32),
        "dz": tracks.dz.astype(f32),
        "pValue": tracks.p_value.astype(f32),
        "nCDCHits": tracks.n_cdc_hits.astype(i32),
        "clusterE": cluster_e.astype(f32),
        "EoverP": (cluster_e / momentum).astype(f32),
        "klmLayers": klm_layers,
        **{name: values.astype(f32) for name, values in pid.items()},
        # per-track probability to pass each PID working point (analytic, no draw): PID-weighted backgrounds
        **{name: prob.astype(f32) for name, prob in pass_probability.items()},
        "mcIndex": particles.mc_index[rows].astype(i32),
        "mcPDG": particles.mc_pdg[rows].astype(i32),
        # perigee covariance (d0, phi0, z0, tanLambda) for vertex fits (bkscalar); float64: strongly correlated
        **{name: tracks.covariance[:, i, j] for name, i, j in covariance_branches()},
    }

    # --- neutral clusters and composites
    gamma = photon_rows(clusters, rows)  # cluster entries: unmatched clusters and split-offs
    gamma_rows = clusters.row[gamma]
    gamma_event = particles.event[gamma_rows]
    photons = photon_columns(particles, clusters, gamma)
    pi0 = build_pi0(gamma_event, photons, particles.mother[gamma_rows], flat, params.pi0)
    v0 = build_v0(
        track_event,
        np.stack([tracks.px, tracks.py, tracks.pz], axis=1),
        tracks.charge,
        rows,
        particles,
        flat,
        params.v0,
        rng,
    )
    klm_rows, klm_columns = klm_clusters(particles, params.klm, rng)
    btag = build_btag(
        flat,
        ak.to_numpy(truth.signal_index),
        TagInputs(track_event, track_columns, gamma_event, photons),
        params.name,
        params.tagging,
        rng,
    )
    track_columns["inTag"] = btag.track_in_tag
    photons["inTag"] = btag.photon_in_tag
    # curler duplicates (Belle), after the tag (which used the originals), on a child stream of rng
    if params.tracking.curler_duplicates is not None:
        track_columns, track_event = add_curler_duplicates(track_columns, track_event, params.tracking.curler_duplicates,
                                                           rng.spawn(1)[0])

    return {
        "Track": to_jagged(track_columns, track_event, n),
        "Photon": to_jagged(photons, gamma_event, n),
        "KLMCluster": to_jagged(klm_columns, particles.event[klm_rows], n),
        "Pi0": to_jagged(pi0.columns, pi0.event, n),
        "V0": to_jagged(v0.columns, v0.event, n),
        "Btag": to_jagged(btag.candidates.columns, btag.candidates.event, n),
    }
